"""The day: its manifest (the lists), its plan (who holds what), and the changes that move the plan.

Pure: no I/O. A day's state at version *v* is its manifest plus the fold of its committed changes
(runs and plan changes, SPEC sections 2 and 4) in version order. The service stores each change
once (S3) and commits it with one conditional write of the day item; any process rebuilds the same
state from a snapshot and the changes after it (``Plan.apply``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from depot.core.manifest import parse_manifest
from depot.core.models import Driver
from depot.core.rules import PackageColumns

STATUSES = ("assigned", "accepted", "in_progress", "delivered", "failed_to_deliver")
OFF_DUTY = "off_duty"
ON_DUTY = "on_duty"
MAX_ATTEMPTS = 3
# what the service records on a package's stored record (never in a body): its attempt and the
# days it came back from, and the import that added it to the day (actor, time, day version)
RECORDED_FIELDS = ("attempt", "previous_days", "imported")


@dataclass(frozen=True)
class Manifest:
    """The day's drivers and packages as imported (packages as their stored records)."""

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
        snapshot in the same shape; both are read the way an import reads its body. A snapshot's
        packages also carry what the service recorded of them (``RECORDED_FIELDS``: their
        attempts, the import that added them), which a body may not send: those are set aside,
        the rest is read as a body, and they are put back on their records."""
        attempts: dict[int, dict[str, Any]] = {}
        if any(f'"{name}"'.encode() in raw for name in RECORDED_FIELDS):
            doc = orjson.loads(raw)
            for i, record in enumerate(doc.get("packages") or []):
                kept = {k: record.pop(k) for k in RECORDED_FIELDS if k in record}
                if kept:
                    attempts[i] = kept
            raw = orjson.dumps(doc)
        body = parse_manifest(raw)
        records = body.records()
        for i, kept in attempts.items():
            records[i] = {**records[i], **kept}
        return cls.build(key, body.drivers, records)

    def to_stored(self) -> dict[str, Any]:
        return {
            "drivers": [d.model_dump(mode="json") for d in self.drivers.values()],
            "packages": self.packages,
        }

    def package(self, package_id: str) -> dict[str, Any] | None:
        at = self.index.get(package_id)
        return None if at is None else self.packages[at]


@dataclass(frozen=True)
class Change:
    """One committed change of a day's plan: an assignment run or a dispatcher's plan change.

    ``release`` maps each package that leaves its driver to that driver; ``assign`` gives each
    driver the packages it receives (a reassign is both). Releases are applied before assigns,
    and the store deletes released items before it writes new ones, so no read ever sees a
    package held twice.
    """

    version: int
    kind: str
    actor: str
    at: float
    assign: Mapping[str, Sequence[str]] = field(default_factory=dict)
    release: Mapping[str, str] = field(default_factory=dict)
    cancel: Mapping[str, str] = field(default_factory=dict)
    carry_out: Mapping[str, str] = field(default_factory=dict)
    availability: Mapping[str, str] = field(default_factory=dict)
    drop: Mapping[str, str] = field(default_factory=dict)  # assignments a store refused to write
    # the status moves of each released item (``status_moves``): its item goes, its story stays
    moves: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    cap: int | None = None
    named: Sequence[str] = ()
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at,
        }
        for name in ("assign", "release", "cancel", "carry_out", "availability", "drop", "moves"):
            value = getattr(self, name)
            if value:
                listed = name in ("assign", "moves")
                out[name] = {k: list(v) if listed else v for k, v in value.items()}
        if self.cap is not None:
            out["cap"] = self.cap
        if self.named:
            out["named"] = list(self.named)
        if self.reason is not None:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Change:
        if "kind" not in doc:  # a run stored before plan changes existed
            return cls(
                version=int(doc["version"]),
                kind="run",
                actor=doc.get("actor", "open"),
                at=float(doc.get("created_at", 0)),
                assign=doc.get("assignments", {}),
                cap=doc.get("max_per_driver"),
            )
        return cls(
            version=int(doc["version"]),
            kind=doc["kind"],
            actor=doc.get("actor", "open"),
            at=float(doc.get("at", 0)),
            assign=doc.get("assign", {}),
            release=doc.get("release", {}),
            cancel=doc.get("cancel", {}),
            carry_out=doc.get("carry_out", {}),
            availability=doc.get("availability", {}),
            drop=doc.get("drop", {}),
            moves=doc.get("moves", {}),
            cap=doc.get("cap"),
            named=tuple(doc.get("named", ())),
            reason=doc.get("reason"),
        )

    def packages(self) -> Iterable[str]:
        """Every package this change touches."""
        yield from self.release
        for package_ids in self.assign.values():
            yield from package_ids
        yield from self.cancel
        yield from self.carry_out

    def pairs(self) -> list[tuple[str, str]]:
        """(driver_id, package_id) of every item this change creates."""
        return [(d, p) for d, pids in self.assign.items() for p in pids]

    def header(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at,
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass(frozen=True)
class Plan:
    """Who holds what on a day, and the day's plan facts (cap, availability, cancellations)."""

    version: int = 0
    holder: dict[str, str] = field(default_factory=dict)  # package_id -> driver_id
    held_by: dict[str, dict[str, None]] = field(
        default_factory=dict
    )  # driver -> packages, in order
    cancelled: dict[str, str] = field(default_factory=dict)  # package_id -> reason
    carried: dict[str, str] = field(default_factory=dict)  # package_id -> the later day it went to
    off_duty: frozenset[str] = frozenset()
    named: frozenset[str] = frozenset()  # drivers an /assign of the day has named
    cap: int | None = None
    history: dict[str, tuple[dict[str, Any], ...]] = field(
        default_factory=dict
    )  # package -> events

    def apply(self, changes: Sequence[Change]) -> Plan:
        """The plan after ``changes`` (in version order; those at or below ``version`` are
        skipped)."""
        changes = [c for c in changes if c.version > self.version]
        if not changes:
            return self
        holder = dict(self.holder)
        held_by = dict(self.held_by)
        copied: set[str] = set()
        cancelled, carried = dict(self.cancelled), dict(self.carried)
        off_duty, named, cap = set(self.off_duty), set(self.named), self.cap
        history = dict(self.history)

        def driver_packages(driver_id: str) -> dict[str, None]:
            if driver_id not in copied:
                held_by[driver_id] = dict(held_by.get(driver_id, {}))
                copied.add(driver_id)
            return held_by[driver_id]

        def note(package_id: str, event: dict[str, Any]) -> None:
            history[package_id] = history.get(package_id, ()) + (event,)

        for change in changes:
            header = change.header()
            for package_id, driver_id in change.release.items():
                if holder.get(package_id) == driver_id:
                    del holder[package_id]
                    driver_packages(driver_id).pop(package_id, None)
                for move in change.moves.get(package_id, ()):
                    note(package_id, dict(move))
                if package_id not in change.cancel and not _assigned_in(change, package_id):
                    note(package_id, {**header, "event": "unassigned", "driver_id": driver_id})
            for package_id, driver_id in change.drop.items():  # never written: back to the pool
                if holder.get(package_id) == driver_id:
                    del holder[package_id]
                    driver_packages(driver_id).pop(package_id, None)
                note(package_id, {**header, "event": "not_stored", "driver_id": driver_id})
            for driver_id, package_ids in change.assign.items():
                held = driver_packages(driver_id)
                event = "reassigned" if change.kind in {"reassign", "availability"} else "assigned"
                for package_id in package_ids:
                    holder[package_id] = driver_id
                    held[package_id] = None
                    note(
                        package_id,
                        {
                            **header,
                            "event": event,
                            "driver_id": driver_id,
                            **(
                                {"from_driver_id": change.release[package_id]}
                                if package_id in change.release
                                else {}
                            ),
                        },
                    )
            for package_id, reason in change.cancel.items():
                cancelled[package_id] = reason
                holder_of: dict[str, str] = (
                    {"driver_id": change.release[package_id]}
                    if package_id in change.release
                    else {}
                )
                note(package_id, {**header, "event": "cancelled", "reason": reason, **holder_of})
            for package_id, to_day in change.carry_out.items():
                carried[package_id] = to_day
                note(package_id, {**header, "event": "carried_over", "to_day": to_day})
            for driver_id, status in change.availability.items():
                (off_duty.add if status == OFF_DUTY else off_duty.discard)(driver_id)
            named.update(change.named)
            if change.cap is not None:
                cap = change.cap
        return replace(
            self,
            version=changes[-1].version,
            holder=holder,
            held_by=held_by,
            cancelled=cancelled,
            carried=carried,
            off_duty=frozenset(off_duty),
            named=frozenset(named),
            cap=cap,
            history=history,
        )

    def held(self, driver_id: str) -> list[str]:
        return list(self.held_by.get(driver_id, ()))

    def load(self, driver_id: str) -> int:
        return len(self.held_by.get(driver_id, ()))

    def in_pool(self, package_id: str) -> bool:
        """Free to be assigned: not held, not cancelled, not carried over to a later day."""
        return (
            package_id not in self.holder
            and package_id not in self.cancelled
            and package_id not in self.carried
        )

    # --- snapshots (a compacted plan, stored so that a process need not replay every change) ---

    def to_snapshot(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "held_by": {d: list(p) for d, p in self.held_by.items() if p},
            "cancelled": self.cancelled,
            "carried": self.carried,
            "off_duty": sorted(self.off_duty),
            "named": sorted(self.named),
            "cap": self.cap,
            "history": {p: list(h) for p, h in self.history.items()},
        }

    @classmethod
    def from_snapshot(cls, doc: Mapping[str, Any]) -> Plan:
        held_by = {d: dict.fromkeys(p) for d, p in doc.get("held_by", {}).items()}
        return cls(
            version=int(doc["version"]),
            holder={p: d for d, pids in held_by.items() for p in pids},
            held_by=held_by,
            cancelled=dict(doc.get("cancelled", {})),
            carried=dict(doc.get("carried", {})),
            off_duty=frozenset(doc.get("off_duty", ())),
            named=frozenset(doc.get("named", ())),
            cap=doc.get("cap"),
            history={p: tuple(h) for p, h in doc.get("history", {}).items()},
        )


