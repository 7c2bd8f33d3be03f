"""``POST /manifests`` (SPEC sections 1, 2 and 4) and ``POST /days/{day}/carry-over``.

Importing again adds packages and drivers and updates drivers' rules; it never changes an
assigned package, and it refuses (409, naming the packages) a rules change that would leave a
driver holding a package its new rules reject, unless the body says ``"release": true``, which
unassigns them first (a plan change).

A package id may come back on another day as its next attempt (at most ``MAX_ATTEMPTS``). The
earlier days it was on are found in a window of ``Settings.attempt_window_days`` days around
the new one; its earlier attempt must be over there (failed, unassigned, cancelled), and is then
archived beside the current item (``<package_id>#<day>``) before anything can overwrite it, so
nothing about an earlier day is ever changed by a later one.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from depot.core.day import MAX_ATTEMPTS, RECORDED_FIELDS, Change, DayState, Manifest
from depot.core.manifest import parse_manifest
from depot.core.models import Driver
from depot.errors import Busy, StateConflict, UnprocessableInput
from depot.observability import CHANGE_CONFLICTS
from depot.service.context import Context, archive_key
from depot.service.days import freeze_heap
from depot.service.plan import rejecting_rules
from depot.storage.objects import pack
from depot.storage.store import VersionConflict

COMMIT_ATTEMPTS = 50
OPEN_STATUSES = ("assigned", "accepted", "in_progress", "pending_write")


def manifest_key(day: str, version: int) -> str:
    return f"manifests/{day}/{version:08d}-{uuid.uuid4().hex}.json"


def import_stamp(actor: str, version: int) -> dict[str, Any]:
    """What the timeline says of an import: who, when, and the day's version it made."""
    return {"actor": actor, "at": time.time(), "version": version}


def rules_conflict(rejected: dict[str, str]) -> StateConflict:
    """The 409 of a re-import whose new rules held packages would break, without ``release``."""
    return StateConflict(
        f"{len(rejected)} held package(s) would break their driver's new rules; "
        'send "release": true to unassign them',
        {"packages": [{"package_id": p, "driver_id": d} for p, d in list(rejected.items())[:100]]},
    )


