"""The days table (``DepotDays``): one item per day, ``version`` advanced by one conditional
write per manifest import or assignment run (optimistic concurrency), pointing at the day's
manifest and runs; ``pending`` maps each committed run not yet fully written out to its
writer's lease expiry."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from depot.config import Settings
from depot.storage.aws import VersionConflict, conditional, from_item, outage_guard, to_attr


@dataclass
class DayTable:
    """The day items: reads, the version-checked commits, compaction and the run leases."""

    settings: Settings
    dynamodb: Any

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
        answer = conditional(
            what,
            self.dynamodb.update_item,
            TableName=self.settings.days_table,
            Key={"day": {"S": day}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
        return answer is not None

    def _advance(self, day: str, expected: int, sets: dict[str, Any]) -> int:
        """SET ``sets`` and version = expected + 1, only if the day is still at ``expected``."""
        names = {"#v": "version"}
        values: dict[str, Any] = {":next": {"N": str(expected + 1)}}
        assignments = ["#v = :next"]
        names.update({path: path[1:] for path in sets if path.startswith("#")})
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
        imported: dict[str, Any] | None = None,
    ) -> int:
        """Point the day at a new manifest. The first one also records ``imported`` (who made
        the day and when: the timeline's ``imported`` of the packages of its first body)."""
        sets: dict[str, Any] = {
            "manifest_key": manifest_key,
            "counts": counts,
            "updated_at": time.time(),
        }
        if expected == 0:  # a new incarnation of the day: caches of an earlier one are void
            sets.update({"#log": [], "pending": {}, "incarnation": incarnation or uuid.uuid4().hex})
            if imported:
                sets["#imported"] = imported
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