def _assigned_in(change: Change, package_id: str) -> bool:
    return any(package_id in pids for pids in change.assign.values())


@dataclass(frozen=True)
class DayState:
    """A day as one process knows it: the manifest, the plan at ``version``, the pending writes."""

    day: str
    version: int
    manifest: Manifest
    plan: Plan = field(default_factory=Plan)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # change key -> lease
    log: tuple[str, ...] = ()  # change keys after the snapshot
    snapshot_key: str | None = None
    snapshot_version: int = 0
    incarnation: str = ""  # set when the day item is created: a recreated day is another day
    # who imported the day first and when: the ``imported`` of the packages of that first body
    # (a later import records its own on each package it adds)
    imported: Mapping[str, Any] = field(default_factory=dict)

    @property
    def holder(self) -> dict[str, str]:
        return self.plan.holder

    def held_mask(self) -> np.ndarray:
        """Packages not in the pool (held, cancelled or carried over): the matcher skips them."""
        mask = np.zeros(len(self.manifest.packages), dtype=bool)
        index = self.manifest.index
        plan = self.plan
        taken = [
            index[p]
            for group in (plan.holder, plan.cancelled, plan.carried)
            for p in group
            if p in index
        ]
        if taken:
            mask[taken] = True
        return mask

    def unassigned(self) -> list[str]:
        plan = self.plan
        return [p["package_id"] for p in self.manifest.packages if plan.in_pool(p["package_id"])]

    def response(self, driver_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /assign``'s answer (SPEC section 2) for ``driver_ids`` in this state."""
        assignments = {d: self.plan.held(d) for d in driver_ids}
        return {
            "assignments": assignments,
            "unassigned_packages": self.unassigned(),
            "unassigned_drivers": [
                d for d in driver_ids if not assignments[d] or d in self.plan.off_duty
            ],
        }


def status_moves(item: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The status changes an assignment item records (``<status>_at`` / ``_by``), as timeline
    events: read off the current item, or kept in the change that released it."""
    events = []
    for status in STATUSES[1:]:
        if f"{status}_at" in item:
            event = {
                "event": "status_changed",
                "status": status,
                "at": item[f"{status}_at"],
                "actor": item.get(f"{status}_by", "unknown"),
                "driver_id": item["driver_id"],
            }
            if status == "failed_to_deliver":
                event["reason"] = item.get("reason", "unspecified")
            events.append(event)
    return events
