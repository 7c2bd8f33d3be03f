"""The events table (``DepotEvents``): the day's ordered change feed (``GET /events``); item 0
of a day is its counter (``last``, ``count_<status>``), the others its numbered events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from depot.config import Settings
from depot.storage.aws import (
    BATCH_GET_SIZE,
    BATCH_WRITE_SIZE,
    batch_get,
    batch_write,
    chunks,
    outage_guard,
)


def _event_key(day: str, seq: int) -> dict[str, Any]:
    return {"day": {"S": day}, "seq": {"S": f"{seq:012d}"}}


@dataclass
class EventTable:
    """The numbered events of each day and the counter item that numbers them."""

    settings: Settings
    dynamodb: Any

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
        for chunk in chunks(list(events), BATCH_WRITE_SIZE):
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
            batch_write(self.dynamodb, table, requests, "storing events")

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
        for chunk in chunks(list(seqs), BATCH_GET_SIZE):
            keys = [_event_key(day, s) for s in chunk]
            for item in batch_get(self.dynamodb, table, keys, "reading events"):
                found[int(item["seq"]["S"])] = orjson.loads(item["event"]["S"])
        return found
