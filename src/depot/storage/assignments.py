"""The assignments table (``DeliveryAssignments``): exactly the assignment items, written with
parallel BatchWriteItem and updated by one conditional UpdateItem per status change."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from depot.config import Settings
from depot.storage.aws import (
    BATCH_GET_SIZE,
    BATCH_WRITE_SIZE,
    ConditionFailed,
    batch_get,
    batch_write,
    chunks,
    conditional,
    from_item,
    outage_guard,
    to_attr,
    to_item,
)


def _key(driver_id: str, package_id: str) -> dict[str, Any]:
    return {"driver_id": {"S": driver_id}, "package_id": {"S": package_id}}


@dataclass
class AssignmentTable:
    """The assignment items: batched writes and keyed reads, and the conditional updates that
    keep ``/update`` and plan changes from overwriting each other."""

    settings: Settings
    dynamodb: Any

    def write_items(
        self, records: Sequence[dict[str, Any]], should_stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Put every record with parallel BatchWriteItem; unprocessed items retried with jitter.

        ``should_stop`` is checked before each batch, so a writer that lost its lease stops.
        """
        batches = [list(b) for b in chunks(records, BATCH_WRITE_SIZE)]
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
        batch_write(self.dynamodb, table, requests, "writing assignments")

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
        for chunk in chunks(list(keys), BATCH_GET_SIZE):
            keyed = [_key(d, p) for d, p in chunk]
            found.extend(
                from_item(i)
                for i in batch_get(self.dynamodb, table, keyed, "reading assignments", **projection)
            )
        return found

    def get_item(self, driver_id: str, package_id: str) -> dict[str, Any] | None:
        with outage_guard("reading an assignment"):
            out = self.dynamodb.get_item(
                TableName=self.settings.assignments_table,
                Key=_key(driver_id, package_id),
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
        out = conditional(
            "updating a status",
            self.dynamodb.update_item,
            TableName=self.settings.assignments_table,
            Key=_key(driver_id, package_id),
            # a stale claim is left in place: it is ignored as stale by every later write
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        if out is None:
            raise ConditionFailed(f"{driver_id}/{package_id}")
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
        out = conditional(
            "claiming an assignment",
            self.dynamodb.update_item,
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
        if out is None:
            raise ConditionFailed(f"{driver_id}/{package_id}")
        return from_item(out["Attributes"])

    def unmark(self, driver_id: str, package_id: str, change_key: str) -> None:
        """Drop our claim (a plan change that did not commit)."""
        conditional(  # not ours (or gone): nothing to drop
            "releasing a claim",
            self.dynamodb.update_item,
            TableName=self.settings.assignments_table,
            Key=_key(driver_id, package_id),
            UpdateExpression="REMOVE #rel, #relat",
            ConditionExpression="#rel = :k",
            ExpressionAttributeNames={"#rel": "releasing", "#relat": "releasing_at"},
            ExpressionAttributeValues={":k": {"S": change_key}},
        )

    def delete_claimed(self, driver_id: str, package_id: str, change_key: str) -> bool:
        """Delete an item our committed change claimed; False if it is gone already."""
        answer = conditional(
            "removing an assignment",
            self.dynamodb.delete_item,
            TableName=self.settings.assignments_table,
            Key=_key(driver_id, package_id),
            ConditionExpression="#rel = :k",
            ExpressionAttributeNames={"#rel": "releasing"},
            ExpressionAttributeValues={":k": {"S": change_key}},
        )
        return answer is not None

    def put_item_once(self, record: dict[str, Any]) -> bool:
        """Put an item that must not exist yet (an archived attempt); False if it does."""
        answer = conditional(
            "archiving an attempt",
            self.dynamodb.put_item,
            TableName=self.settings.assignments_table,
            Item=to_item(record),
            ConditionExpression="attribute_not_exists(package_id)",
        )
        return answer is not None
