"""Depot's use cases: import a day, assign, move a delivery through its lifecycle, read.

This is where the pure core (models, matcher) meets the store. Each process keeps the days it
has seen in memory (``DayState``) and refreshes them with one consistent GetItem per request:
the day item's ``version`` says whether anything changed, so reads never Query the table.

The safety argument (``docs/design.md``): a run is computed against version *v* and committed
only if the day is still at *v* (one conditional UpdateItem), so no package can go to two
drivers and no driver can exceed the cap, whatever number of processes race; a committed run is
stored before it is referenced and written out idempotently, so a crash at any point leaves
either nothing or a pending run that the next call rolls forward.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from depot.config import Settings
from depot.core.manifest import ManifestBody, parse_manifest
from depot.core.matcher import match
from depot.core.models import NEXT_STATUSES, Driver, Package, Status, previous_statuses
from depot.core.rules import PackageColumns, RuleMasks
from depot.observability import ASSIGN_RUN_PACKAGES, ASSIGN_RUN_SECONDS
from depot.storage.store import ConditionFailed, StorageUnavailable, Store, VersionConflict, pack

COMMIT_ATTEMPTS = 50
PENDING_WAIT_S = 30.0
POLL_S = 0.1
FREEZE_MIN_PACKAGES = 10_000
KEPT_BODIES = 3  # days whose imported body a process keeps until the day is next used


def freeze_heap(state: DayState) -> None:
    """After a large day's state is built, move the heap out of the cyclic GC's reach.

    A 100,000-package day is a few million objects in this process; each full (generation 2)
    collection walked them all (0.3-0.4 s, every request stalled meanwhile). ``gc.freeze()``
    moves what survives a young collection into the permanent generation, so full collections
    walk only what was allocated since. Frozen objects are still freed by reference counting
    when an old state is dropped (the day's state holds no reference cycles); small days are
    left alone (their collections are cheap).
    """
    if len(state.manifest.packages) >= FREEZE_MIN_PACKAGES:
        gc.collect(1)
        gc.freeze()


# --- errors the API maps to status codes --------------------------------------------------------


class DepotError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DepotError):
    status_code = 404
    code = "not_found"


class UnprocessableInput(DepotError):
    status_code = 422
    code = "invalid_input"


class StateConflict(DepotError):
    status_code = 409
    code = "conflict"


class Busy(DepotError):
    status_code = 503
    code = "busy"


# --- the day's state, as this process knows it ---------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    key: str
    drivers: dict[str, Driver]
    packages: list[dict[str, Any]]
    index: dict[str, int]
    columns: PackageColumns

    @classmethod
    def build(cls, key: str, drivers: Sequence[Driver], packages: list[dict[str, Any]]) -> Manifest:
        return cls(
            key=key,
            drivers={d.driver_id: d for d in drivers},
            packages=packages,
            index={p["package_id"]: i for i, p in enumerate(packages)},
            columns=PackageColumns.from_records(packages),
        )

    @classmethod
    def from_stored(cls, key: str, raw: bytes) -> Manifest:
        """A stored manifest is either the body of a day's first import, as received, or a merged
        snapshot in the same shape; both are read the way an import reads its body."""
        body = parse_manifest(raw)
        return cls.build(key, body.drivers, body.records())

    def to_stored(self) -> dict[str, Any]:
        return {
            "drivers": [d.model_dump(mode="json") for d in self.drivers.values()],
            "packages": self.packages,
        }


@dataclass(frozen=True)
class DayState:
    day: str
    version: int
    manifest: Manifest
    runs: tuple[str, ...]
    holder: dict[str, str] = field(default_factory=dict)  # package_id -> driver_id
    held_by: dict[str, list[str]] = field(default_factory=dict)  # driver_id -> package_ids
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def with_runs(self, runs: Sequence[tuple[str, dict[str, list[str]]]], version: int, pending) -> DayState:
        holder = dict(self.holder)
        held_by = {d: list(p) for d, p in self.held_by.items()}
        for _, assignments in runs:
            for driver_id, package_ids in assignments.items():
                held_by.setdefault(driver_id, []).extend(package_ids)
                for pid in package_ids:
                    holder[pid] = driver_id
        return replace(
            self,
            version=version,
            runs=self.runs + tuple(key for key, _ in runs),
            holder=holder,
            held_by=held_by,
            pending=pending,
        )

    def held_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.manifest.packages), dtype=bool)
        index = self.manifest.index
        mask[[index[pid] for pid in self.holder if pid in index]] = True
        return mask

    def unassigned(self) -> list[str]:
        return [p["package_id"] for p in self.manifest.packages if p["package_id"] not in self.holder]


@dataclass
class AssignOutcome:
    state: DayState
    driver_ids: list[str]
    new: dict[str, list[str]]
    explain: dict[str, Any] | None = None

    def response(self) -> dict[str, Any]:
        assignments = {d: list(self.state.held_by.get(d, [])) for d in self.driver_ids}
        body: dict[str, Any] = {
            "assignments": assignments,
            "unassigned_packages": self.state.unassigned(),
            "unassigned_drivers": [d for d in self.driver_ids if not assignments[d]],
        }
        if self.explain is not None:
            body["explanations"] = self.explain
        return body


def _manifest_key(day: str, version: int) -> str:
    return f"manifests/{day}/{version:08d}-{uuid.uuid4().hex}.json"


def _record(package: Package) -> dict[str, Any]:
    """The stored form of a package: every SPEC field (``hazmat_class`` may be null), and
    ``destination`` only when given."""
    record = package.model_dump(mode="json")
    if record.get("destination") is None:
        record.pop("destination", None)
    else:
        record["destination"] = {k: v for k, v in record["destination"].items() if v is not None}
    return record


class NoEvents:
    """Stands in for the S3 event log where none is wired (pure unit use)."""

    def emit(self, event_type: str, **fields: Any) -> str:
        return ""


class Service:
    def __init__(self, settings: Settings, store: Store, events: Any = None):
        self.settings = settings
        self.store = store
        self.events = events or NoEvents()
        self._days: dict[str, DayState] = {}
        self._kept_bodies: OrderedDict[str, tuple[str, ManifestBody]] = OrderedDict()
        self._lock = threading.Lock()
        self.process_id = uuid.uuid4().hex

    # --- days ---------------------------------------------------------------------------------

    def today(self) -> str:
        return datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()

    def day_state(self, day: str) -> DayState | None:
        """The day as stored now: one GetItem, plus whatever changed since this process looked."""
        item = self.store.get_day(day)
        if item is None or "manifest_key" not in item:
            return None
        with self._lock:
            cached = self._days.get(day)
        state = self._refresh(day, item, cached)
        with self._lock:
            current = self._days.get(day)
            if current is None or current.version <= state.version:
                self._days[day] = state
        if cached is None or cached.version != state.version:
            freeze_heap(state)
        return state

    def _refresh(self, day: str, item: dict[str, Any], cached: DayState | None) -> DayState:
        runs = tuple(item.get("runs", []))
        pending = item.get("pending", {})
        version = int(item["version"])
        if cached and cached.version == version:
            return replace(cached, pending=pending)
        if cached is None or cached.manifest.key != item["manifest_key"] or runs[: len(cached.runs)] != cached.runs:
            manifest = self._load_manifest(day, item["manifest_key"])
            cached = DayState(day=day, version=0, manifest=manifest, runs=())
        new_runs = [(key, self.store.get_json(key)["assignments"]) for key in runs[len(cached.runs) :]]
        return cached.with_runs(new_runs, version, pending)

    def _load_manifest(self, day: str, key: str) -> Manifest:
        """The stored manifest ``key``: from the body this process imported, if it kept it, else
        fetched from the state bucket and read."""
        with self._lock:
            kept = self._kept_bodies.pop(day, None)
        if kept is not None and kept[0] == key:
            return Manifest.build(key, kept[1].drivers, kept[1].records())
        return Manifest.from_stored(key, self.store.get_bytes(key))

    def _keep_body(self, day: str, key: str, body: ManifestBody) -> None:
        """Keep a first import's validated body until the day is next used (``_load_manifest``).

        Building the day from it spares fetching and reading the stored copy, and the import
        answers without first freeing 100,000 decoded packages (~30 ms, docs/performance.md).
        """
        with self._lock:
            self._kept_bodies[day] = (key, body)
            evicted = [self._kept_bodies.popitem(last=False) for _ in range(len(self._kept_bodies) - KEPT_BODIES)]
        del evicted  # freed outside the lock

    def require_day(self, day: str) -> DayState:
        state = self.day_state(day)
        if state is None:
            raise NotFound(f"no manifest is stored for day {day}", {"day": day})
        return state

    # --- manifests ----------------------------------------------------------------------------

    def import_body(self, raw: bytes) -> dict[str, Any]:
        """Import a manifest body as received (``POST /manifests``): validated whole, then stored.

        A day's first import stores the body itself as the day's manifest and commits it; the
        day's in-memory state is built when the day is next used, the way any other process
        builds it, so the import costs little more than storing the bytes (docs/performance.md).
        Later imports merge into the stored day (``import_manifest``).
        """
        with ThreadPoolExecutor(max_workers=1) as pool:
            packed = pool.submit(pack, raw)  # releases the GIL: runs while the body is validated
            body = parse_manifest(raw)
        day = body.day or self.today()
        if self.day_state(day) is not None:
            return self.import_manifest(day, body.drivers, body.records())
        key = _manifest_key(day, 1)
        self.store.put_bytes(key, packed.result())
        try:
            version = self.store.commit_manifest(day, 0, key, {"drivers": len(body.drivers),
                                                               "packages": len(body.packages)})
        except VersionConflict:  # another import of the day came first: merge into it
            return self.import_manifest(day, body.drivers, body.records())
        self._keep_body(day, key, body)
        counts = {"drivers_added": len(body.drivers), "drivers_updated": 0,
                  "packages_added": len(body.packages), "packages_updated": 0, "packages_unchanged": 0}
        return self._imported(day, version, key, counts, len(body.drivers), len(body.packages))

    def import_manifest(self, day: str, drivers: list[Driver],
                        packages: Sequence[Package | dict[str, Any]]) -> dict[str, Any]:
        """Add drivers and packages to the day; update drivers' rules; never change an assigned package."""
        records = [p if isinstance(p, dict) else _record(p) for p in packages]
        for _ in range(COMMIT_ATTEMPTS):
            state = self.day_state(day)
            merged, counts = self._merge(state, drivers, records)
            key = _manifest_key(day, (state.version if state else 0) + 1)
            self.store.put_json(key, merged.to_stored())
            try:
                version = self.store.commit_manifest(day, state.version if state else 0, key, {
                    "drivers": len(merged.drivers), "packages": len(merged.packages)
                })
            except VersionConflict:
                continue
            merged = replace(merged, key=key)
            base = state or DayState(day=day, version=0, manifest=merged, runs=())
            imported = replace(base, manifest=merged, version=version)
            with self._lock:
                self._days[day] = imported
            freeze_heap(imported)
            return self._imported(day, version, key, counts, len(merged.drivers), len(merged.packages))
        raise Busy("the day kept changing while importing; try again")

    def _imported(self, day: str, version: int, key: str, counts: dict[str, int], drivers: int,
                  packages: int) -> dict[str, Any]:
        result = {"day": day, "version": version, **counts, "drivers_total": drivers, "packages_total": packages}
        self.events.emit("manifest_imported", **result, manifest_key=key)
        return result

    def _merge(self, state: DayState | None, drivers: list[Driver], records: list[dict[str, Any]]):
        old_drivers = dict(state.manifest.drivers) if state else {}
        old_packages = list(state.manifest.packages) if state else []
        index = dict(state.manifest.index) if state else {}
        holder = state.holder if state else {}
        counts = Counter()
        conflicts = []
        for driver in drivers:
            counts["drivers_added" if driver.driver_id not in old_drivers else "drivers_updated"] += 1
            old_drivers[driver.driver_id] = driver
        for record in records:
            pid = record["package_id"]
            at = index.get(pid)
            if at is None:
                index[pid] = len(old_packages)
                old_packages.append(record)
                counts["packages_added"] += 1
            elif old_packages[at] != record:
                if pid in holder:
                    conflicts.append(pid)
                    continue
                old_packages[at] = record
                counts["packages_updated"] += 1
            else:
                counts["packages_unchanged"] += 1
        if conflicts:
            raise StateConflict(
                f"{len(conflicts)} package(s) are already assigned and cannot be changed",
                {"package_ids": conflicts[:100]},
            )
        manifest = Manifest.build(state.manifest.key if state else "", list(old_drivers.values()), old_packages)
        keys = ("drivers_added", "drivers_updated", "packages_added", "packages_updated", "packages_unchanged")
        return manifest, {k: counts.get(k, 0) for k in keys}

    # --- assignment ---------------------------------------------------------------------------

    def assign(self, day: str, driver_ids: list[str], max_per_driver: int, explain: bool = False) -> AssignOutcome:
        started = time.perf_counter()
        outcome = self._assign(day, driver_ids, max_per_driver, explain)
        elapsed = time.perf_counter() - started
        assigned = sum(len(v) for v in outcome.new.values())
        ASSIGN_RUN_PACKAGES.observe(assigned)
        ASSIGN_RUN_SECONDS.labels("total").observe(elapsed)
        self.events.emit("assignment_run", day=day, drivers_requested=len(driver_ids),
                         max_per_driver=max_per_driver, packages_assigned=assigned,
                         drivers_served=len(outcome.new), version=outcome.state.version,
                         unassigned_packages=len(outcome.state.manifest.packages) - len(outcome.state.holder),
                         duration_s=round(elapsed, 4))
        return outcome

    def _assign(self, day: str, driver_ids: list[str], max_per_driver: int, explain: bool) -> AssignOutcome:
        deadline = time.monotonic() + PENDING_WAIT_S
        for _ in range(COMMIT_ATTEMPTS):
            state = self._settled(day, deadline)
            drivers = self._requested(state, driver_ids)
            solve_started = time.perf_counter()
            result = match(
                state.manifest.columns,
                drivers,
                max_per_driver,
                held_counts={d: len(state.held_by.get(d, [])) for d in driver_ids},
                held=state.held_mask(),
            )
            ASSIGN_RUN_SECONDS.labels("match").observe(time.perf_counter() - solve_started)
            ids = state.manifest.columns.package_ids
            new = {d: [ids[i] for i in idx] for d, idx in result.assignments.items() if idx}
            if not new:
                return self._outcome(state, driver_ids, {}, explain, max_per_driver)
            committed = self._commit(state, new, max_per_driver)
            if committed is None:
                continue
            return self._outcome(committed, driver_ids, new, explain, max_per_driver)
        raise Busy("too many concurrent assignment runs for this day; try again")

    def _requested(self, state: DayState, driver_ids: list[str]) -> list[Driver]:
        unknown = [d for d in driver_ids if d not in state.manifest.drivers]
        if unknown:
            raise UnprocessableInput(
                f"{len(unknown)} requested driver(s) are not in the manifest of {state.day}",
                {"unknown_driver_ids": unknown[:100]},
            )
        return [state.manifest.drivers[d] for d in driver_ids]

    def _commit(self, state: DayState, new: dict[str, list[str]], max_per_driver: int) -> DayState | None:
        """Store the run, commit it against the version it was computed on, write it out."""
        run_key = f"runs/{state.day}/{state.version + 1:08d}-{uuid.uuid4().hex}.json"
        self.store.put_json(run_key, {"day": state.day, "version": state.version + 1,
                                      "max_per_driver": max_per_driver, "created_at": time.time(),
                                      "assignments": new})
        lease = self._lease()
        try:
            version = self.store.commit_run(state.day, state.version, run_key, lease)
        except VersionConflict:
            if not self._committed_anyway(state, run_key):
                return None
            version = state.version + 1
        committed = state.with_runs([(run_key, new)], version, {**state.pending, run_key: lease})
        with self._lock:
            current = self._days.get(state.day)
            if current is None or current.version < version:
                self._days[state.day] = committed
        self._materialize(committed, run_key, new, lease["owner"], check_existing=False)
        return committed

    def _committed_anyway(self, state: DayState, run_key: str) -> bool:
        """Whether our commit was applied although its answer was lost (botocore's retry then
        found the condition false): the day then lists our run right after ``state.version``."""
        runs = (self.store.get_day(state.day) or {}).get("runs", [])
        return len(runs) > len(state.runs) and runs[len(state.runs)] == run_key

    def _lease(self) -> dict[str, Any]:
        return {"owner": f"{self.process_id}-{uuid.uuid4().hex[:8]}", "expires": time.time() + self.settings.lease_s}

    def _settled(self, day: str, deadline: float) -> DayState:
        """The day with no pending run: waits for live writers, takes over from dead ones."""
        while True:
            state = self.require_day(day)
            if not state.pending:
                return state
            for run_key, lease in sorted(state.pending.items()):
                if float(lease.get("expires", 0)) < time.time():
                    self._take_over(state, run_key)
            if time.monotonic() > deadline:
                raise Busy("an earlier assignment run is still being written; try again")
            time.sleep(POLL_S)

    def _take_over(self, state: DayState, run_key: str) -> None:
        lease = self._lease()
        if not self.store.set_lease(state.day, run_key, lease, if_expired_before=time.time()):
            return
        assignments = self.store.get_json(run_key)["assignments"]
        self._materialize(state, run_key, assignments, lease["owner"], check_existing=True)

    def _materialize(self, state: DayState, run_key: str, new: dict[str, list[str]], owner: str,
                     check_existing: bool) -> None:
        """Write the run's items while renewing the lease; then mark the run finished."""
        now = time.time()
        pairs = [(d, p) for d, pids in new.items() for p in pids]
        if check_existing:
            present = {(i["driver_id"], i["package_id"]) for i in self.store.get_items(pairs)}
            pairs = [pair for pair in pairs if pair not in present]
        records = [self._item(state, d, p, run_key, now) for d, p in pairs]
        freeze_heap(state)  # the new state and the records: not walked by full collections while writing
        write_started = time.perf_counter()
        stop = threading.Event()
        lost = threading.Event()

        def renew() -> None:
            while not stop.wait(self.settings.lease_renew_s):
                try:
                    ok = self.store.set_lease(state.day, run_key,
                                              {"owner": owner, "expires": time.time() + self.settings.lease_s},
                                              if_owner=owner)
                except StorageUnavailable:
                    continue
                if not ok:
                    lost.set()
                    return

        renewer = threading.Thread(target=renew, daemon=True)
        renewer.start()
        outage = False
        try:
            self.store.write_items(records, should_stop=lost.is_set)
        except StorageUnavailable:
            outage = True
            raise
        finally:
            stop.set()
            if not outage:
                renewer.join()
            # On an outage, answer 503 now: the renewer's last call may take a whole timeout, and it
            # stops by itself. The lease is deliberately not released: until it runs out it fences
            # this writer's attempts that may still land late (BatchWriteItem puts unconditionally,
            # so a late one landing after a take-over would undo a status update; test_outages).
        if lost.is_set():
            raise Busy("another process took over writing this run; try again")
        self.store.finish_run(state.day, run_key)
        ASSIGN_RUN_SECONDS.labels("write").observe(time.perf_counter() - write_started)
        if check_existing:
            self.events.emit("assignment_run_rolled_forward", day=state.day, run=run_key, items_written=len(records))

    def _item(self, state: DayState, driver_id: str, package_id: str, run_key: str, now: float) -> dict[str, Any]:
        package = state.manifest.packages[state.manifest.index[package_id]]
        item = {
            "driver_id": driver_id,
            "package_id": package_id,
            "status": Status.ASSIGNED.value,
            "day": state.day,
            "assigned_at": now,
            "updated_at": now,
            "version": 1,
            "run": run_key.rsplit("/", 1)[-1].split(".", 1)[0],
            "weight_kg": package["weight_kg"],
            "volume_m3": package["volume_m3"],
            "region": package["region"],
            "is_express": package["is_express"],
            "is_perishable": package["is_perishable"],
        }
        if package.get("destination"):
            item["destination"] = package["destination"]
        return item

    def _outcome(self, state, driver_ids, new, explain, max_per_driver) -> AssignOutcome:
        reasons = self.explain_unassigned(state, driver_ids, max_per_driver) if explain else None
        return AssignOutcome(state=state, driver_ids=driver_ids, new=new, explain=reasons)

    def explain_unassigned(self, state: DayState, driver_ids: list[str], max_per_driver: int) -> dict[str, Any]:
        """For each unassigned package: no requested driver accepts it (and which rules refuse
        it most often), or every driver that would accept it is full."""
        drivers = [state.manifest.drivers[d] for d in driver_ids]
        columns = state.manifest.columns
        masks = RuleMasks(columns)
        held = state.held_mask()
        free = np.flatnonzero(~held)
        eligible_any = np.zeros(len(columns), dtype=bool)
        rejections: dict[tuple, np.ndarray] = {}
        labels: dict[tuple, str] = {}
        for driver in drivers:
            eligible_any |= masks.driver_mask(driver)
            for rule in driver.rules:
                key = rule.key()
                refused = ~masks.rule_mask(rule.code, rule.params, key)
                rejections[key] = rejections.get(key, 0) + refused.astype(np.int32)
                labels[key] = f"{rule.code.value} {rule.params}" if rule.params else rule.code.value
        out: dict[str, Any] = {}
        keys = list(rejections)
        counts = np.vstack([rejections[k] for k in keys]) if keys else None
        for i in free:
            pid = columns.package_ids[i]
            if eligible_any[i]:
                out[pid] = {"reason": "eligible_drivers_full",
                            "message": f"every requested driver that accepts it already holds {max_per_driver}"}
                continue
            top = []
            if counts is not None:
                order = np.argsort(-counts[:, i], kind="stable")[:3]
                top = [{"rule": labels[keys[k]], "drivers_refusing": int(counts[k, i])} for k in order if counts[k, i]]
            out[pid] = {"reason": "no_eligible_driver",
                        "message": "no requested driver's rules accept it", "rejected_by": top}
        return out

    # --- lifecycle ------------------------------------------------------------------------------

    def update_status(self, driver_id: str, package_id: str, status: Status) -> dict[str, Any]:
        allowed_from = [s.value for s in previous_statuses(status)]
        if allowed_from:
            try:
                item = self.store.update_status(driver_id, package_id, status.value, allowed_from, time.time())
            except ConditionFailed:
                pass
            else:
                self.events.emit("status_changed", driver_id=driver_id, package_id=package_id, day=item.get("day"),
                                 status=status.value, version=item.get("version"))
                return item
        current = self.store.get_item(driver_id, package_id)
        if current is None:
            raise NotFound(f"no assignment of package {package_id!r} to driver {driver_id!r}",
                           {"driver_id": driver_id, "package_id": package_id})
        if current["status"] == status.value:
            return current
        now = Status(current["status"])
        allowed = [s.value for s in NEXT_STATUSES[now]]
        raise StateConflict(
            f"cannot move from {now.value} to {status.value}; allowed next: {', '.join(allowed) or 'none (final)'}",
            {"current_status": now.value, "requested_status": status.value, "allowed_next": allowed},
        )

    # --- reads ----------------------------------------------------------------------------------

    def driver_assignments(self, driver_id: str, day: str) -> dict[str, Any]:
        state = self.require_day(day)
        if driver_id not in state.manifest.drivers and driver_id not in state.held_by:
            raise NotFound(f"driver {driver_id!r} is not in the manifest of {day}", {"driver_id": driver_id})
        package_ids = state.held_by.get(driver_id, [])
        items = {i["package_id"]: i for i in self.store.get_items(
            ((driver_id, p) for p in package_ids), attributes=("package_id", "status", "updated_at"))}
        return {
            "driver_id": driver_id,
            "day": day,
            "assignments": [
                {**state.manifest.packages[state.manifest.index[p]],
                 "status": items.get(p, {}).get("status", "pending_write"),
                 "updated_at": items.get(p, {}).get("updated_at")}
                for p in package_ids
            ],
        }

    def package(self, package_id: str, day: str | None = None) -> dict[str, Any]:
        days = [day] if day else self.store.list_days()
        for candidate in days:
            state = self.day_state(candidate)
            if state is None or package_id not in state.manifest.index:
                continue
            package = state.manifest.packages[state.manifest.index[package_id]]
            driver_id = state.holder.get(package_id)
            item = self.store.get_item(driver_id, package_id) if driver_id else None
            return {
                "day": candidate,
                "package": package,
                "driver_id": driver_id,
                "status": item["status"] if item else None,
                "assignment": item,
            }
        raise NotFound(f"no package {package_id!r}" + (f" on {day}" if day else ""), {"package_id": package_id})

    def manifest(self, day: str) -> dict[str, Any]:
        state = self.require_day(day)
        return {"day": day, "version": state.version, **state.manifest.to_stored()}
