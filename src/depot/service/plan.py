"""The day's plan changes (SPEC section 4): unassign, reassign, driver availability, cancel.

Each is a change of the day's state committed like a run (``rollforward.Writer.commit``): the
same per-day optimistic check, so section 2's guarantees hold for every mix of runs, plan
changes and status updates on any number of processes.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from depot.core.day import OFF_DUTY, ON_DUTY, Change, DayState
from depot.core.matcher import match
from depot.core.models import Driver
from depot.core.rules import PREDICATES, PackageColumns
from depot.errors import Busy, NotFound, StateConflict, UnprocessableInput
from depot.service.context import Context

COMMIT_ATTEMPTS = 50
RELEASABLE = ("assigned", "accepted")


def rejecting_rules(driver: Driver, package: dict[str, Any]) -> list[dict[str, Any]]:
    """The driver's rules that the package does not satisfy."""
    columns = PackageColumns.from_records([package])
    return [
        {"rule_id": r.rule_id, "code": r.code.value, "params": r.params}
        for r in driver.rules
        if not bool(np.asarray(PREDICATES[r.code](columns, r.params))[0])
    ]


def unknown_packages(state: DayState, package_ids: Sequence[str]) -> None:
    unknown = [p for p in package_ids if p not in state.manifest.index]
    if unknown:
        raise NotFound(
            f"{len(unknown)} package(s) are not in the manifest of {state.day}: "
            f"{', '.join(unknown[:10])}",
            {"package_ids": unknown[:100]},
        )


def known_driver(state: DayState, driver_id: str) -> Driver:
    driver = state.manifest.drivers.get(driver_id)
    if driver is None:
        raise NotFound(
            f"driver {driver_id!r} is not in the manifest of {state.day}", {"driver_id": driver_id}
        )
    return driver


