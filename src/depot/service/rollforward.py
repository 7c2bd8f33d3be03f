"""Committing a change of a day, writing it out, and rolling forward a writer that died.

The argument (``docs/design.md``): a change (a run or a plan change) is computed against the
day's version *v* and committed only if the day is still at *v* (one conditional UpdateItem),
so no package goes to two drivers and no driver exceeds the cap, whatever number of processes
race. Before the commit:

* every item the change will write is checked against DynamoDB's limits, so a committed change
  can always be written out (a day is never left with a change nobody can finish);
* the change is stored in S3 under a key that is never overwritten;
* every item it removes is *claimed* (``releasing`` = the change's key, only from ``assigned``
  or ``accepted``): a ``/update`` of a claimed item fails its condition, so of a plan change and
  an update of the same package exactly one wins.

After the commit the change is *pending*, leased to its writer, who deletes the claimed items,
then writes the new ones (so no read sees a package held twice), then clears the lease. A writer
renews its lease from the moment it takes the change on and stops itself once the lease may
have run out; the next call on the day takes over an expired lease and finishes the change.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from depot.config import Settings
from depot.core.day import Change, DayState
from depot.core.models import Status
from depot.errors import Busy, StateConflict, WriteRefused
from depot.observability import ASSIGN_RUN_SECONDS, CHANGE_CONFLICTS, CHANGE_WAIT_SECONDS
from depot.service.days import Days, change_key, freeze_heap
from depot.service.events import Feed
from depot.storage.limits import UnstorableItem, check_items
from depot.storage.store import ConditionFailed, StorageUnavailable, Store, VersionConflict

POLL_S = 0.1
CLAIM_WORKERS = 8


class DayTurns:
    """One change of a day at a time in this process: the others wait their turn.

    Across processes the version check alone keeps changes apart. Within a process, changes of
    the same day that race all compute, most lose the commit and compute again (80 runs from 8
    threads on one process: 12.1 s racing, 3.0 s in turn), and one unlucky call could lose for
    over a minute. Waiting in turn (``threading.RLock``: a use case that commits a second
    change inside its turn, an import releasing held packages, takes it again) leaves only one
    contender per process. A day's lock is dropped once nobody waits for it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._turns: dict[str, tuple[threading.RLock, int]] = {}

    @contextmanager
    def turn(self, day: str, deadline: float) -> Iterator[None]:
        with self._lock:
            gate, users = self._turns[day] if day in self._turns else (threading.RLock(), 0)
            self._turns[day] = (gate, users + 1)
        try:
            asked = time.monotonic()
            if not gate.acquire(timeout=max(0.0, deadline - asked)):
                raise Busy("other changes of this day are queued before this one; try again")
            CHANGE_WAIT_SECONDS.observe(time.monotonic() - asked)
            try:
                yield
            finally:
                gate.release()
        finally:
            with self._lock:
                gate, users = self._turns[day]
                if users == 1:
                    del self._turns[day]
                else:
                    self._turns[day] = (gate, users - 1)


def assignment_item(
    state: DayState, driver_id: str, package_id: str, change: Change, run_id: str
) -> dict[str, Any]:
    """The ``DeliveryAssignments`` item of a new assignment (SPEC section 2)."""
    package = state.manifest.packages[state.manifest.index[package_id]]
    item = {
        "driver_id": driver_id,
        "package_id": package_id,
        "status": Status.ASSIGNED.value,
        "day": state.day,
        "attempt": package.get("attempt", 1),
        "assigned_at": change.at,
        "assigned_by": change.actor,
        "updated_at": change.at,
        "version": 1,
        "run": run_id,
        "weight_kg": package["weight_kg"],
        "volume_m3": package["volume_m3"],
        "region": package["region"],
        "is_express": package["is_express"],
        "is_perishable": package["is_perishable"],
    }
    if package.get("destination"):
        item["destination"] = package["destination"]
    return item


