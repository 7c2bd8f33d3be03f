"""AWS plumbing for the store: clients, retries, the outage guard, the attribute codec.

Outages surface as ``StorageUnavailable`` (the API answers 503); nothing else leaks botocore.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from depot.config import Settings
from depot.storage import retries

BATCH_WRITE_SIZE = 25
BATCH_GET_SIZE = 100
UNAVAILABLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "SlowDown",
    "InternalError",
    "503",
    "500",
}

NOT_PROVISIONED_CODES = {"ResourceNotFoundException", "NoSuchBucket"}
"""A table or bucket that does not exist: the deployment is not provisioned (yet)."""

T = TypeVar("T")


class StorageUnavailable(RuntimeError):
    """DynamoDB or S3 did not answer in time (after botocore's retries)."""

    def __init__(self, message: str, retry_after_s: int = 2):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class VersionConflict(RuntimeError):
    """Another process advanced the day first: recompute and try again."""


class ConditionFailed(RuntimeError):
    """A conditional write's condition did not hold."""


@contextmanager
def outage_guard(what: str) -> Iterator[None]:
    """Turn transport failures and throttling into ``StorageUnavailable``."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in UNAVAILABLE_CODES or status >= 500:
            raise StorageUnavailable(f"{what}: {code or status}") from exc
        if code in NOT_PROVISIONED_CODES:
            message = exc.response.get("Error", {}).get("Message", code)
            raise StorageUnavailable(
                f"{what}: storage is not provisioned ({message}); run `depot provision`",
                retry_after_s=30,
            ) from exc
        raise
    except BotoCoreError as exc:
        raise StorageUnavailable(f"{what}: {type(exc).__name__}") from exc


def client_config(settings: Settings) -> Config:
    """botocore's standard retry mode, bounded, with timeouts sized to the API's deadline."""
    return Config(
        retries={"mode": "standard", "total_max_attempts": settings.aws_max_attempts},
        connect_timeout=settings.aws_connect_timeout_s,
        read_timeout=settings.aws_read_timeout_s,
        max_pool_connections=max(16, settings.batch_write_workers * 2),
        tcp_keepalive=True,
    )


EMULATOR_HOSTS = ("localhost", "127.0.0.1", "::1", "localstack", "host.docker.internal")


def session_for(settings: Settings) -> boto3.session.Session:
    """A boto3 session; against a local emulator with no credentials configured, dummy ones
    (emulators ignore them, but botocore will not sign a request without some)."""
    session = boto3.session.Session(region_name=settings.aws_region)
    host = urlsplit(settings.aws_endpoint_url or "").hostname or ""
    if host in EMULATOR_HOSTS and session.get_credentials() is None:
        session = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name=settings.aws_region
        )
    return session


def make_clients(settings: Settings) -> tuple[Any, Any]:
    session = session_for(settings)
    kwargs = {"config": client_config(settings)}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    s3_kwargs = dict(kwargs)
    s3_kwargs["config"] = client_config(settings).merge(Config(s3={"addressing_style": "path"}))
    dynamodb, s3 = session.client("dynamodb", **kwargs), session.client("s3", **s3_kwargs)
    for client in (dynamodb, s3):
        retries.install(
            client, settings
        )  # bounded for the API's deadline: see depot.storage.retries
    return dynamodb, s3


def make_log_client(settings: Settings) -> Any:
    """An S3 client for the operational log shipper: few retries, short timeouts, its own pool,
    so that a slow S3 delays only the background shipper."""
    config = Config(
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=1,
        read_timeout=3,
        max_pool_connections=2,
        s3={"addressing_style": "path"},
    )
    kwargs: dict[str, Any] = {"config": config}
    if settings.aws_endpoint_url:
        kwargs["endpoint_url"] = settings.aws_endpoint_url
    return session_for(settings).client("s3", **kwargs)


# --- DynamoDB attribute values ------------------------------------------------------------------


def to_attr(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {k: to_attr(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return {"L": [to_attr(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__}")


def from_attr(attr: dict[str, Any]) -> Any:
    ((kind, value),) = attr.items()
    if kind == "S":
        return value
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_attr(v) for k, v in value.items()}
    if kind == "L":
        return [from_attr(v) for v in value]
    if kind == "SS":
        return sorted(value)
    raise TypeError(f"unexpected attribute type {kind}")


def to_item(record: dict[str, Any]) -> dict[str, Any]:
    return {k: to_attr(v) for k, v in record.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_attr(v) for k, v in item.items()}


def chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


# --- conditional writes and batches --------------------------------------------------------------

CONDITION_FAILED = "ConditionalCheckFailedException"


def conditional(what: str, write: Callable[..., dict[str, Any]], **request: Any) -> Any:
    """``write(**request)`` under ``outage_guard(what)``: its answer, or None if the write's
    condition did not hold (any other refusal is raised as it is)."""
    try:
        with outage_guard(what):
            return write(**request)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == CONDITION_FAILED:
            return None
        raise


def batch_get(
    dynamodb: Any, table: str, keys: list[dict[str, Any]], what: str, **options: Any
) -> Iterator[dict[str, Any]]:
    """The items of ``keys`` (at most 100, one BatchGetItem, consistent), as they arrive; what
    comes back unprocessed is asked again after a backoff with full jitter. ``options`` go into
    the table's request (a ProjectionExpression, say)."""
    pending: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True, **options}}
    delay = 0.05
    while pending:
        with outage_guard(what):
            out = dynamodb.batch_get_item(RequestItems=pending)
        yield from out.get("Responses", {}).get(table, [])
        pending = out.get("UnprocessedKeys") or {}
        if pending:
            time.sleep(random.uniform(0, delay))  # backoff with full jitter before asking again
            delay = min(delay * 2, 2.0)


def batch_write(dynamodb: Any, table: str, requests: list[dict[str, Any]], what: str) -> None:
    """One BatchWriteItem of at most 25 requests; what comes back unprocessed is sent again
    after a backoff with full jitter, up to 12 attempts, then ``StorageUnavailable``."""
    delay = 0.05
    for _ in range(12):
        with outage_guard(what):
            out = dynamodb.batch_write_item(RequestItems={table: requests})
        requests = out.get("UnprocessedItems", {}).get(table, [])
        if not requests:
            return
        time.sleep(random.uniform(0, delay))  # backoff with full jitter before resending
        delay = min(delay * 2, 2.0)
    raise StorageUnavailable(f"{what}: items stayed unprocessed")
