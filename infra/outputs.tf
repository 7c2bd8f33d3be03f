# The names the app needs, as the environment variables it reads (see README.md).
output "env" {
  description = "DEPOT_ENV"
  value       = local.env
}

output "assignments_table" {
  description = "DEPOT_ASSIGNMENTS_TABLE"
  value       = aws_dynamodb_table.this["assignments"].name
}

output "days_table" {
  description = "DEPOT_DAYS_TABLE"
  value       = aws_dynamodb_table.this["days"].name
}

output "events_table" {
  description = "DEPOT_EVENTS_TABLE"
  value       = aws_dynamodb_table.this["events"].name
}

output "idempotency_table" {
  description = "DEPOT_IDEMPOTENCY_TABLE"
  value       = aws_dynamodb_table.this["idempotency"].name
}

output "log_bucket" {
  description = "DEPOT_LOG_BUCKET"
  value       = aws_s3_bucket.this["logs"].bucket
}

output "state_bucket" {
  description = "DEPOT_STATE_BUCKET"
  value       = aws_s3_bucket.this["state"].bucket
}

output "app_environment" {
  description = "All of the above as DEPOT_* variables, for `terraform output -json app_environment`."
  value = {
    DEPOT_ENV               = local.env
    DEPOT_ASSIGNMENTS_TABLE = aws_dynamodb_table.this["assignments"].name
    DEPOT_DAYS_TABLE        = aws_dynamodb_table.this["days"].name
    DEPOT_EVENTS_TABLE      = aws_dynamodb_table.this["events"].name
    DEPOT_IDEMPOTENCY_TABLE = aws_dynamodb_table.this["idempotency"].name
    DEPOT_LOG_BUCKET        = aws_s3_bucket.this["logs"].bucket
    DEPOT_STATE_BUCKET      = aws_s3_bucket.this["state"].bucket
  }
}
