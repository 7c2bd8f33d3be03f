"""The storage Depot needs: tables and buckets, and the app's own bootstrap of them.

``infra/`` (Terraform) is the source of truth in deployed environments; ``bootstrap`` creates
the same tables and buckets where Terraform is not installed, and a test proves both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from depot.config import Settings

TTL_ATTRIBUTE = "expires_at"
LOG_RETENTION_DAYS = 90


@dataclass(frozen=True)
class TableSpec:
    """One table: the ``Settings`` field naming it, its string keys, whether items expire."""

    setting: str
    hash_key: str
    range_key: str | None = None
    ttl: bool = False

    def name(self, settings: Settings) -> str:
        return str(getattr(settings, self.setting))


TABLES = (
    TableSpec("assignments_table", "driver_id", "package_id"),
    TableSpec("days_table", "day"),
    TableSpec("events_table", "day", "seq"),
    TableSpec("idempotency_table", "idempotency_key", ttl=True),
)


def create_table_request(spec: TableSpec, name: str) -> dict[str, Any]:
    """``CreateTable`` arguments: on-demand billing, every key attribute a string."""
    keys = [(spec.hash_key, "HASH")] + ([(spec.range_key, "RANGE")] if spec.range_key else [])
    return {
        "TableName": name,
        "KeySchema": [{"AttributeName": a, "KeyType": kind} for a, kind in keys],
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a, _ in keys],
        "BillingMode": "PAY_PER_REQUEST",
    }


def table_definitions(settings: Settings) -> list[dict[str, Any]]:
    """``CreateTable`` arguments for every table, named as in ``settings``."""
    return [create_table_request(spec, spec.name(settings)) for spec in TABLES]


def bootstrap(dynamodb, s3, settings: Settings) -> list[str]:
    """Create whatever is missing; return what was created. Safe to run again."""
    created: list[str] = []
    existing = set(dynamodb.list_tables()["TableNames"])
    for definition in table_definitions(settings):
        name = definition["TableName"]
        if name in existing:
            continue
        dynamodb.create_table(**definition)
        dynamodb.get_waiter("table_exists").wait(TableName=name)
        created.append(name)
    for spec in TABLES:
        if spec.ttl:
            _enable_ttl(dynamodb, spec.name(settings))
    for definition in table_definitions(settings):
        dynamodb.update_continuous_backups(
            TableName=definition["TableName"],
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    for bucket in (settings.log_bucket, settings.state_bucket):
        if _create_bucket(s3, bucket, settings.aws_region):
            created.append(bucket)
        _secure_bucket(s3, bucket)
    _expire_old_logs(s3, settings.log_bucket)
    return created


def _enable_ttl(dynamodb, table: str) -> None:
    current = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return
    dynamodb.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )


def _create_bucket(s3, bucket: str, region: str) -> bool:
    try:
        s3.head_bucket(Bucket=bucket)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket", "NotFound"):
            raise
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise
    return True


def _secure_bucket(s3, bucket: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _expire_old_logs(s3, bucket: str) -> None:
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-old-logs",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "logs/"},
                    "Expiration": {"Days": LOG_RETENTION_DAYS},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                }
            ]
        },
    )
