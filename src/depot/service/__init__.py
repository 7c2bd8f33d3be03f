"""Depot's use cases, one module each, behind one facade the HTTP and CLI edges call.

* ``days``: the per-process, bounded cache of days and how a day's state is rebuilt;
* ``rollforward``: committing a change against the day's version, writing it out, taking over
  from a writer that died (the safety argument is in its docstring and ``docs/design.md``);
* ``assign``: ``POST /assign`` and its dry run; ``plan``: unassign, reassign, availability,
  cancel; ``imports``: manifests, re-imports with ``release``, another attempt, carry-over;
* ``lifecycle``: ``POST /update``; ``reads``: every read, the board's included;
* ``events``: the day's numbered change feed (``GET /events``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from depot.config import Settings
from depot.core.day import DayState
from depot.errors import Busy, DepotError, NotFound, StateConflict, UnprocessableInput, WriteRefused
from depot.service.assign import Assign, AssignOutcome
from depot.service.context import Context
from depot.service.days import Days
from depot.service.events import Feed
from depot.service.imports import Imports
from depot.service.lifecycle import Lifecycle
from depot.service.plan import PlanChanges
from depot.service.reads import Reads
from depot.service.rollforward import Writer
from depot.storage.store import Store

__all__ = [
    "AssignOutcome",
    "Busy",
    "DepotError",
    "NotFound",
    "Service",
    "StateConflict",
    "UnprocessableInput",
    "WriteRefused",
]


class Service:
    """The use cases over one store; what the routes and the CLI call."""

    def __init__(self, settings: Settings, store: Store, events: Any = None):
        self.settings = settings
        self.store = store
        self.days = Days(settings, store)
        self.feed = Feed(store, events)
        self.writer = Writer(settings, store, self.days, self.feed)
        context = {
            "settings": settings,
            "store": store,
            "days": self.days,
            "writer": self.writer,
            "feed": self.feed,
        }
        self.assigner = Assign(**context)
        self.plan = PlanChanges(**context)
        self.imports = Imports(**context)
        self.lifecycle = Lifecycle(**context)
        self.reads = Reads(**context)
        self._context = Context(**context)

    @property
    def events(self) -> Any:
        """The S3 operational log every change and status move is written to."""
        return self.feed.oplog

    @events.setter
    def events(self, oplog: Any) -> None:
        self.feed.oplog = oplog

    def readiness_checks(self) -> dict[str, Callable[[], None]]:
        """The probes of ``/ready``, by dependency: each returns None or raises (an outage as
        ``StorageUnavailable``); the HTTP layer need not reach into the store."""
        return {"dynamodb": self.store.check_dynamodb, "s3": self.store.check_s3}

    # days
    def today(self) -> str:
        return self._context.today()

    def day_state(self, day: str) -> DayState | None:
        return self.days.state(day)

    def require_day(self, day: str) -> DayState:
        return self.days.require(day)

    # imports
    def import_body(self, raw: bytes, actor: str = "open") -> dict[str, Any]:
        return self.imports.import_body(raw, actor)

    def import_manifest(self, day, drivers, packages, release: bool = False, actor: str = "open"):
        from depot.service.imports import _record

        return self.imports.import_manifest(
            day, drivers, [_record(p) for p in packages], release=release, actor=actor
        )

    def carry_over(self, day: str, from_day: str, actor: str = "open") -> dict[str, Any]:
        return self.imports.carry_over(day, from_day, actor)

    # assignment and plan changes
    def assign(
        self,
        day: str,
        driver_ids: list[str],
        max_per_driver: int,
        explain: bool = False,
        dry_run: bool = False,
        actor: str = "open",
    ) -> AssignOutcome:
        return self.assigner(day, driver_ids, max_per_driver, explain, dry_run, actor)

    def unassign(
        self, day: str, package_ids: list[str], reason: str | None = None, actor: str = "open"
    ):
        return self.plan.unassign(day, package_ids, reason, actor)

    def reassign(
        self,
        day: str,
        package_id: str,
        driver_id: str,
        max_per_driver: int | None = None,
        actor: str = "open",
    ):
        return self.plan.reassign(day, package_id, driver_id, max_per_driver, actor)

    def set_availability(
        self, day: str, driver_id: str, status: str, reassign: bool = True, actor: str = "open"
    ):
        return self.plan.availability(day, driver_id, status, reassign, actor)

    def cancel(self, day: str, package_ids: list[str], reason: str, actor: str = "open"):
        return self.plan.cancel(day, package_ids, reason, actor)

    # lifecycle and reads
    def update_status(
        self, driver_id, package_id, status, reason=None, note=None, proof=None, actor: str = "open"
    ) -> dict[str, Any]:
        return self.lifecycle.update(driver_id, package_id, status, reason, note, proof, actor)

    def driver_assignments(self, driver_id: str, day: str) -> dict[str, Any]:
        return self.reads.driver_assignments(driver_id, day)

    def package(self, package_id: str, day: str | None = None, visible_to: str | None = None):
        return self.reads.package(package_id, day, visible_to)

    def manifest(self, day: str) -> dict[str, Any]:
        return self.reads.manifest(day)

    def explain_unassigned(self, state: DayState, driver_ids: list[str], max_per_driver: int):
        return self.assigner.explain(state, driver_ids, max_per_driver)
