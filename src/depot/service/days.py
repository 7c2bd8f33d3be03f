"""The days a process knows: one consistent GetItem per request says what changed since it looked.

A day item is small whatever happens on the day: ``version``, the manifest's key, a snapshot of
the plan (``snapshot_key`` at ``snapshot_version``, in S3), the keys of the changes committed
after it (``log``, compacted every ``COMPACT_AFTER`` changes) and the ``pending`` leases of
changes still being written out. A process rebuilds the day from its cached state, or from the
snapshot, plus the changes it has not seen (``Plan.apply``).

The cache holds at most ``Settings.day_cache_days`` days (least recently used first out), so a
process's memory is bounded by the largest days it serves, not by the number of days stored.
"""

from __future__ import annotations

import gc
import threading
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from depot.config import Settings
from depot.core.day import Change, DayState, Manifest, Plan
from depot.core.manifest import ManifestBody
from depot.errors import NotFound
from depot.storage.store import Store

FREEZE_MIN_PACKAGES = 10_000
KEPT_BODIES = 3  # days whose imported body a process keeps until the day is next used
COMPACT_AFTER = 64  # changes in the day item's log before the plan is snapshotted


def freeze_heap(state: DayState) -> None:
    """After a large day's state is built, move the heap out of the cyclic GC's reach.

    A 100,000-package day is a few million objects; each full collection walked them all
    (0.3-0.4 s, every request stalled meanwhile). ``gc.freeze()`` moves what survives a young
    collection into the permanent generation. Frozen objects are still freed by reference
    counting when an old state is dropped; small days are left alone.
    """
    if len(state.manifest.packages) >= FREEZE_MIN_PACKAGES:
        gc.collect(1)
        gc.freeze()


def change_version(key: str) -> int:
    """The version a change was committed at, from its key (``…/<version:08d>-<uuid>.json``)."""
    return int(key.rsplit("/", 1)[-1][:8])


def change_key(day: str, version: int, kind: str = "changes") -> str:
    return f"{kind}/{day}/{version:08d}-{uuid.uuid4().hex}.json"


class Days:
    """The per-process, size-bounded cache of days and the one way to read a day's state."""

    def __init__(self, settings: Settings, store: Store):
        self.settings = settings
        self.store = store
        self._days: OrderedDict[str, DayState] = OrderedDict()
        self._kept_bodies: OrderedDict[str, tuple[str, ManifestBody]] = OrderedDict()
        self._lock = threading.Lock()

    def state(self, day: str) -> DayState | None:
        """The day as stored now: one GetItem, plus whatever changed since this process looked."""
        item = self.store.days.get_day(day)
        if item is None or "manifest_key" not in item:
            return None
        with self._lock:
            cached = self._days.get(day)
        state = self._refresh(day, item, cached)
        self.remember(state)
        if cached is None or cached.version != state.version:
            freeze_heap(state)
        return state

    def require(self, day: str) -> DayState:
        state = self.state(day)
        if state is None:
            raise NotFound(f"no manifest is stored for day {day}", {"day": day})
        return state

    def remember(self, state: DayState) -> None:
        """Cache ``state`` unless a newer one is cached; evict the least recently used days."""
        with self._lock:
            current = self._days.get(state.day)
            if (
                current is None
                or current.version <= state.version
                or current.incarnation != state.incarnation
            ):
                self._days[state.day] = state
            self._days.move_to_end(state.day)
            evicted = [
                self._days.popitem(last=False)
                for _ in range(len(self._days) - self.settings.day_cache_days)
            ]
        del evicted  # freed outside the lock

    def cached_days(self) -> list[str]:
        with self._lock:
            return list(self._days)

    def _refresh(self, day: str, item: dict[str, Any], cached: DayState | None) -> DayState:
        version = int(item["version"])
        log = tuple(item.get("log", item.get("runs", [])))
        snapshot_key = item.get("snapshot_key")
        snapshot_version = int(item.get("snapshot_version", 0))
        fields = {
            "pending": item.get("pending", {}),
            "log": log,
            "snapshot_key": snapshot_key,
            "snapshot_version": snapshot_version,
            "incarnation": item.get("incarnation", ""),
            "imported": item.get("imported") or {},
        }
        if cached is not None and (
            cached.incarnation != fields["incarnation"] or cached.version > version
        ):
            cached = None  # the day item was recreated (storage lost or reset): start afresh
        same_manifest = cached is not None and cached.manifest.key == item["manifest_key"]
        if cached is not None and same_manifest and cached.version == version:
            return replace(cached, **fields)
        manifest = (
            cached.manifest
            if cached is not None and same_manifest
            else self._load_manifest(day, item["manifest_key"])
        )
        if cached is not None and cached.plan.version >= snapshot_version:
            plan = cached.plan
        elif snapshot_key:
            plan = Plan.from_snapshot(self.store.objects.get_json(snapshot_key))
        else:
            plan = Plan()
        plan = plan.apply(self._changes([k for k in log if change_version(k) > plan.version]))
        return DayState(day=day, version=version, manifest=manifest, plan=plan, **fields)

    def _changes(self, keys: list[str]) -> list[Change]:
        if len(keys) <= 2:
            return [Change.from_json(self.store.objects.get_json(k)) for k in keys]
        with ThreadPoolExecutor(max_workers=min(8, len(keys))) as pool:
            return [Change.from_json(doc) for doc in pool.map(self.store.objects.get_json, keys)]

    def _load_manifest(self, day: str, key: str) -> Manifest:
        """The stored manifest ``key``: from the body this process imported, if it kept it, else
        fetched from the state bucket and read."""
        with self._lock:
            kept = self._kept_bodies.pop(day, None)
        if kept is not None and kept[0] == key:
            return Manifest.build(key, kept[1].drivers, kept[1].records())
        return Manifest.from_stored(key, self.store.objects.get_bytes(key))

    def keep_body(self, day: str, key: str, body: ManifestBody) -> None:
        """Keep a first import's validated body until the day is next used (``_load_manifest``):
        building the day from it spares fetching and reading the stored copy."""
        with self._lock:
            self._kept_bodies[day] = (key, body)
            evicted = [
                self._kept_bodies.popitem(last=False)
                for _ in range(len(self._kept_bodies) - KEPT_BODIES)
            ]
        del evicted

    def compact(self, state: DayState) -> None:
        """Snapshot the plan once the day's log is long, so the day item stays small."""
        if len(state.log) < COMPACT_AFTER:
            return
        plan = state.plan
        folded = [k for k in state.log if change_version(k) <= plan.version]
        if not folded:
            return
        key = change_key(state.day, plan.version, "snapshots")
        previous = (
            self.store.objects.get_json(state.snapshot_key).get("folded", [])
            if state.snapshot_key
            else []
        )
        # the keys of every change folded so far: an audit of which stored changes committed
        self.store.objects.put_json(key, {**plan.to_snapshot(), "folded": previous + folded})
        self.store.days.compact(state.day, key, plan.version, len(folded), state.snapshot_version)
