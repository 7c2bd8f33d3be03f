"""Storage adapters: DynamoDB and S3 through botocore, behind the use cases."""
