"""What every use case works with: settings, the store, the day cache, the writer, the feed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from depot.config import Settings
from depot.core.day import DayState, status_moves
from depot.service.days import Days
from depot.service.events import Feed
from depot.service.rollforward import Writer
from depot.storage.store import Store


@dataclass
class Context:
    settings: Settings
    store: Store
    days: Days
    writer: Writer
    feed: Feed

    def today(self) -> str:
        return datetime.now(ZoneInfo(self.settings.timezone)).date().isoformat()

    def items_of_day(
        self,
        state: DayState,
        pairs: Sequence[tuple[str, str]],
        attributes: Sequence[str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The day's item of each (driver, package), by package id: an item whose ``day`` is
        another (the same driver took the package again later) is read from the attempt
        archived beside it."""
        found = {
            i["package_id"]: i
            for i in self.store.assignments.get_items(pairs, attributes=attributes)
        }
        out: dict[str, dict[str, Any]] = {}
        for driver_id, package_id in pairs:
            item = found.get(package_id)
            if item is not None and item.get("day", state.day) != state.day:
                item = self.store.assignments.get_item(
                    driver_id, archive_key(package_id, state.day)
                )
                if item is not None:
                    item = {**item, "package_id": package_id}
            if item is not None:
                out[package_id] = item
        return out

    def statuses(
        self,
        state: DayState,
        package_ids: Sequence[str],
        items: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, str]:
        """The status on that day of each of ``package_ids`` that is held (``pending_write``
        while its item is not written yet), from ``items`` (``held_items``) when already read."""
        pairs = [(state.plan.holder[p], p) for p in package_ids if p in state.plan.holder]
        if items is None:
            items = self.items_of_day(state, pairs, ("package_id", "status", "day"))
        return {p: items.get(p, {}).get("status", "pending_write") for _, p in pairs}

    def held_items(self, state: DayState, package_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The whole item of each held one of ``package_ids``: one read for a plan change's
        statuses and for the ``moves_of`` what it releases."""
        pairs = [(state.plan.holder[p], p) for p in package_ids if p in state.plan.holder]
        return self.items_of_day(state, pairs)

    @staticmethod
    def moves_of(
        items: Mapping[str, dict[str, Any]], release: Mapping[str, str]
    ) -> dict[str, list[Any]]:
        """What each released item (of ``items``) had been through (``status_moves``), for the
        change that releases it: its item is deleted, its status changes stay in the timeline."""
        return {p: moves for p in release if p in items and (moves := status_moves(items[p]))}


def archive_key(package_id: str, day: str) -> str:
    """The sort key of a package's attempt of ``day`` kept beside its current item."""
    return f"{package_id}#{day}"