class PlanChanges(Context):
    def _refuse_unreleasable(
        self,
        state: DayState,
        package_ids: Sequence[str],
        what: str,
        items: Mapping[str, dict[str, Any]],
    ) -> None:
        statuses = self.statuses(state, package_ids, items)
        refused = [
            {"package_id": p, "status": s} for p, s in statuses.items() if s not in RELEASABLE
        ]
        refused += [
            {"package_id": p, "status": "cancelled"}
            for p in package_ids
            if p in state.plan.cancelled
        ]
        if refused:
            names = ", ".join(f"{r['package_id']} ({r['status']})" for r in refused[:10])
            raise StateConflict(
                f"{len(refused)} package(s) cannot be {what}: {names}", {"packages": refused[:100]}
            )

    def _commit(
        self, day: str, build, event_type: str, actor: str, recompute_on_conflict: bool = False
    ) -> tuple[DayState, Change, Any]:
        """Compute the change on a settled day and commit it, again while the day moves first.
        With ``recompute_on_conflict`` a package that moved on meanwhile (an update won the
        race for it) makes the change be computed again instead of refusing it."""
        with self.writer.turn(day) as deadline:
            for _ in self.writer.attempts(deadline, COMMIT_ATTEMPTS):
                state = self.writer.settled(day, deadline)
                built = build(state)
                if built is None:
                    return state, None, None
                change, extra = built
                event = {"type": event_type, "actor": actor, **extra}
                try:
                    committed = self.writer.commit(state, change, event)
                except StateConflict:
                    if not recompute_on_conflict:
                        raise
                    continue
                if committed is not None:
                    return committed, change, extra
        raise Busy("too many concurrent changes of this day; try again")

    # --- unassign -----------------------------------------------------------------------------

    def unassign(
        self, day: str, package_ids: list[str], reason: str | None, actor: str
    ) -> dict[str, Any]:
        def build(state: DayState):
            unknown_packages(state, package_ids)
            items = self.held_items(state, package_ids)
            self._refuse_unreleasable(state, package_ids, "unassigned", items)
            release = {p: state.plan.holder[p] for p in package_ids if p in state.plan.holder}
            if not release:
                return None
            change = Change(
                version=0,
                kind="unassign",
                actor=actor,
                at=time.time(),
                release=release,
                moves=self.moves_of(items, release),
                reason=reason,
            )
            return change, {"packages": sorted(release), "drivers": sorted(set(release.values()))}

        state, change, _ = self._commit(day, build, "unassigned", actor)
        return {
            "day": day,
            "version": state.version,
            "unassigned": sorted(change.release) if change else [],
            "already_unassigned": sorted(
                p for p in package_ids if change is None or p not in change.release
            ),
        }

    # --- reassign -----------------------------------------------------------------------------

    def reassign(
        self, day: str, package_id: str, driver_id: str, cap: int | None, actor: str
    ) -> dict[str, Any]:
        def build(state: DayState):
            unknown_packages(state, [package_id])
            driver = known_driver(state, driver_id)
            plan = state.plan
            if package_id in plan.cancelled or package_id in plan.carried:
                status = "cancelled" if package_id in plan.cancelled else "carried_over"
                raise StateConflict(
                    f"package {package_id!r} is {status}",
                    {"package_id": package_id, "status": status},
                )
            current = plan.holder.get(package_id)
            items = self.held_items(state, [package_id])
            if current is not None:  # to its own driver too: in progress or final is no move
                self._refuse_unreleasable(state, [package_id], "reassigned", items)
            if current == driver_id and driver_id not in plan.off_duty:
                return None  # already there: nothing to change, its status stays
            rejected = rejecting_rules(driver, state.manifest.package(package_id))
            if rejected:
                raise UnprocessableInput(
                    f"driver {driver_id!r} does not accept package {package_id!r}: its rules "
                    + ", ".join(r["code"] for r in rejected)
                    + " reject it",
                    {"driver_id": driver_id, "package_id": package_id, "rejected_by": rejected},
                )
            if driver_id in plan.off_duty:
                raise StateConflict(
                    f"driver {driver_id!r} is off duty",
                    {"driver_id": driver_id, "availability": OFF_DUTY},
                )
            limit = cap if cap is not None else plan.cap
            if limit is not None and plan.load(driver_id) >= limit:
                raise StateConflict(
                    f"driver {driver_id!r} already holds {plan.load(driver_id)} "
                    f"package(s), the cap is {limit}",
                    {"driver_id": driver_id, "load": plan.load(driver_id), "cap": limit},
                )
            change = Change(
                version=0,
                kind="reassign",
                actor=actor,
                at=time.time(),
                release={package_id: current} if current else {},
                moves=self.moves_of(items, {package_id: current}) if current else {},
                assign={driver_id: [package_id]},
            )
            return change, {
                "package_id": package_id,
                "driver_id": driver_id,
                "from_driver_id": current,
            }

        state, change, extra = self._commit(day, build, "reassigned", actor)
        status = "assigned"
        if change is None:  # a no-op: the package's own status, as it is
            status = self.statuses(state, [package_id]).get(package_id, status)
        return {
            "day": day,
            "version": state.version,
            "package_id": package_id,
            "driver_id": driver_id,
            "from_driver_id": (extra or {}).get("from_driver_id"),
            "status": status,
        }

    # --- availability -------------------------------------------------------------------------

    def availability(
        self, day: str, driver_id: str, status: str, reassign: bool, actor: str
    ) -> dict[str, Any]:
        released: list[str] = []
        kept: list[str] = []

        def build(state: DayState):
            known_driver(state, driver_id)
            plan = state.plan
            released.clear()
            kept.clear()
            if status == ON_DUTY:
                if driver_id not in plan.off_duty:
                    return None
                return (
                    Change(
                        version=0,
                        kind="availability",
                        actor=actor,
                        at=time.time(),
                        availability={driver_id: ON_DUTY},
                    ),
                    {"driver_id": driver_id, "status": ON_DUTY},
                )
            items = self.held_items(state, plan.held(driver_id))
            statuses = self.statuses(state, plan.held(driver_id), items)
            released.extend(p for p, s in statuses.items() if s in RELEASABLE)
            kept.extend(p for p, s in statuses.items() if s == "in_progress")
            if driver_id in plan.off_duty and not released:
                return None
            assign = self._reassignment(state, driver_id, released) if reassign else {}
            change = Change(
                version=0,
                kind="availability",
                actor=actor,
                at=time.time(),
                release=dict.fromkeys(released, driver_id),
                moves=self.moves_of(items, dict.fromkeys(released, driver_id)),
                assign=assign,
                availability={driver_id: OFF_DUTY},
            )
            return change, {
                "driver_id": driver_id,
                "status": OFF_DUTY,
                "released": list(released),
                "reassigned": sum(len(v) for v in assign.values()),
            }

        state, _, _ = self._commit(
            day, build, "availability_changed", actor, recompute_on_conflict=True
        )
        named = sorted(state.plan.named | {driver_id})
        return {
            **state.response(named),
            "day": day,
            "version": state.version,
            "driver_id": driver_id,
            "availability": OFF_DUTY if driver_id in state.plan.off_duty else ON_DUTY,
            "released": list(released),
            "kept_in_progress": list(kept),
        }

    def _reassignment(
        self, state: DayState, driver_id: str, released: list[str]
    ) -> dict[str, list[str]]:
        """The matcher's objective over the released packages only, among the day's other on-duty
        named drivers, within the day's cap, leaving every other package where it is."""
        plan = state.plan
        others = [
            state.manifest.drivers[d]
            for d in sorted(plan.named)
            if d != driver_id and d not in plan.off_duty and d in state.manifest.drivers
        ]
        if not released or not others or plan.cap is None:
            return {}
        index = state.manifest.index
        free = np.ones(len(state.manifest.packages), dtype=bool)
        free[[index[p] for p in released]] = False
        result = match(
            state.manifest.columns,
            others,
            plan.cap,
            held_counts={d.driver_id: plan.load(d.driver_id) for d in others},
            held=free,
        )
        ids = state.manifest.columns.package_ids
        return {d: [ids[i] for i in idx] for d, idx in result.assignments.items() if idx}

    # --- cancel -------------------------------------------------------------------------------

    def cancel(self, day: str, package_ids: list[str], reason: str, actor: str) -> dict[str, Any]:
        def build(state: DayState):
            unknown_packages(state, package_ids)
            plan = state.plan
            carried = [p for p in package_ids if p in plan.carried]
            if carried:
                raise StateConflict(
                    f"{len(carried)} package(s) were carried over to another day",
                    {
                        "packages": [
                            {"package_id": p, "status": "carried_over", "day": plan.carried[p]}
                            for p in carried[:100]
                        ]
                    },
                )
            todo = [p for p in package_ids if p not in plan.cancelled]
            held = [p for p in todo if p in plan.holder]
            items = self.held_items(state, held)
            self._refuse_unreleasable(state, held, "cancelled", items)
            if not todo:
                return None
            change = Change(
                version=0,
                kind="cancel",
                actor=actor,
                at=time.time(),
                release={p: plan.holder[p] for p in held},
                moves=self.moves_of(items, {p: plan.holder[p] for p in held}),
                cancel=dict.fromkeys(todo, reason),
                reason=reason,
            )
            return change, {"packages": todo, "reason": reason}

        state, change, _ = self._commit(day, build, "cancelled", actor)
        return {
            "day": day,
            "version": state.version,
            "cancelled": sorted(change.cancel) if change else [],
            "already_cancelled": sorted(
                p for p in package_ids if change is None or p not in change.cancel
            ),
        }
