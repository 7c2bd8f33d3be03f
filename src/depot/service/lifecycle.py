"""``POST /update``: a delivery's lifecycle (SPEC section 2), with failure reasons and proof (4).

One conditional UpdateItem moves the status only from an allowed previous one and only while no
plan change has claimed the item; so an update racing with an unassign or a reassign of the same
package either wins (the plan change then refuses, naming the new status) or loses with 409.
"""

from __future__ import annotations

import time
from typing import Any

from depot.core.models import NEXT_STATUSES, Status, previous_statuses
from depot.errors import NotFound, StateConflict, UnprocessableInput
from depot.service.context import Context
from depot.storage.store import ConditionFailed

FAILURE_REASONS = (
    "recipient_absent",
    "address_not_found",
    "refused",
    "damaged",
    "access_denied",
    "other",
)
COUNTED = ("accepted", "in_progress", "delivered", "failed_to_deliver")


def extra_fields(
    status: Status, reason: str | None, note: str | None, proof: dict[str, Any] | None, actor: str
) -> dict[str, Any]:
    if reason is not None and status != Status.FAILED_TO_DELIVER:
        raise UnprocessableInput("reason goes with failed_to_deliver only", {"field": "reason"})
    if proof is not None and status != Status.DELIVERED:
        raise UnprocessableInput("proof goes with delivered only", {"field": "proof"})
    extra: dict[str, Any] = {f"{status.value}_by": actor}
    if status == Status.FAILED_TO_DELIVER:
        extra["reason"] = reason or "unspecified"
    if note is not None:
        extra["note"] = note
    if proof is not None:
        extra["proof"] = {k: v for k, v in proof.items() if v is not None}
    return extra


class Lifecycle(Context):
    def update(
        self,
        driver_id: str,
        package_id: str,
        status: Status,
        reason: str | None = None,
        note: str | None = None,
        proof: dict[str, Any] | None = None,
        actor: str = "open",
    ) -> dict[str, Any]:
        extra = extra_fields(status, reason, note, proof, actor)
        allowed_from = [s.value for s in previous_statuses(status)]
        now = time.time()
        if allowed_from:
            stale = now - self.settings.claim_ttl_s
            try:
                item = self.store.assignments.update_status(
                    driver_id,
                    package_id,
                    status.value,
                    allowed_from,
                    now,
                    extra,
                    stale_before=stale,
                )
            except ConditionFailed:
                pass
            else:
                self._published(item, status, actor)
                return _public(item)
        current = self.store.assignments.get_item(driver_id, package_id)
        if current is None:
            raise NotFound(
                f"no assignment of package {package_id!r} to driver {driver_id!r}",
                {"driver_id": driver_id, "package_id": package_id},
            )
        live_claim = float(current.get("releasing_at", 0)) >= now - self.settings.claim_ttl_s
        if (
            current.get("releasing")
            and live_claim
            and current["status"] in ("assigned", "accepted")
        ):
            raise StateConflict(
                f"package {package_id!r} is being taken from driver {driver_id!r} by a plan change",
                {
                    "current_status": current["status"],
                    "requested_status": status.value,
                    "being_changed": True,
                    "allowed_next": [],
                },
            )
        if current["status"] == status.value:
            return _public(current)
        now_status = Status(current["status"])
        allowed = [s.value for s in NEXT_STATUSES[now_status]]
        raise StateConflict(
            f"cannot move from {now_status.value} to {status.value}; allowed next: "
            f"{', '.join(allowed) or 'none (final)'}",
            {
                "current_status": now_status.value,
                "requested_status": status.value,
                "allowed_next": allowed,
            },
        )

    def _published(self, item: dict[str, Any], status: Status, actor: str) -> None:
        counts = {status.value: 1} if status.value in COUNTED else {}
        previous = item.pop("_previous_status", None)
        if previous in COUNTED:
            counts[previous] = counts.get(previous, 0) - 1
        self.feed.publish(
            item.get("day", ""),
            {
                "type": "status_changed",
                "actor": actor,
                "driver_id": item["driver_id"],
                "package_id": item["package_id"],
                "status": status.value,
                "previous_status": previous,
                **({"reason": item["reason"]} if status == Status.FAILED_TO_DELIVER else {}),
                "item_version": item.get("version"),
            },
            counts=counts,
        )


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in item.items() if k not in ("releasing", "releasing_at", "_previous_status")
    }
