"""The day's change feed: every committed change and status move, numbered, for ``GET /events``.

Each event gets the day's next number from one atomic ADD on the day's counter item (which also
keeps the day's status counts, the board's tiles) and is stored under that number, so every
process serves the same ordered feed and a subscriber that comes back with ``Last-Event-ID``
reads exactly what it missed (keyed reads, never a Query). A process runs one poller per day
that has subscribers and fans each event out to all of them: hundreds of subscribers cost one
GetItem per poll.

An event is published after its change is committed. Publishing queues it; a background
writer numbers what is queued per day with one ADD and stores it with BatchWriteItem every
``FLUSH_S``, so the feed costs a request next to nothing, even under throttling. If that write
fails (an outage) or the process dies first, the change stands and the event is missing from
the feed (it is in the S3 operational log, logged here), never the other way round.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

import orjson

from depot.storage.store import StorageUnavailable, Store

log = logging.getLogger("depot.events")

POLL_S = 0.25
FLUSH_S = 0.25  # a flush costs two serialised emulator calls: at most four a second
GAP_WAIT_S = 3.0  # a number taken but not yet stored after this long was lost: skip it
STATUS_COUNTS = ("accepted", "in_progress", "delivered", "failed_to_deliver")
# An event is one DynamoDB item (at most 400 KB): a list longer than this (the packages of a
# large cancel, say) is stored cut to its first entries, with its full length beside it. The
# operational log keeps the whole event.
FEED_LIST_LIMIT = 500


def bounded(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as the feed stores it: each list of more than ``FEED_LIST_LIMIT`` entries cut
    to that many, ``<name>_total`` its length and ``truncated`` true."""
    long = [k for k, v in event.items() if isinstance(v, list) and len(v) > FEED_LIST_LIMIT]
    if not long:
        return event
    cut = dict(event, truncated=True)
    for name in long:
        cut[name] = event[name][:FEED_LIST_LIMIT]
        cut[f"{name}_total"] = len(event[name])
    return cut


class NoLog:
    def emit(self, event_type: str, **fields: Any) -> str:
        return ""


