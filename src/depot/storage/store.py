"""The store: every read and write Depot makes to DynamoDB and S3, and nothing else.

Layout (see ``docs/design.md``):

* ``DepotDays``: one item per day, ``version`` advanced by one conditional write per manifest
  import or assignment run (optimistic concurrency), pointing at the day's manifest and runs;
  ``pending`` maps each committed run not yet fully written out to its writer's lease expiry.
* S3 state bucket: the day's manifest and each committed run, as JSON, under keys that
  are never overwritten.
* ``DeliveryAssignments``: exactly the assignment items, written with parallel BatchWriteItem
  and updated by one conditional UpdateItem per status change.

Outages surface as ``StorageUnavailable`` (the API answers 503); nothing else leaks botocore.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import boto3
import orjson
import zstandard
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from depot.config import Settings
from depot.storage import retries

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESS_MIN_BYTES = 64 * 1024
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


def pack(document: bytes) -> bytes:
    """A JSON document as the state bucket keeps it: zstd-compressed from 64 KiB up.

    A large day's manifest shrinks 5x and is stored in a third of the time; compressing it takes
    about 50 ms and releases the GIL, so it can run while the body is validated
    (docs/performance.md). ``get_bytes`` recognises the zstd frame (JSON never starts so).
    """
    if len(document) < COMPRESS_MIN_BYTES:
        return document
    return zstandard.ZstdCompressor(level=1).compress(document)


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


def _key(driver_id: str, package_id: str) -> dict[str, Any]:
    return {"driver_id": {"S": driver_id}, "package_id": {"S": package_id}}


def _event_key(day: str, seq: int) -> dict[str, Any]:
    return {"day": {"S": day}, "seq": {"S": f"{seq:012d}"}}


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


@dataclass
class Store:
    settings: Settings
    dynamodb: Any
    s3: Any

    # --- days ---------------------------------------------------------------------------------

    def get_day(self, day: str) -> dict[str, Any] | None:
        with outage_guard("reading the day"):
            out = self.dynamodb.get_item(
                TableName=self.settings.days_table, Key={"day": {"S": day}}, ConsistentRead=True
            )
        item = out.get("Item")
        return from_item(item) if item else None

    def list_days(self) -> list[str]:
        """All days with a manifest, newest first (one small item per day)."""
        days: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": self.settings.days_table,
            "ProjectionExpression": "#d",
        }
        kwargs["ExpressionAttributeNames"] = {"#d": "day"}
        with outage_guard("listing days"):
            while True:
                page = self.dynamodb.scan(**kwargs)
                days.extend(i["day"]["S"] for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(days, reverse=True)

    def _update_day(
        self,
        day: str,
        what: str,
        update: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        """One conditional UpdateItem on the day's item; False if the condition did not hold."""
        try:
            with outage_guard(what):
                self.dynamodb.update_item(
                    TableName=self.settings.days_table,
                    Key={"day": {"S": day}},
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _advance(self, day: str, expected: int, sets: dict[str, Any]) -> int:
        """SET ``sets`` and version = expected + 1, only if the day is still at ``expected``."""
        names = {"#v": "version"}
        values: dict[str, Any] = {":next": {"N": str(expected + 1)}}
        assignments = ["#v = :next"]
        if "#log" in sets:
            names["#log"] = "log"
        for i, (path, value) in enumerate(sets.items()):
            values[f":s{i}"] = to_attr(value)
            assignments.append(f"{path} = :s{i}")
        if expected == 0:
            names["#day"] = "day"
            condition = "attribute_not_exists(#day)"
        else:
            values[":expected"] = {"N": str(expected)}
            condition = "#v = :expected"
        if not self._update_day(
            day, "committing the day", "SET " + ", ".join(assignments), condition, names, values
        ):
            raise VersionConflict(day)
        return expected + 1

    def commit_manifest(
        self,
        day: str,
        expected: int,
        manifest_key: str,
        counts: dict[str, int],
        incarnation: str | None = None,
    ) -> int:
        sets: dict[str, Any] = {
            "manifest_key": manifest_key,
            "counts": counts,
            "updated_at": time.time(),
        }
        if expected == 0:  # a new incarnation of the day: caches of an earlier one are void
            sets.update({"#log": [], "pending": {}, "incarnation": incarnation or uuid.uuid4().hex})
        return self._advance(day, expected, sets)

    def commit_change(self, day: str, expected: int, change_key: str, lease: dict[str, Any]) -> int:
        """Append the change to the day's log and mark it pending, leased to the caller, in one
        conditional write (the day must still be at ``expected``)."""
        committed = self._update_day(
            day,
            "committing a change",
            "SET #v = :next, #log = list_append(if_not_exists(#log, :empty), :key), "
            "#pending.#key = :lease, updated_at = :now",
            "#v = :expected",
            {"#v": "version", "#log": "log", "#pending": "pending", "#key": change_key},
            {
                ":expected": {"N": str(expected)},
                ":next": {"N": str(expected + 1)},
                ":key": {"L": [{"S": change_key}]},
                ":empty": {"L": []},
                ":lease": to_attr(lease),
                ":now": to_attr(time.time()),
            },
        )
        if not committed:
            raise VersionConflict(day)
        return expected + 1

    def compact(
        self,
        day: str,
        snapshot_key: str,
        snapshot_version: int,
        dropped: int,
        previous_snapshot_version: int,
    ) -> bool:
        """Point the day at a new snapshot and drop the first ``dropped`` log entries (those it
        folds in). The day's version does not move: the state it describes is the same."""
        removes = ", ".join(f"#log[{i}]" for i in range(dropped))
        return self._update_day(
            day,
            "compacting the day",
            f"SET snapshot_key = :k, snapshot_version = :sv REMOVE {removes}",
            "attribute_not_exists(snapshot_version) OR snapshot_version = :old",
            {"#log": "log"},
            {
                ":k": {"S": snapshot_key},
                ":sv": {"N": str(snapshot_version)},
                ":old": {"N": str(previous_snapshot_version)},
            },
        )

    def set_lease(
        self,
        day: str,
        run_key: str,
        lease: dict[str, Any],
        *,
        if_owner: str | None = None,
        if_expired_before: float | None = None,
    ) -> bool:
        """Write a run's lease if it is still pending and held by ``if_owner`` or expired."""
        names = {"#pending": "pending", "#run": run_key}
        values: dict[str, Any] = {":lease": to_attr(lease)}
        condition = "attribute_exists(#pending.#run)"
        if if_owner is not None:
            condition += " AND #pending.#run.#owner = :owner"
            names["#owner"] = "owner"
            values[":owner"] = {"S": if_owner}
        if if_expired_before is not None:
            condition += " AND #pending.#run.#expires < :now"
            names["#expires"] = "expires"
            values[":now"] = to_attr(if_expired_before)
        return self._update_day(
            day, "leasing a run", "SET #pending.#run = :lease", condition, names, values
        )

    def finish_run(self, day: str, run_key: str) -> None:
        with outage_guard("finishing a run"):
            self.dynamodb.update_item(
                TableName=self.settings.days_table,
                Key={"day": {"S": day}},
                UpdateExpression="REMOVE #pending.#run",
                ExpressionAttributeNames={"#pending": "pending", "#run": run_key},
            )

    # --- blobs (S3 state bucket) ----------------------------------------------------------------

    def put_json(self, key: str, payload: Any) -> None:
        """Store once, never overwrite (``If-None-Match: *``)."""
        self.put_bytes(key, pack(orjson.dumps(payload)))

    def put_bytes(self, key: str, body: bytes) -> None:
        """Store a JSON document once, never overwrite; ``body`` as it is or ``pack``-ed."""
        extra = {"ContentEncoding": "zstd"} if body[:4] == ZSTD_MAGIC else {}
        with outage_guard("storing state"):
            self.s3.put_object(
                Bucket=self.settings.state_bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
                **extra,
            )

    def get_json(self, key: str) -> Any:
        return orjson.loads(self.get_bytes(key))

    def get_bytes(self, key: str) -> bytes:
        with outage_guard("reading state"):
            body = self.s3.get_object(Bucket=self.settings.state_bucket, Key=key)["Body"].read()
        return zstandard.ZstdDecompressor().decompress(body) if body[:4] == ZSTD_MAGIC else body

    # --- assignment items -------------------------------------------------------------------------

    def write_items(
        self, records: Sequence[dict[str, Any]], should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Put every record with parallel BatchWriteItem; unprocessed items retried with jitter.

        ``should_stop`` is checked before each batch, so a writer that lost its lease stops.
        """
        batches = [list(b) for b in _chunks(records, BATCH_WRITE_SIZE)]
        if not batches:
            return
        workers = max(1, min(self.settings.batch_write_workers, len(batches)))
        failed = threading.Event()  # after one batch fails, the rest are not tried: fail fast

        def write(batch: list[dict[str, Any]]) -> None:
            try:
                self._write_batch(batch, lambda: failed.is_set() or should_stop())
            except BaseException:
                failed.set()
                raise

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(write, batches))

    def _write_batch(
        self, records: Sequence[dict[str, Any]], should_stop: Callable[[], bool]
    ) -> None:
        if should_stop():
            return
        table = self.settings.assignments_table
        requests = [{"PutRequest": {"Item": to_item(r)}} for r in records]
        delay = 0.05
        for attempt in range(12):
            with outage_guard("writing assignments"):
                out = self.dynamodb.batch_write_item(RequestItems={table: requests})
            requests = out.get("UnprocessedItems", {}).get(table, [])
            if not requests:
                return
            time.sleep(random.uniform(0, delay))  # backoff with full jitter before resending
            delay = min(delay * 2, 2.0)
        raise StorageUnavailable("writing assignments: items stayed unprocessed")

    def get_items(
        self, keys: Iterable[tuple[str, str]], attributes: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Keyed reads with BatchGetItem (never a Query: its cost in the emulator grows with the
        whole table, docs/performance.md).

        ``attributes`` limits what is read (a ProjectionExpression): the emulator's cost is per
        attribute returned, so a read of statuses only is several times faster.
        """
        table = self.settings.assignments_table
        found: list[dict[str, Any]] = []
        projection: dict[str, Any] = {}
        if attributes:
            names = {f"#a{i}": name for i, name in enumerate(attributes)}
            projection = {
                "ProjectionExpression": ", ".join(names),
                "ExpressionAttributeNames": names,
            }
        for chunk in _chunks(list(keys), BATCH_GET_SIZE):
            pending = {
                table: {
                    "Keys": [{"driver_id": {"S": d}, "package_id": {"S": p}} for d, p in chunk],
                    "ConsistentRead": True,
                    **projection,
                }
            }
            delay = 0.05
            while pending:
                with outage_guard("reading assignments"):
                    out = self.dynamodb.batch_get_item(RequestItems=pending)
                found.extend(from_item(i) for i in out.get("Responses", {}).get(table, []))
                pending = out.get("UnprocessedKeys") or {}
                if pending:
                    time.sleep(random.uniform(0, delay))
                    delay = min(delay * 2, 2.0)
        return found

    def get_item(self, driver_id: str, package_id: str) -> dict[str, Any] | None:
        with outage_guard("reading an assignment"):
            out = self.dynamodb.get_item(
                TableName=self.settings.assignments_table,
                Key={"driver_id": {"S": driver_id}, "package_id": {"S": package_id}},
                ConsistentRead=True,
            )
        item = out.get("Item")
        return from_item(item) if item else None

    def update_status(
        self,
        driver_id: str,
        package_id: str,
        status: str,
        allowed_from: Sequence[str],
        now: float,
        extra: dict[str, Any] | None = None,
        stale_before: float = 0.0,
    ) -> dict[str, Any]:
        """One conditional UpdateItem: the move happens only from an allowed previous status and
        only if no plan change holds the item (``releasing``, unless that mark is older than
        ``stale_before``). ``extra`` attributes (reason, note, proof, actor) are set with it."""
        values: dict[str, Any] = {
            ":new": {"S": status},
            ":now": to_attr(now),
            ":one": {"N": "1"},
            ":stale": to_attr(stale_before),
        }
        names = {
            "#s": "status",
            "#ts": f"{status}_at",
            "#rel": "releasing",
            "#relat": "releasing_at",
        }
        placeholders = []
        for i, prev in enumerate(allowed_from):
            values[f":p{i}"] = {"S": prev}
            placeholders.append(f":p{i}")
        sets = ["#s = :new", "updated_at = :now", "#ts = :now", "version = version + :one"]
        for i, (name, value) in enumerate((extra or {}).items()):
            names[f"#x{i}"] = name
            values[f":x{i}"] = to_attr(value)
            sets.append(f"#x{i} = :x{i}")
        condition = (
            f"attribute_exists(package_id) AND #s IN ({', '.join(placeholders)}) AND "
            "(attribute_not_exists(#rel) OR #relat < :stale)"
        )
        try:
            with outage_guard("updating a status"):
                out = self.dynamodb.update_item(
                    TableName=self.settings.assignments_table,
                    Key=_key(driver_id, package_id),
                    # a stale claim is left in place: it is ignored as stale by every later write
                    UpdateExpression="SET " + ", ".join(sets),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="ALL_OLD",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailed(f"{driver_id}/{package_id}") from None
            raise
        old = from_item(out["Attributes"])
        new = {k: v for k, v in old.items() if k not in ("releasing", "releasing_at")}
        new.update(
            {
                "status": status,
                "updated_at": now,
                f"{status}_at": now,
                "version": int(old.get("version", 0)) + 1,
                **(extra or {}),
            }
        )
        new["_previous_status"] = old.get("status")
        return new

    def mark_release(
        self, driver_id: str, package_id: str, change_key: str, now: float, stale_before: float
    ) -> dict[str, Any]:
        """Claim an item for a plan change that will remove it: only from ``assigned`` or
        ``accepted`` and only if no live mark of another change is on it. From then on a
        ``/update`` of it fails its condition: of the two, exactly one wins."""
        try:
            with outage_guard("claiming an assignment"):
                out = self.dynamodb.update_item(
                    TableName=self.settings.assignments_table,
                    Key=_key(driver_id, package_id),
                    UpdateExpression="SET #rel = :k, #relat = :now",
                    ConditionExpression="attribute_exists(package_id) AND #s IN (:a, :c) AND "
                    "(attribute_not_exists(#rel) OR #rel = :k OR #relat < :stale)",
                    ExpressionAttributeNames={
                        "#s": "status",
                        "#rel": "releasing",
                        "#relat": "releasing_at",
                    },
                    ExpressionAttributeValues={
                        ":k": {"S": change_key},
                        ":now": to_attr(now),
                        ":stale": to_attr(stale_before),
                        ":a": {"S": "assigned"},
                        ":c": {"S": "accepted"},
                    },
                    ReturnValues="ALL_NEW",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise ConditionFailed(f"{driver_id}/{package_id}") from None
            raise
        return from_item(out["Attributes"])

    def unmark(self, driver_id: str, package_id: str, change_key: str) -> None:
        """Drop our claim (a plan change that did not commit)."""
        try:
            with outage_guard("releasing a claim"):
                self.dynamodb.update_item(
                    TableName=self.settings.assignments_table,
                    Key=_key(driver_id, package_id),
                    UpdateExpression="REMOVE #rel, #relat",
                    ConditionExpression="#rel = :k",
                    ExpressionAttributeNames={"#rel": "releasing", "#relat": "releasing_at"},
                    ExpressionAttributeValues={":k": {"S": change_key}},
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def delete_claimed(self, driver_id: str, package_id: str, change_key: str) -> bool:
        """Delete an item our committed change claimed; False if it is gone already."""
        try:
            with outage_guard("removing an assignment"):
                self.dynamodb.delete_item(
                    TableName=self.settings.assignments_table,
                    Key=_key(driver_id, package_id),
                    ConditionExpression="#rel = :k",
                    ExpressionAttributeNames={"#rel": "releasing"},
                    ExpressionAttributeValues={":k": {"S": change_key}},
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def put_item_once(self, record: dict[str, Any]) -> bool:
        """Put an item that must not exist yet (an archived attempt); False if it does."""
        try:
            with outage_guard("archiving an attempt"):
                self.dynamodb.put_item(
                    TableName=self.settings.assignments_table,
                    Item=to_item(record),
                    ConditionExpression="attribute_not_exists(package_id)",
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- events (the day's ordered change feed, GET /events) ----------------------------------

    def next_event_seq(self, day: str, counts: dict[str, int] | None = None, n: int = 1) -> int:
        """Take the day's next ``n`` event numbers (returns the last), and move the day's status
        counters by ``counts``, in one atomic ADD on the day's counter item (sequence 0)."""
        names = {"#last": "last"}
        values: dict[str, Any] = {":one": {"N": str(n)}}
        adds = ["#last :one"]
        for i, (name, delta) in enumerate((counts or {}).items()):
            if delta:
                names[f"#c{i}"] = f"count_{name}"
                values[f":c{i}"] = {"N": str(delta)}
                adds.append(f"#c{i} :c{i}")
        with outage_guard("numbering an event"):
            out = self.dynamodb.update_item(
                TableName=self.settings.events_table,
                Key=_event_key(day, 0),
                UpdateExpression="ADD " + ", ".join(adds),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        return int(out["Attributes"]["last"]["N"])

    def put_events(self, day: str, events: Sequence[dict[str, Any]]) -> None:
        """Store numbered events (each has ``seq``) with BatchWriteItem."""
        table = self.settings.events_table
        for chunk in _chunks(list(events), BATCH_WRITE_SIZE):
            requests = [
                {
                    "PutRequest": {
                        "Item": {
                            **_event_key(day, e["seq"]),
                            "event": {"S": orjson.dumps(e).decode()},
                        }
                    }
                }
                for e in chunk
            ]
            delay = 0.05
            for _ in range(12):
                with outage_guard("storing events"):
                    out = self.dynamodb.batch_write_item(RequestItems={table: requests})
                requests = out.get("UnprocessedItems", {}).get(table, [])
                if not requests:
                    break
                time.sleep(random.uniform(0, delay))
                delay = min(delay * 2, 2.0)
            else:
                raise StorageUnavailable("storing events: items stayed unprocessed")

    def event_counter(self, day: str) -> dict[str, int]:
        """The counter item: ``last`` (the newest event number) and ``count_<status>`` figures."""
        with outage_guard("reading the event counter"):
            out = self.dynamodb.get_item(
                TableName=self.settings.events_table, Key=_event_key(day, 0), ConsistentRead=True
            )
        item = out.get("Item") or {}
        return {k: int(v["N"]) for k, v in item.items() if "N" in v}

    def get_events(self, day: str, seqs: Sequence[int]) -> dict[int, dict[str, Any]]:
        table = self.settings.events_table
        found: dict[int, dict[str, Any]] = {}
        for chunk in _chunks(list(seqs), BATCH_GET_SIZE):
            pending = {table: {"Keys": [_event_key(day, s) for s in chunk], "ConsistentRead": True}}
            while pending:
                with outage_guard("reading events"):
                    out = self.dynamodb.batch_get_item(RequestItems=pending)
                for item in out.get("Responses", {}).get(table, []):
                    found[int(item["seq"]["S"])] = orjson.loads(item["event"]["S"])
                pending = out.get("UnprocessedKeys") or {}
        return found

    # --- health -------------------------------------------------------------------------------

    def check_dynamodb(self) -> None:
        with outage_guard("DynamoDB"):
            self.dynamodb.describe_table(TableName=self.settings.assignments_table)

    def check_s3(self) -> None:
        with outage_guard("S3"):
            self.s3.head_bucket(Bucket=self.settings.state_bucket)