class Imports(Context):
    def import_body(self, raw: bytes, actor: str = "open") -> dict[str, Any]:
        """Import a manifest body as received: validated whole, then stored."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            packed = pool.submit(pack, raw)  # releases the GIL: runs while the body is validated
            body = parse_manifest(raw)
        release = body.release
        day = body.day or self.today()
        # a package the day already lists is updated there, not coming back from another day
        known = self.days.state(day)
        ids = body.package_ids()
        if known is not None:
            ids = [p for p in ids if p not in known.manifest.index]
        earlier = self._earlier_attempts(day, ids, actor)
        if earlier or known is not None:  # a day made meanwhile elsewhere: the commit says so
            return self.import_manifest(
                day, body.drivers, body.records(), release=release, actor=actor, earlier=earlier
            )
        key = manifest_key(day, 1)
        self.store.objects.put_bytes(key, packed.result())
        try:
            version = self.store.days.commit_manifest(
                day,
                0,
                key,
                {"drivers": len(body.drivers), "packages": len(body.packages)},
                imported=import_stamp(actor, 1),
            )
        except VersionConflict:  # another import of the day came first: merge into it
            return self.import_manifest(
                day, body.drivers, body.records(), release=release, actor=actor
            )
        self.days.keep_body(day, key, body)
        counts = {
            "drivers_added": len(body.drivers),
            "drivers_updated": 0,
            "packages_added": len(body.packages),
            "packages_updated": 0,
            "packages_unchanged": 0,
        }
        return self._imported(
            day, version, key, counts, len(body.drivers), len(body.packages), actor
        )

    def import_manifest(
        self,
        day: str,
        drivers: list[Driver],
        records: Sequence[dict[str, Any]],
        release: bool = False,
        actor: str = "open",
        earlier: dict[str, list[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """Merge into the stored day; see the module's docstring."""
        records = [self._as_attempt(r, (earlier or {}).get(r["package_id"], [])) for r in records]
        released: set[str] = set()  # what this import unassigned (its answer lists them)
        with self.writer.turn(day) as deadline:
            for _ in self.writer.attempts(deadline, COMMIT_ATTEMPTS):
                state = self.days.state(day)
                if state is not None and state.pending:
                    state = self.writer.settled(day, deadline)
                stamp = import_stamp(actor, (state.version if state else 0) + 1)
                merged, counts = merge(state, drivers, records, stamp)
                rejected = rules_rejecting_held(state, merged) if state else {}
                if rejected:
                    if not release:
                        raise rules_conflict(rejected)
                    if self._release(state, rejected, actor):
                        released.update(rejected)
                    continue  # the day moved: merge again on the new state
                key = manifest_key(day, (state.version if state else 0) + 1)
                self.store.objects.put_json(key, merged.to_stored())
                incarnation = uuid.uuid4().hex
                try:
                    version = self.store.days.commit_manifest(
                        day,
                        state.version if state else 0,
                        key,
                        {"drivers": len(merged.drivers), "packages": len(merged.packages)},
                        incarnation,
                        imported=stamp,
                    )
                except VersionConflict:
                    CHANGE_CONFLICTS.labels("import").inc()
                    continue
                merged = replace(merged, key=key)
                base = state or DayState(day=day, version=0, manifest=merged)
                imported = replace(base, manifest=merged, version=version)
                if state is None:
                    imported = replace(imported, incarnation=incarnation)
                self.days.remember(imported)
                freeze_heap(imported)
                return self._imported(
                    day,
                    version,
                    key,
                    counts,
                    len(merged.drivers),
                    len(merged.packages),
                    actor,
                    released=sorted(released),
                )
        raise Busy("the day kept changing while importing; try again")

    def _release(self, state: DayState, rejected: dict[str, str], actor: str) -> bool:
        """Unassign what the new rules reject; False when the day moved first (merge again)."""
        change = Change(
            version=0,
            kind="unassign",
            actor=actor,
            at=time.time(),
            release=rejected,
            moves=self.moves_of(self.held_items(state, list(rejected)), rejected),
            reason="rules_changed",
        )
        event = {
            "type": "unassigned",
            "actor": actor,
            "packages": sorted(rejected),
            "reason": "rules_changed",
        }
        return self.writer.commit(state, change, event) is not None

    def _imported(
        self,
        day: str,
        version: int,
        key: str,
        counts: dict[str, int],
        drivers: int,
        packages: int,
        actor: str,
        released: list[str] | None = None,
    ) -> dict[str, Any]:
        result = {
            "day": day,
            "version": version,
            **counts,
            "drivers_total": drivers,
            "packages_total": packages,
        }
        if released:
            result["released"] = released
        self.feed.publish(
            day, {"type": "manifest_imported", "actor": actor, **result, "manifest_key": key}
        )
        return result

    # --- another attempt ------------------------------------------------------------------------

    def window(self, day: str) -> list[str]:
        """The other days a package of ``day`` is looked for on (nearest first)."""
        d = date.fromisoformat(day)
        n = self.settings.attempt_window_days
        days = []
        for k in range(1, n + 1):
            for step in (-k, k):
                try:
                    days.append((d + timedelta(days=step)).isoformat())
                except OverflowError:  # before 0001-01-01 or after 9999-12-31: no such day
                    continue
        return days

    def _seen_around(self, day: str, package_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Where each of ``package_ids`` is on the other days of the window: one entry per
        (package, day), with its status there and whether that refuses it coming back to ``day``
        (delivered, still open, or left in a later day's pool)."""
        wanted = set(package_ids)
        if not wanted:
            return []
        window = self.window(day)
        with ThreadPoolExecutor(max_workers=8) as pool:  # one GetItem a day, at once
            stored = [
                d
                for d, item in zip(window, pool.map(self.store.days.get_day, window), strict=True)
                if item
            ]
        seen = []
        for other in stored:
            state = self.days.state(other)
            if state is None:
                continue
            here = [p for p in wanted if p in state.manifest.index]
            if not here:
                continue
            statuses = self.statuses(state, here)
            for p in here:
                status = statuses.get(p)
                if p in state.plan.carried and state.plan.carried[p] == day:
                    status = "carried"
                elif p in state.plan.cancelled:
                    status = "cancelled"
                elif status is None:
                    status = "unassigned"
                refuses = (
                    status == "delivered"
                    or status in OPEN_STATUSES
                    or (status == "unassigned" and other > day)
                )
                seen.append(
                    {
                        "package_id": p,
                        "day": other,
                        "status": status,
                        "refuses": refuses,
                        "driver_id": state.plan.holder.get(p),
                        "attempt": state.manifest.package(p).get("attempt", 1),
                    }
                )
        return seen

    @staticmethod
    def _refuse(seen: list[dict[str, Any]]) -> None:
        """409 naming the packages delivered or still open on another day, if any."""
        refused = [{k: s[k] for k in ("package_id", "day", "status")} for s in seen if s["refuses"]]
        if refused:
            first = refused[0]
            raise StateConflict(
                f"{len(refused)} package(s) are delivered or still open on another day: "
                f"{first['package_id']} is {first['status']} on {first['day']}",
                {"packages": refused[:100]},
            )

    def _earlier_attempts(
        self, day: str, package_ids: Sequence[str], actor: str = "open"
    ) -> dict[str, list[dict[str, Any]]]:
        """Each package's attempts on other days in the window; 409 if one is delivered or still
        open there. Archives each earlier attempt's item beside it before the package comes back."""
        seen = self._seen_around(day, package_ids)
        self._refuse(seen)
        found: dict[str, list[dict[str, Any]]] = {}
        carry: dict[str, list[str]] = {}
        for s in seen:
            if s["status"] == "unassigned":  # left in an earlier day's pool: carried over from it
                carry.setdefault(s["day"], []).append(s["package_id"])
            found.setdefault(s["package_id"], []).append(
                {k: s[k] for k in ("day", "status", "driver_id", "attempt")}
            )
        for other, stranded in carry.items():
            self._carry_out(other, day, stranded, actor)
        for p, attempts in found.items():
            self._archive(p, attempts)
        return found

    def _carry_out(self, from_day: str, to_day: str, package_ids: list[str], actor: str) -> None:
        """Take packages out of an earlier day's pool for good: they go on as ``to_day``'s next
        attempt (the earlier day lists them as carried over and can no longer assign them)."""
        while True:
            source = self.writer.settled(from_day)
            plan = source.plan
            todo = [p for p in package_ids if p not in plan.carried and p not in plan.cancelled]
            if not todo:
                return
            change = Change(
                version=0,
                kind="carry_out",
                actor=actor,
                at=time.time(),
                carry_out=dict.fromkeys(todo, to_day),
            )
            event = {
                "type": "carried_over",
                "actor": actor,
                "to_day": to_day,
                "packages": len(todo),
            }
            if self.writer.commit(source, change, event) is not None:
                return

    def _archive(self, package_id: str, attempts: list[dict[str, Any]]) -> None:
        for attempt in attempts:
            driver_id = attempt.get("driver_id")
            if not driver_id:
                continue
            item = self.store.assignments.get_item(driver_id, package_id)
            if item and item.get("day") == attempt["day"]:
                self.store.assignments.put_item_once(
                    {
                        **item,
                        "package_id": archive_key(package_id, attempt["day"]),
                        "attempt_of": package_id,
                    }
                )

    def _as_attempt(self, record: dict[str, Any], earlier: list[dict[str, Any]]) -> dict[str, Any]:
        if not earlier:
            return record
        attempt = max(a["attempt"] for a in earlier) + 1
        if attempt > MAX_ATTEMPTS:
            raise StateConflict(
                f"package {record['package_id']} has had {attempt - 1} attempts "
                f"(at most {MAX_ATTEMPTS})",
                {"package_id": record["package_id"], "attempts": earlier},
            )
        days = sorted({a["day"] for a in earlier})
        return {**record, "attempt": attempt, "previous_days": days}

    def carry_over(self, day: str, from_day: str, actor: str) -> dict[str, Any]:
        """Bring every package of ``from_day`` that failed or stayed unassigned into ``day``."""
        if from_day >= day:
            raise UnprocessableInput(
                "carry-over goes from an earlier day to a later one", {"from": from_day, "day": day}
            )
        source = self.writer.settled(from_day)
        plan = source.plan
        ids = [p["package_id"] for p in source.manifest.packages]
        statuses = self.statuses(source, [p for p in ids if p in plan.holder])
        target = self.days.state(day)
        already = set(target.manifest.index) if target else set()
        candidates, exhausted = [], []
        for p in ids:
            if (
                p in already
                or p in plan.cancelled
                or (p in plan.carried and plan.carried[p] != day)
            ):
                continue
            if not (statuses.get(p) == "failed_to_deliver" or p not in plan.holder):
                continue
            record = source.manifest.package(p)
            if record.get("attempt", 1) >= MAX_ATTEMPTS:
                exhausted.append(p)
                continue
            candidates.append(p)
        # delivered or still open on another day: it cannot come back here (409, as an import)
        self._refuse([s for s in self._seen_around(day, candidates) if s["day"] != from_day])
        self._carry_out(from_day, day, [p for p in candidates if p not in plan.carried], actor)
        earlier = {}
        for p in candidates:
            failed = p in plan.holder
            if failed:
                self._archive(p, [{"day": from_day, "driver_id": plan.holder[p]}])
            earlier[p] = [
                {
                    "day": from_day,
                    "status": statuses.get(p, "unassigned"),
                    "attempt": source.manifest.package(p).get("attempt", 1),
                }
            ]
        records = [_strip(source.manifest.package(p)) for p in candidates]
        if records:
            result = self.import_manifest(day, [], records, actor=actor, earlier=earlier)
        else:
            result = {"day": day, "version": target.version if target else 0}
        self.feed.publish(
            day,
            {"type": "carried_over", "actor": actor, "from": from_day, "packages": len(candidates)},
        )
        return {
            "day": day,
            "from": from_day,
            "carried_over": candidates,
            "exhausted": exhausted,
            "version": result.get("version"),
        }


def _strip(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in RECORDED_FIELDS}


def merge(
    state: DayState | None,
    drivers: list[Driver],
    records: Sequence[dict[str, Any]],
    stamp: dict[str, Any] | None = None,
):
    """The day's manifest with ``drivers`` and ``records`` merged in, and what changed. Each
    package it adds records ``stamp`` (the import's actor, time and day version) as its
    ``imported``; a package already there keeps its own."""
    old_drivers = dict(state.manifest.drivers) if state else {}
    old_packages = list(state.manifest.packages) if state else []
    index = dict(state.manifest.index) if state else {}
    holder = state.plan.holder if state else {}
    gone = state.plan.carried if state else {}  # went on as another day's attempt: history here
    counts: Counter[str] = Counter()
    conflicts = []
    for driver in drivers:
        counts["drivers_added" if driver.driver_id not in old_drivers else "drivers_updated"] += 1
        old_drivers[driver.driver_id] = driver
    for record in records:
        pid = record["package_id"]
        at = index.get(pid)
        if at is None:
            index[pid] = len(old_packages)
            old_packages.append({**record, "imported": stamp} if stamp else record)
            counts["packages_added"] += 1
        elif _strip(old_packages[at]) != _strip(record):
            if pid in holder or pid in gone:
                conflicts.append(pid)
                continue
            # what the day recorded of the package's attempts stays the day's
            kept = {k: old_packages[at][k] for k in RECORDED_FIELDS if k in old_packages[at]}
            old_packages[at] = {**_strip(record), **kept}
            counts["packages_updated"] += 1
        else:
            counts["packages_unchanged"] += 1
    if conflicts:
        raise StateConflict(
            f"{len(conflicts)} package(s) are already assigned (or went on to another day) "
            "and cannot be changed",
            {"package_ids": conflicts[:100]},
        )
    manifest = Manifest.build(
        state.manifest.key if state else "", list(old_drivers.values()), old_packages
    )
    keys = (
        "drivers_added",
        "drivers_updated",
        "packages_added",
        "packages_updated",
        "packages_unchanged",
    )
    return manifest, {k: counts.get(k, 0) for k in keys}


def rules_rejecting_held(state: DayState, merged: Manifest) -> dict[str, str]:
    """Held packages whose driver's rules (as merged) no longer accept them: package -> driver."""
    out: dict[str, str] = {}
    for driver_id, held in state.plan.held_by.items():
        new, old = merged.drivers.get(driver_id), state.manifest.drivers.get(driver_id)
        if not held or new is None or (old is not None and old.rules == new.rules):
            continue
        for p in held:
            if rejecting_rules(new, merged.package(p)):
                out[p] = driver_id
    return out


def _record(package: Any) -> dict[str, Any]:
    """The stored form of a package given as a model or as an already validated record."""
    from depot.core.models import _stored_record

    if isinstance(package, dict):
        return package
    return _stored_record(package.model_dump(mode="json"))
