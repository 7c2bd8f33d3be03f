"""``POST /assign`` (SPEC section 2) and its dry run (section 4): the optimal run of a day."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from depot.core.day import Change, DayState
from depot.core.matcher import match
from depot.core.models import Driver
from depot.errors import Busy, UnprocessableInput
from depot.observability import ASSIGN_RUN_PACKAGES, ASSIGN_RUN_SECONDS
from depot.service.context import Context

COMMIT_ATTEMPTS = 50


@dataclass
class AssignOutcome:
    state: DayState
    driver_ids: list[str]
    new: dict[str, list[str]]
    explain: dict[str, Any] | None = None

    def response(self) -> dict[str, Any]:
        body = self.state.response(self.driver_ids)
        if self.explain is not None:
            body["explanations"] = self.explain
        return body


def requested_drivers(state: DayState, driver_ids: list[str]) -> list[Driver]:
    unknown = [d for d in driver_ids if d not in state.manifest.drivers]
    if unknown:
        raise UnprocessableInput(
            f"{len(unknown)} requested driver(s) are not in the manifest of {state.day}",
            {"unknown_driver_ids": unknown[:100]},
        )
    return [state.manifest.drivers[d] for d in driver_ids]


def plan_run(state: DayState, drivers: list[Driver], cap: int) -> dict[str, list[str]]:
    """The matcher's new assignments for ``drivers`` (off-duty ones get nothing)."""
    on_duty = [d for d in drivers if d.driver_id not in state.plan.off_duty]
    started = time.perf_counter()
    result = match(
        state.manifest.columns,
        on_duty,
        cap,
        held_counts={d.driver_id: state.plan.load(d.driver_id) for d in on_duty},
        held=state.held_mask(),
    )
    ASSIGN_RUN_SECONDS.labels("match").observe(time.perf_counter() - started)
    ids = state.manifest.columns.package_ids
    return {d: [ids[i] for i in idx] for d, idx in result.assignments.items() if idx}


class Assign(Context):
    def __call__(
        self,
        day: str,
        driver_ids: list[str],
        cap: int,
        explain: bool = False,
        dry_run: bool = False,
        actor: str = "open",
    ) -> AssignOutcome:
        started = time.perf_counter()
        outcome = self._assign(day, driver_ids, cap, explain, dry_run, actor)
        if not dry_run:
            ASSIGN_RUN_PACKAGES.observe(sum(len(v) for v in outcome.new.values()))
            ASSIGN_RUN_SECONDS.labels("total").observe(time.perf_counter() - started)
        return outcome

    def _assign(
        self, day: str, driver_ids: list[str], cap: int, explain: bool, dry_run: bool, actor: str
    ) -> AssignOutcome:
        if dry_run:
            state, new = self._attempts(day, driver_ids, cap, True, actor, None)
        else:
            with self.writer.turn(day) as deadline:
                state, new = self._attempts(day, driver_ids, cap, False, actor, deadline)
        return self._outcome(state, driver_ids, new, explain, cap)  # explained outside the turn

    def _attempts(
        self,
        day: str,
        driver_ids: list[str],
        cap: int,
        dry_run: bool,
        actor: str,
        deadline: float | None,
    ) -> tuple[DayState, dict[str, list[str]]]:
        """The run computed on the settled day and committed (or previewed), computed again
        while another process commits first; the day after it and the new assignments."""
        for _ in self.writer.attempts(deadline, COMMIT_ATTEMPTS):
            state = self.writer.settled(day, deadline)
            drivers = requested_drivers(state, driver_ids)
            new = plan_run(state, drivers, cap)
            change = Change(
                version=state.version + 1,
                kind="run",
                actor=actor,
                at=time.time(),
                assign=new,
                cap=cap,
                named=tuple(driver_ids),
            )
            unchanged = not new and state.plan.cap == cap and set(driver_ids) <= state.plan.named
            if dry_run or unchanged:
                preview = state if unchanged else replace(state, plan=state.plan.apply([change]))
                return preview, new
            event = {
                "type": "assignment_run",
                "actor": actor,
                "drivers_requested": len(driver_ids),
                "max_per_driver": cap,
                "packages_assigned": sum(len(v) for v in new.values()),
            }
            committed = self.writer.commit(state, change, event)
            if committed is not None:
                return committed, new
        raise Busy("too many concurrent changes of this day; try again")

    def _outcome(
        self,
        state: DayState,
        driver_ids: list[str],
        new: dict[str, list[str]],
        explain: bool,
        cap: int,
    ) -> AssignOutcome:
        reasons = self.explain(state, driver_ids, cap) if explain else None
        return AssignOutcome(state=state, driver_ids=driver_ids, new=new, explain=reasons)

    def explain(self, state: DayState, driver_ids: list[str], cap: int) -> dict[str, Any]:
        from depot.core.explain import explain_unassigned

        drivers = [
            state.manifest.drivers[d]
            for d in driver_ids
            if d in state.manifest.drivers and d not in state.plan.off_duty
        ]
        return explain_unassigned(state.manifest.columns, drivers, state.held_mask(), cap)
