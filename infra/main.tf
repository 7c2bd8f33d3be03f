# Everything Depot stores: three DynamoDB tables and two S3 buckets, named per workspace.
# The app's own bootstrap (src/depot/storage/tables.py) creates the same thing where Terraform is not
# installed; tests/system/test_infra.py proves the two agree.

locals {
  # One map of per-workspace settings: the only place where dev, test and prod differ.
  workspaces = {
    dev = {
      suffix              = "" # dev names are the app's defaults: DeliveryAssignments, ...
      log_retention_days  = 90
      noncurrent_days     = 30
      pitr                = true
      deletion_protection = false
      kms_sse             = false # AWS-owned key: encrypted at rest, no KMS cost
    }
    test = {
      suffix              = "-test"
      log_retention_days  = 30
      noncurrent_days     = 7
      pitr                = true
      deletion_protection = false
      kms_sse             = true # AWS-managed KMS key (aws/dynamodb)
    }
    prod = {
      suffix              = "-prod"
      log_retention_days  = 365
      noncurrent_days     = 90
      pitr                = true
      deletion_protection = true
      kms_sse             = true
    }
  }

  known_workspace = contains(keys(local.workspaces), terraform.workspace)
  env             = local.known_workspace ? terraform.workspace : "dev"
  ws              = local.workspaces[local.env]

  ttl_attribute = "expires_at"

  # Mirrors depot.schema.table_definitions.
  tables = {
    assignments = {
      name      = "DeliveryAssignments${local.ws.suffix}"
      hash_key  = "driver_id"
      range_key = "package_id"
      ttl       = false
    }
    days = {
      name      = "DepotDays${local.ws.suffix}"
      hash_key  = "day"
      range_key = null
      ttl       = false
    }
    events = {
      name      = "DepotEvents${local.ws.suffix}"
      hash_key  = "day"
      range_key = "seq"
      ttl       = false
    }
    idempotency = {
      name      = "DepotIdempotency${local.ws.suffix}"
      hash_key  = "idempotency_key"
      range_key = null
      ttl       = true
    }
  }

  log_bucket   = "depot-logs-${local.env}"
  state_bucket = "depot-state-${local.env}"
  buckets = {
    logs  = local.log_bucket
    state = local.state_bucket
  }
}

resource "aws_dynamodb_table" "this" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with an AWS-owned key (dev) or the AWS-managed aws/dynamodb KMS key (test, prod); a customer-managed key would need KMS, which LocalStack here does not run (SERVICES=s3,dynamodb).
  for_each = local.tables

  name         = each.value.name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = each.value.hash_key
  range_key    = each.value.range_key

  attribute {
    name = each.value.hash_key
    type = "S"
  }

  dynamic "attribute" {
    for_each = each.value.range_key == null ? [] : [each.value.range_key]
    content {
      name = attribute.value
      type = "S"
    }
  }

  dynamic "ttl" {
    for_each = each.value.ttl ? [local.ttl_attribute] : []
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = local.ws.pitr
  }

  server_side_encryption {
    enabled = local.ws.kms_sse
  }

  deletion_protection_enabled = local.ws.deletion_protection

  tags = {
    Name = each.value.name
  }

  lifecycle {
    precondition {
      condition     = local.known_workspace
      error_message = "Unknown workspace \"${terraform.workspace}\": select dev, test or prod (terraform workspace select -or-create dev)."
    }
  }
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:The log bucket is where Depot's operational logs go; logging access to it (and to the state bucket) would need a further bucket per workspace, out of scope here.
  #checkov:skip=CKV_AWS_144:Cross-region replication is a disaster-recovery decision for the AWS account, not something every workspace (or an emulator) can do.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256), the same as the app's bootstrap; SSE-KMS would need KMS, which LocalStack here does not run.
  #checkov:skip=CKV2_AWS_62:No consumer of S3 event notifications exists; the app writes and reads the objects itself.
  #checkov:skip=CKV2_AWS_61:Only the log bucket expires objects (aws_s3_bucket_lifecycle_configuration.logs); the state bucket keeps every version by design.
  for_each = local.buckets

  bucket = each.value

  # Keep prod's buckets when the stack is destroyed; elsewhere allow a clean teardown.
  force_destroy = !local.ws.deletion_protection
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = aws_s3_bucket.this

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each = aws_s3_bucket.this

  bucket                  = each.value.id
  block_public_acls       = true
  ignore_public_acls      = true
  block_public_policy     = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  #checkov:skip=CKV_AWS_300:The app writes each log batch with one PutObject, never a multipart upload; the rule is kept identical to the app's bootstrap.
  bucket = aws_s3_bucket.this["logs"].id

  rule {
    id     = "expire-old-logs"
    status = "Enabled"

    filter {
      prefix = "logs/"
    }

    expiration {
      days = local.ws.log_retention_days
    }

    noncurrent_version_expiration {
      noncurrent_days = local.ws.noncurrent_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}