class Feed:
    def __init__(self, store: Store, oplog: Any = None):
        self.store = store
        self.oplog = oplog or NoLog()
        self._pollers: dict[str, _Poller] = {}
        self._lock = threading.Lock()
        self._queue: list[tuple[str, dict[str, Any], dict[str, int]]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._writer: threading.Thread | None = None

    def log(self, event_type: str, **fields: Any) -> None:
        """The S3 operational log only."""
        self.oplog.emit(event_type, **fields)

    def publish(
        self, day: str, event: dict[str, Any], counts: dict[str, int] | None = None
    ) -> None:
        """Log the event and queue it for the day's feed (numbered and stored by the writer)."""
        event = {"day": day, "at": time.time(), **event}
        self.oplog.emit(event["type"], **{k: v for k, v in event.items() if k != "type"})
        with self._wake:
            self._queue.append((day, bounded(event), counts or {}))
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, daemon=True, name="feed-writer"
                )
                self._writer.start()
            self._wake.notify()

    def flush(self) -> None:
        """Number and store everything queued so far (the writer's work, done now)."""
        with self._wake:
            batch, self._queue = self._queue, []
        by_day: dict[str, list[tuple[dict[str, Any], dict[str, int]]]] = {}
        for day, event, counts in batch:
            by_day.setdefault(day, []).append((event, counts))
        for day, items in by_day.items():
            total: dict[str, int] = {}
            for _, counts in items:
                for name, delta in counts.items():
                    total[name] = total.get(name, 0) + delta
            try:
                last = self.store.events.next_event_seq(day, total, n=len(items))
                first = last - len(items) + 1
                self.store.events.put_events(
                    day, [{**e, "seq": first + i} for i, (e, _) in enumerate(items)]
                )
            except StorageUnavailable as exc:
                log.warning("%d event(s) of %s not stored in the feed: %s", len(items), day, exc)
            except Exception:
                log.exception("%d event(s) of %s not stored in the feed", len(items), day)

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed and not self._queue:
                    return
            self.flush()
            time.sleep(FLUSH_S)  # pacing, not synchronisation: gathers what arrives meanwhile

    def counts(self, day: str) -> dict[str, int]:
        counter = self.store.events.event_counter(day)
        return {s: max(0, counter.get(f"count_{s}", 0)) for s in STATUS_COUNTS}

    def last(self, day: str) -> int:
        return self.store.events.event_counter(day).get("last", 0)

    def since(self, day: str, after: int, upto: int) -> list[dict[str, Any]]:
        found = self.store.events.get_events(day, range(after + 1, upto + 1))
        return [found[s] for s in sorted(found)]

    def subscribe(self, day: str, loop: asyncio.AbstractEventLoop) -> asyncio.Queue:
        """A queue that receives each poll's events as a batch of (number, frame)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        with self._lock:
            poller = self._pollers.get(day)
            if poller is None:
                poller = self._pollers[day] = _Poller(self, day)
                poller.start()
            poller.add(queue, loop)
        return queue

    def unsubscribe(self, day: str, queue: asyncio.Queue) -> None:
        with self._lock:
            poller = self._pollers.get(day)
            if poller is not None and poller.remove(queue) == 0:
                poller.stop()
                del self._pollers[day]

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self.flush()
        with self._lock:
            for poller in self._pollers.values():
                poller.stop()
            self._pollers.clear()


class _Poller:
    """One thread per day with subscribers: reads new events by number and fans them out."""

    def __init__(self, feed: Feed, day: str):
        self.feed, self.day = feed, day
        self.subscribers: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.cursor: int | None = None
        self._gap_since: float | None = None

    def add(self, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self.subscribers[queue] = loop

    def remove(self, queue: asyncio.Queue) -> int:
        with self._lock:
            self.subscribers.pop(queue, None)
            return len(self.subscribers)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name=f"events-{self.day}").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except StorageUnavailable as exc:
                log.warning("event poll of %s: %s", self.day, exc)
            except Exception:
                log.exception("event poll of %s failed", self.day)
            self._stop.wait(POLL_S)

    def _poll(self) -> None:
        last = self.feed.last(self.day)
        if self.cursor is None:
            self.cursor = last
            return
        if last <= self.cursor:
            return
        found = self.feed.store.events.get_events(self.day, range(self.cursor + 1, last + 1))
        ready = []
        for seq in range(self.cursor + 1, last + 1):
            if seq in found:
                ready.append(found[seq])
                self.cursor, self._gap_since = seq, None
                continue
            now = time.monotonic()
            if self._gap_since is None:
                self._gap_since = now
            if now - self._gap_since < GAP_WAIT_S:
                break  # numbered but not stored yet: wait for it, keep the order
            self.cursor, self._gap_since = seq, None  # lost (its writer failed): skip it
        self._deliver(ready)

    def _deliver(self, events: Iterable[dict[str, Any]]) -> None:
        """Hand the poll's events to every subscriber: encoded once, one callback per event loop
        (not one per subscriber and event), one batch per subscriber."""
        batch = [(event["seq"], encode(event)) for event in events]
        if not batch:
            return
        with self._lock:
            by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Queue]] = {}
            for queue, loop in self.subscribers.items():
                by_loop.setdefault(loop, []).append(queue)
        for loop, queues in by_loop.items():
            loop.call_soon_threadsafe(_offer, queues, batch)


def encode(event: dict[str, Any]) -> bytes:
    """One server-sent event frame: ``id`` (the number), ``event`` (the type), ``data`` (JSON)."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event["seq"],
        event["type"].encode(),
        orjson.dumps(event),
    )


def _offer(queues: list[asyncio.Queue], batch: list[tuple[int, bytes]]) -> None:
    for queue in queues:
        try:
            queue.put_nowait(batch)
        except (
            asyncio.QueueFull
        ):  # a subscriber that does not read: it will resume by Last-Event-ID
            pass