def run_id(key: str) -> str:
    return key.rsplit("/", 1)[-1].split(".", 1)[0]


class Writer:
    def __init__(self, settings: Settings, store: Store, days: Days, feed: Feed):
        self.settings = settings
        self.store = store
        self.days = days
        self.feed = feed
        self.process_id = uuid.uuid4().hex
        self._turns = DayTurns()

    @contextmanager
    def turn(self, day: str) -> Iterator[float]:
        """This process's turn to change ``day``; yields the deadline of the whole change (waiting
        for the turn, for a pending writer and every commit attempt), past which it is 503."""
        deadline = time.monotonic() + self.settings.change_wait_s
        with self._turns.turn(day, deadline):
            yield deadline

    @staticmethod
    def attempts(deadline: float | None, limit: int) -> Iterator[int]:
        """The commit attempts of a change: at most ``limit``, none once ``deadline`` passed."""
        for attempt in range(limit):
            if deadline is not None and time.monotonic() > deadline:
                return
            yield attempt

    # --- waiting for a settled day ------------------------------------------------------------

    def settled(self, day: str, deadline: float | None = None) -> DayState:
        """The day with no pending change: waits for live writers, takes over from dead ones."""
        if deadline is None:  # a carry-over reads another day outside any change's turn
            deadline = time.monotonic() + self.settings.change_wait_s
        while True:
            state = self.days.require(day)
            if not state.pending:
                return state
            for key, lease in sorted(state.pending.items()):
                if float(lease.get("expires", 0)) < time.time():
                    self._take_over(state, key)
            if time.monotonic() > deadline:
                raise Busy("an earlier change of this day is still being written; try again")
            time.sleep(POLL_S)

    # --- commit -------------------------------------------------------------------------------

    def commit(self, state: DayState, change: Change, event: dict[str, Any]) -> DayState | None:
        """Commit ``change`` against ``state.version`` and write it out; None if the day moved
        first (recompute and try again). ``event`` goes to the feed and the log once committed."""
        version = state.version + 1
        change = replace(change, version=version)
        key = change_key(state.day, version)
        records = [assignment_item(state, d, p, change, run_id(key)) for d, p in change.pairs()]
        try:
            check_items(records, "driver_id", "package_id")
        except UnstorableItem as exc:
            raise WriteRefused(f"the change cannot be stored: {exc.message}", exc.details) from None
        self.store.objects.put_json(key, change.to_json())
        claimed = self._claim(state, change, key)
        lease = self._lease()
        try:
            self.store.days.commit_change(state.day, state.version, key, lease)
        except VersionConflict:
            if not self._committed_anyway(state, key):
                CHANGE_CONFLICTS.labels(change.kind).inc()
                self._unclaim(change, key)
                return None
        committed = replace(
            state,
            version=version,
            plan=state.plan.apply([change]),
            pending={**state.pending, key: lease},
            log=state.log + (key,),
        )
        self.days.remember(committed)
        self.feed.publish(
            state.day,
            {**event, "version": version, "change": run_id(key)},
            counts={s: -n for s, n in claimed.items()},
        )
        try:
            self._materialize(committed, key, change, lease, records=records)
        except WriteRefused as refused:
            self._abandon(committed, key, change, refused)
        self.days.compact(committed)
        return committed

    def _claim(self, state: DayState, change: Change, key: str) -> dict[str, int]:
        """Claim every item the change removes; all or nothing. Returns the claimed statuses."""
        if not change.release:
            return {}
        started = time.time()
        stale = started - self.settings.claim_ttl_s
        pairs = [(driver_id, package_id) for package_id, driver_id in change.release.items()]

        def claim(pair: tuple[str, str]) -> tuple[tuple[str, str], dict[str, Any] | None]:
            try:
                return pair, self.store.assignments.mark_release(
                    pair[0], pair[1], key, started, stale
                )
            except ConditionFailed:
                return pair, None

        with ThreadPoolExecutor(max_workers=min(CLAIM_WORKERS, len(pairs))) as pool:
            results = list(pool.map(claim, pairs))
        refused = [pair for pair, item in results if item is None]
        if refused:
            self._unclaim(change, key)
            raise self._refusal(refused)
        if time.time() - started > self.settings.claim_ttl_s / 2:  # our claims may be seen as stale
            self._unclaim(change, key)
            raise Busy("claiming the packages took too long; try again")
        counts: dict[str, int] = {}
        for _, item in results:
            if item and item["status"] != Status.ASSIGNED.value:
                counts[item["status"]] = counts.get(item["status"], 0) + 1
        return counts

    def _refusal(self, refused: list[tuple[str, str]]) -> StateConflict:
        items = {
            (i["driver_id"], i["package_id"]): i for i in self.store.assignments.get_items(refused)
        }
        details = []
        for pair in refused:
            item = items.get(pair)
            status = item["status"] if item else "pending_write"
            live = (
                item
                and float(item.get("releasing_at", 0)) >= time.time() - self.settings.claim_ttl_s
            )
            if item and item.get("releasing") and live and status in ("assigned", "accepted"):
                status = "being_changed"
            details.append({"package_id": pair[1], "driver_id": pair[0], "status": status})
        names = ", ".join(f"{d['package_id']} ({d['status']})" for d in details[:10])
        return StateConflict(
            f"{len(details)} package(s) cannot be taken from their driver: {names}",
            {"packages": details[:100]},
        )

    def _unclaim(self, change: Change, key: str) -> None:
        for package_id, driver_id in change.release.items():
            self.store.assignments.unmark(driver_id, package_id, key)

    def _committed_anyway(self, state: DayState, key: str) -> bool:
        """Whether our commit was applied although its answer was lost (botocore's retry then
        found the condition false): the day then lists our change."""
        item = self.store.days.get_day(state.day) or {}
        return key in item.get("log", []) or key in item.get("pending", {})

    def _lease(self) -> dict[str, Any]:
        return {
            "owner": f"{self.process_id}-{uuid.uuid4().hex[:8]}",
            "expires": time.time() + self.settings.lease_s,
        }

    # --- writing out, and rolling forward ---------------------------------------------------------

    def _take_over(self, state: DayState, key: str) -> None:
        lease = self._lease()
        if not self.store.days.set_lease(state.day, key, lease, if_expired_before=time.time()):
            return
        try:
            self._materialize(state, key, None, lease, records=None)
        except WriteRefused as refused:
            self._abandon(state, key, Change.from_json(self.store.objects.get_json(key)), refused)
            return
        self.feed.log("change_rolled_forward", day=state.day, change=run_id(key))

    def _abandon(self, state: DayState, key: str, change: Change, refused: WriteRefused) -> None:
        """The store refused a committed change's items for a reason no retry cures: what was
        written stays, what was not goes back to the pool (a ``drop`` change), the change is
        finished, and the caller gets the cause (422). The day stays assignable."""
        rid = run_id(key)
        pairs = change.pairs()
        written = {
            (i["driver_id"], i["package_id"])
            for i in self.store.assignments.get_items(
                pairs, attributes=("driver_id", "package_id", "run")
            )
            if i.get("run") == rid
        }
        drop = {p: d for d, p in pairs if (d, p) not in written}
        while drop:
            current = self.days.require(state.day)
            drop = {p: d for p, d in drop.items() if current.plan.holder.get(p) == d}
            if not drop:
                break
            undo = Change(
                version=0,
                kind="not_stored",
                actor="system",
                at=time.time(),
                drop=drop,
                reason=refused.message,
            )
            version = current.version + 1
            undo = replace(undo, version=version)
            undo_key = change_key(current.day, version)
            self.store.objects.put_json(undo_key, undo.to_json())
            try:
                self.store.days.commit_change(current.day, current.version, undo_key, self._lease())
            except VersionConflict:
                continue
            self.store.days.finish_run(current.day, undo_key)
            self.days.remember(
                replace(
                    current,
                    version=version,
                    plan=current.plan.apply([undo]),
                    log=current.log + (undo_key,),
                )
            )
            self.feed.publish(
                current.day,
                {
                    "type": "not_stored",
                    "actor": "system",
                    "packages": len(drop),
                    "reason": refused.message,
                },
            )
            break
        self.store.days.finish_run(state.day, key)
        raise refused

    def _materialize(
        self,
        state: DayState,
        key: str,
        change: Change | None,
        lease: dict[str, Any],
        records: list[dict[str, Any]] | None,
    ) -> None:
        """Write the change out while renewing the lease (from the first moment), then finish it.

        ``change`` None means a take-over: the change is read back and the items already
        written are skipped. The writer stops itself once its lease may have run out: it counts
        from the expiry that was written (``lease``), never from the moment the write returned.
        """
        stop, lost = threading.Event(), threading.Event()
        owner = lease["owner"]
        expires = [float(lease["expires"])]

        def renew() -> None:
            while not stop.wait(self.settings.lease_renew_s):
                until = time.time() + self.settings.lease_s
                try:
                    ok = self.store.days.set_lease(
                        state.day, key, {"owner": owner, "expires": until}, if_owner=owner
                    )
                except StorageUnavailable:
                    continue
                if not ok:
                    lost.set()
                    return
                expires[0] = until

        stopped = threading.Event()

        def should_stop() -> bool:
            """Once true, true for good: a batch skipped now must never be followed by a finish.
            A margin of one renewal interval: a write that starts must land before the expiry."""
            if lost.is_set() or time.time() > expires[0] - self.settings.lease_renew_s:
                stopped.set()
            return stopped.is_set()

        renewer = threading.Thread(target=renew, daemon=True)
        renewer.start()
        outage = False
        started = time.perf_counter()
        try:
            if change is None:
                change = Change.from_json(self.store.objects.get_json(key))
            for package_id, driver_id in change.release.items():
                if should_stop():
                    break
                self.store.assignments.delete_claimed(driver_id, package_id, key)
            if records is None:
                records = self._missing(state, change, key)
            freeze_heap(state)
            if not should_stop():
                self.store.assignments.write_items(records, should_stop=should_stop)
        except StorageUnavailable:
            outage = True
            raise
        except ConditionFailed:
            raise
        except Exception as exc:  # a refusal no retry cures: the lease runs out, nothing is lost
            if _is_validation(exc):
                raise WriteRefused(f"the store refused the change's items: {exc}") from None
            raise
        finally:
            stop.set()
            if not outage:
                renewer.join()
            # On an outage the lease is deliberately not released: until it runs out it fences
            # this writer's attempts that may still land late (tests/system/test_outages.py).
        if should_stop():
            raise Busy(
                "this change's lease ran out while writing it; it will be finished by the next call"
            )
        self.store.days.finish_run(state.day, key)
        ASSIGN_RUN_SECONDS.labels("write").observe(time.perf_counter() - started)

    def _missing(self, state: DayState, change: Change, key: str) -> list[dict[str, Any]]:
        """The items of a change being rolled forward that are not written yet."""
        pairs = change.pairs()
        rid = run_id(key)
        present = {
            (i["driver_id"], i["package_id"])
            for i in self.store.assignments.get_items(
                pairs, attributes=("driver_id", "package_id", "run")
            )
            if i.get("run") == rid
        }
        return [
            assignment_item(state, d, p, change, rid) for d, p in pairs if (d, p) not in present
        ]


def _is_validation(exc: Exception) -> bool:
    response: Callable[..., Any] | Any = getattr(exc, "response", None)
    return (
        isinstance(response, dict)
        and response.get("Error", {}).get("Code") == "ValidationException"
    )
