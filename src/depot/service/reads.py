"""The reads: a driver's packages, a package and its history, the day's manifest, and the board's
views of a day (summary, drivers, the unassigned pool by reason, destinations, eligible drivers).

Every read of a day answers from that day's records: an item whose ``day`` is another (the same
driver took the package again later) is read from the attempt archived beside it.
"""

from __future__ import annotations

import re
import threading
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
import orjson

from depot.core.day import MAX_ATTEMPTS, OFF_DUTY, ON_DUTY, STATUSES, DayState, status_moves
from depot.core.explain import explain_unassigned
from depot.core.rules import PackageColumns, RuleMasks
from depot.errors import NotFound
from depot.service.context import Context, archive_key

ITEM_FIELDS = ("package_id", "status", "updated_at", "day", "reason", "note", "proof", "attempt")
MAP_CELLS = 40
MEMO_ENTRIES = 16


class Reads(Context):
    _encoded: tuple[tuple[str, int, str, str], bytes] | None = None

    def driver_assignments(self, driver_id: str, day: str) -> dict[str, Any]:
        state = self.days.require(day)
        plan = state.plan
        if driver_id not in state.manifest.drivers and driver_id not in plan.held_by:
            raise NotFound(
                f"driver {driver_id!r} is not in the manifest of {day}", {"driver_id": driver_id}
            )
        package_ids = plan.held(driver_id)
        items = self.items_of_day(state, [(driver_id, p) for p in package_ids], ITEM_FIELDS)
        rows = []
        for p in package_ids:
            item = items.get(p, {})
            row = {
                **state.manifest.package(p),
                "status": item.get("status", "pending_write"),
                "updated_at": item.get("updated_at"),
            }
            for name in ("reason", "note", "proof"):
                if name in item:
                    row[name] = item[name]
            rows.append(row)
        return {
            "driver_id": driver_id,
            "day": day,
            "availability": OFF_DUTY if driver_id in plan.off_duty else ON_DUTY,
            "assignments": rows,
        }

    def package(
        self, package_id: str, day: str | None = None, visible_to: str | None = None
    ) -> dict[str, Any]:
        """The package on ``day``, else on its current day: the nearest day of the window around
        today (then of the days this process keeps) that has it and did not send it on to
        another day; its driver, status and its history across days. ``visible_to`` (a driver
        id) hides a package that driver does not hold, exactly as a missing one."""
        if visible_to is not None:  # a driver: its own item decides, before any day is loaded
            candidates = self._days_held_by(visible_to, package_id, day)
        elif day:
            candidates = [day]
        else:
            # today and the window around it, then (a day far from today that this process
            # just worked on) the days it keeps in memory, most recent first
            candidates = list(
                dict.fromkeys(
                    [self.today(), *self._window(self.today()), *reversed(self.days.cached_days())]
                )
            )
        chosen: DayState | None = None  # a day that sent it on is the answer only if no other
        for candidate in candidates:
            if not self.store.days.get_day(candidate):
                continue
            state = self.days.state(candidate)
            if state is None or package_id not in state.manifest.index:
                continue
            if not day and package_id in state.plan.carried:
                chosen = chosen or state
                continue
            chosen = state
            break
        answer = self._package_on(chosen, package_id, visible_to) if chosen else None
        if answer is not None:
            return answer
        raise NotFound(
            f"no package {package_id!r}" + (f" on {day}" if day else ""), {"package_id": package_id}
        )

    def _package_on(
        self, state: DayState, package_id: str, visible_to: str | None
    ) -> dict[str, Any] | None:
        """The answer on ``state``'s day; None if ``visible_to`` does not hold it there."""
        driver_id = state.plan.holder.get(package_id)
        if visible_to is not None and driver_id != visible_to:
            return None
        item = (
            self.items_of_day(state, [(driver_id, package_id)], None).get(package_id)
            if driver_id
            else None
        )
        return {
            "day": state.day,
            "package": _without_stamp(state.manifest.package(package_id)),
            "driver_id": driver_id,
            "status": item["status"] if item else self._pool_status(state, package_id),
            "assignment": _public(item),
            "history": self.history(package_id, state, item),
        }

    def _days_held_by(self, driver_id: str, package_id: str, day: str | None) -> list[str]:
        """The day(s) on which ``driver_id`` holds ``package_id``, from its items alone."""
        item = self.store.assignments.get_item(driver_id, package_id) if driver_id else None
        if item is None:
            return []
        if day is None or item.get("day") == day:
            return [item["day"]]
        return (
            [day]
            if self.store.assignments.get_item(driver_id, archive_key(package_id, day))
            else []
        )

    def _window(self, day: str) -> list[str]:
        from depot.service.imports import Imports

        return Imports.window(self, day)  # type: ignore[arg-type]

    @staticmethod
    def _pool_status(state: DayState, package_id: str) -> str | None:
        if package_id in state.plan.cancelled:
            return "cancelled"
        if package_id in state.plan.carried:
            return "carried_over"
        return None

    def history(
        self, package_id: str, state: DayState, item: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """The package's timeline across days: earlier attempts first, each day's plan events and
        status moves in time order."""
        timeline: list[dict[str, Any]] = []
        days = [state.day]  # each attempt's record names the day(s) it came from: follow them all
        todo = list((state.manifest.package(package_id) or {}).get("previous_days", []))
        while todo and len(days) <= MAX_ATTEMPTS * 4:  # bounded: a record names a few days
            earlier = todo.pop()
            if earlier in days:
                continue
            days.append(earlier)
            other = self.days.state(earlier)
            if other is None or package_id not in other.manifest.index:
                continue
            todo += other.manifest.package(package_id).get("previous_days", [])
            driver_id = other.plan.holder.get(package_id)
            other_item = (
                self.items_of_day(other, [(driver_id, package_id)], None).get(package_id)
                if driver_id
                else None
            )
            timeline += self._day_events(package_id, other, other_item)
        timeline.sort(key=lambda e: e["day"])  # stable: each day's events stay in time order
        return timeline + self._day_events(package_id, state, item)

    @staticmethod
    def _day_events(
        package_id: str, state: DayState, item: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        record = state.manifest.package(package_id) or {}
        imported = record.get("imported") or state.imported
        events = [imported_event(imported, record)] if imported else []
        events += state.plan.history.get(package_id, ())
        if item:
            events += status_moves(item)
        events = [{**e, "day": state.day} for e in events]
        return sorted(events, key=lambda e: (e.get("at", 0), e.get("version", 0)))

    def manifest(self, day: str) -> dict[str, Any]:
        state = self.days.require(day)
        return {"day": day, "version": state.version, **state.manifest.to_stored()}

    def manifest_bytes(self, day: str) -> bytes:
        """``manifest`` as JSON, encoded once per (day, version, manifest) and kept for the last
        day asked (a 100,000-package day is ~30 MB of JSON; orjson takes ~0.1 s)."""
        state = self.days.require(day)
        key = (day, state.version, state.manifest.key, state.incarnation)
        cached = self._encoded
        if cached is not None and cached[0] == key:
            return cached[1]
        body = orjson.dumps({"day": day, "version": state.version, **state.manifest.to_stored()})
        self._encoded = (key, body)
        return body

    # --- the board --------------------------------------------------------------------------------

    def summary(self, day: str) -> dict[str, Any]:
        state = self.days.require(day)
        plan = state.plan
        statuses = self.feed.counts(day)
        return {
            "day": day,
            "version": state.version,
            "cap": plan.cap,
            "counts": {
                "drivers": len(state.manifest.drivers),
                "packages": len(state.manifest.packages),
                "assigned": len(plan.holder),
                "unassigned": sum(1 for p in state.manifest.index if plan.in_pool(p)),
                "accepted": statuses["accepted"],
                "in_progress": statuses["in_progress"],
                "delivered": statuses["delivered"],
                "failed": statuses["failed_to_deliver"],
                "cancelled": len(plan.cancelled),
                "off_duty": len(plan.off_duty),
            },
        }

    def drivers(self, day: str, offset: int, limit: int, q: str | None) -> dict[str, Any]:
        state = self.days.require(day)
        plan = state.plan
        ids = sorted(state.manifest.drivers, key=natural)
        if q:
            ids = [d for d in ids if q.lower() in d.lower()]
        page = ids[offset : offset + limit]
        pairs = [(d, p) for d in page for p in plan.held(d)]
        items = self.items_of_day(state, pairs, ("package_id", "status", "day"))
        rows = []
        for d in page:
            counts = Counter(items.get(p, {}).get("status", "pending_write") for p in plan.held(d))
            rows.append(
                {
                    "driver_id": d,
                    "rules": [r.model_dump(mode="json") for r in state.manifest.drivers[d].rules],
                    "load": plan.load(d),
                    "cap": plan.cap,
                    "availability": OFF_DUTY if d in plan.off_duty else ON_DUTY,
                    "named": d in plan.named,
                    "statuses": {s: counts.get(s, 0) for s in STATUSES},
                }
            )
        return {"total": len(ids), "offset": offset, "limit": limit, "items": rows}

    def unassigned(self, day: str, offset: int, limit: int, reason: str | None) -> dict[str, Any]:
        state = self.days.require(day)
        plan = state.plan
        drivers = [
            state.manifest.drivers[d]
            for d in sorted(plan.named)
            if d in state.manifest.drivers and d not in plan.off_duty
        ]
        reasons = self._memo(
            ("explain", day, state.version, state.incarnation),
            lambda: explain_unassigned(
                state.manifest.columns, drivers, state.held_mask(), plan.cap or 0
            ),
        )
        tally = Counter(r["reason"] for r in reasons.values())
        rows = [(p, r) for p, r in reasons.items() if reason is None or r["reason"] == reason]
        items = []
        for p, r in rows[offset : offset + limit]:
            record = state.manifest.package(p)
            items.append(
                {
                    "package_id": p,
                    **r,
                    "region": record["region"],
                    "weight_kg": record["weight_kg"],
                    "delivery_hour": record["delivery_hour"],
                }
            )
        return {
            "total": len(rows),
            "offset": offset,
            "limit": limit,
            "reasons": dict(tally),
            "items": items,
        }

    def map(self, day: str, color: str) -> dict[str, Any]:
        """Destinations aggregated on a grid (at most MAP_CELLS² cells per key), keyed by driver or
        by where the package stands in the plan (assigned, unassigned, cancelled, carried over).
        Computed once per version of the day."""
        state = self.days.require(day)
        return self._memo(
            ("map", day, state.version, state.incarnation, color), lambda: self._map(state, color)
        )

    def _map(self, state: DayState, color: str) -> dict[str, Any]:
        plan = state.plan
        ids, lats, lons = self._coordinates(state.manifest)
        if not ids:
            return {"total": 0, "points": []}
        if color == "driver":
            labels = [plan.holder.get(p, "unassigned") for p in ids]
        else:
            labels = [
                "assigned"
                if p in plan.holder
                else "cancelled"
                if p in plan.cancelled
                else "carried_over"
                if p in plan.carried
                else "unassigned"
                for p in ids
            ]
        names, codes = np.unique(np.array(labels), return_inverse=True)
        lat0, lon0 = lats.min(), lons.min()
        lat_step = (lats.max() - lat0) / MAP_CELLS or 1.0
        lon_step = (lons.max() - lon0) / MAP_CELLS or 1.0
        i = np.minimum(((lats - lat0) / lat_step).astype(np.int64), MAP_CELLS - 1)
        j = np.minimum(((lons - lon0) / lon_step).astype(np.int64), MAP_CELLS - 1)
        cell = (codes * MAP_CELLS + i) * MAP_CELLS + j
        found, counts = np.unique(cell, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:2000]
        points = []
        for k in order:
            code, rest = divmod(int(found[k]), MAP_CELLS * MAP_CELLS)
            ci, cj = divmod(rest, MAP_CELLS)
            points.append(
                {
                    "lat": float(lat0 + (ci + 0.5) * lat_step),
                    "lon": float(lon0 + (cj + 0.5) * lon_step),
                    "count": int(counts[k]),
                    "key": str(names[code]),
                }
            )
        return {"total": len(ids), "points": points}

    def _coordinates(self, manifest: Any) -> tuple[list[str], np.ndarray, np.ndarray]:
        """The packages that have a destination with coordinates, once per manifest."""

        def build() -> tuple[list[str], np.ndarray, np.ndarray]:
            rows = [
                (p["package_id"], p["destination"]["lat"], p["destination"]["lon"])
                for p in manifest.packages
                if isinstance(p.get("destination"), dict)
                and "lat" in p["destination"]
                and "lon" in p["destination"]
            ]
            return (
                [r[0] for r in rows],
                np.array([r[1] for r in rows], dtype=float),
                np.array([r[2] for r in rows], dtype=float),
            )

        return self._memo(("coordinates", manifest.key), build)

    def _memo(self, key: tuple, build: Any) -> Any:
        """A few results per process, each for one version of a day (so never stale)."""
        cache = self.__dict__.setdefault("_results", OrderedDict())
        lock = self.__dict__.setdefault("_results_lock", threading.Lock())
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        value = build()  # outside the lock: two first readers may both build it, harmlessly
        with lock:
            cache[key] = value
            while len(cache) > MEMO_ENTRIES:
                cache.popitem(last=False)
        return value

    def eligible_drivers(self, package_id: str, day: str) -> dict[str, Any]:
        state = self.days.require(day)
        plan = state.plan
        if package_id not in state.manifest.index:
            raise NotFound(f"no package {package_id!r} on {day}", {"package_id": package_id})
        masks = RuleMasks(PackageColumns.from_records([state.manifest.package(package_id)]))
        rows = []
        for d in sorted(state.manifest.drivers):
            driver = state.manifest.drivers[d]
            if d in plan.off_duty or plan.holder.get(package_id) == d:
                continue
            if plan.cap is not None and plan.load(d) >= plan.cap:
                continue
            if driver.rules and not masks.driver_mask(driver)[0]:
                continue
            rows.append(
                {"driver_id": d, "load": plan.load(d), "cap": plan.cap, "availability": ON_DUTY}
            )
        return {"package_id": package_id, "day": day, "drivers": rows}


def imported_event(stamp: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The timeline's first event of a package on a day: the import that listed it there."""
    event = {"event": "imported", **stamp, "attempt": record.get("attempt", 1)}
    if record.get("previous_days"):
        event["previous_days"] = record["previous_days"]
    return event


def natural(text: str) -> tuple:
    """driver_2 before driver_10: digits compare as numbers."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _public(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {k: v for k, v in item.items() if k not in ("releasing", "releasing_at")}


def _without_stamp(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """A package as the day lists it; its import is the first event of its history."""
    if record is None or "imported" not in record:
        return record
    return {k: v for k, v in record.items() if k != "imported"}
