"""Operational logs in S3: every import, assignment run and status change, as an event.

Events wait in a bounded in-memory buffer and a background thread ships them as gzipped JSON
lines under ``logs/<env>/dt=YYYY-MM-DD/hour=HH/`` (UTC), every ``flush_interval_s`` or every
``flush_max_events``, and once more on shutdown. Each object has a fresh key and is written
with ``If-None-Match: *``, so nothing is ever overwritten. S3 being slow or down never reaches
the API: a failed batch goes back to the front of the buffer and is retried with backoff; when
the buffer is full the oldest event is dropped, counted and logged.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

log = logging.getLogger("depot.storage.oplog")


def event_key(env: str, when: datetime, process: str, seq: int) -> str:
    stamp = when.strftime("%Y%m%dT%H%M%S%fZ")
    return f"logs/{env}/dt={when:%Y-%m-%d}/hour={when:%H}/{stamp}-{process}-{seq:06d}.jsonl.gz"


class EventLog:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        env: str,
        flush_interval_s: float = 5.0,
        flush_max_events: int = 500,
        buffer_max_events: int = 100_000,
        on_metrics: Callable[[int, int], None] | None = None,
    ):
        self.s3 = s3
        self.bucket = bucket
        self.env = env
        self.flush_interval_s = flush_interval_s
        self.flush_max_events = flush_max_events
        self.buffer: deque[dict[str, Any]] = deque()
        self.buffer_max_events = buffer_max_events
        self.process = uuid.uuid4().hex[:12]
        self.dropped = 0
        self.shipped = 0
        self._seq = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff_s = 0.0
        self._on_metrics = on_metrics

    # --- producing ----------------------------------------------------------------------------

    def emit(self, event_type: str, actor: str | None = None, **fields: Any) -> str:
        """Queue an event; never blocks on S3. Returns the event's id.

        Every event names its ``actor``: the one given, else the request's principal (bound in
        the log context by the auth middleware: ``open``, ``dispatcher:<sub>``,
        ``driver:<id>``), else ``system`` (work no request asked for)."""
        event_id = uuid.uuid4().hex
        context = structlog.contextvars.get_contextvars()
        event = {
            "event_id": event_id,
            "type": event_type,
            "ts": datetime.now(UTC).isoformat(),
            "env": self.env,
            "process": self.process,
            "actor": actor or context.get("actor") or "system",
            **({"request_id": context["request_id"]} if "request_id" in context else {}),
            **fields,
        }
        with self._lock:
            if len(self.buffer) >= self.buffer_max_events:
                self.buffer.popleft()
                self.dropped += 1
                log.warning(
                    "operational log buffer full: dropped the oldest event (%d dropped so far)",
                    self.dropped,
                )
            self.buffer.append(event)
            depth = len(self.buffer)
        if depth >= self.flush_max_events:
            self._wake.set()
        self._report()
        return event_id

    def depth(self) -> int:
        with self._lock:
            return len(self.buffer)

    def unshipped(self) -> int:
        """Events not yet stored: waiting in the buffer or in a PUT under way."""
        with self._lock:
            return len(self.buffer) + self._in_flight

    # --- shipping -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="depot-oplog", daemon=True)
            self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the shipper and flush what is left (bounded by ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        deadline = time.monotonic() + timeout_s
        while self.depth() and time.monotonic() < deadline:
            if not self.flush():
                break

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(max(self.flush_interval_s, self._backoff_s))
            self._wake.clear()
            if self._stop.is_set():
                return
            while self.depth() and self.flush():
                if self.depth() < self.flush_max_events:
                    break

    def flush(self) -> bool:
        """Ship up to ``flush_max_events`` events; True if they were stored."""
        with self._lock:
            batch = [
                self.buffer.popleft() for _ in range(min(self.flush_max_events, len(self.buffer)))
            ]
            self._in_flight += len(batch)
        if not batch:
            return True
        stored = 0
        try:
            for key, events in self._objects(batch):
                self._put(key, events)
                stored += len(events)
        except Exception as exc:  # noqa: BLE001 - S3 trouble of any kind must not escape
            with self._lock:
                self._in_flight -= len(batch)
            self.shipped += stored
            self._requeue(self._unstored(batch, stored))
            self._backoff_s = min(max(self._backoff_s * 2, 0.5), 30.0) * random.uniform(0.5, 1.0)
            log.warning("operational log flush failed, will retry: %s", exc)
            return False
        self._backoff_s = 0.0
        with self._lock:
            self._in_flight -= len(batch)
        self.shipped += len(batch)
        self._report()
        return True

    @staticmethod
    def _unstored(batch: list[dict[str, Any]], stored: int) -> list[dict[str, Any]]:
        """The events of ``batch`` whose objects were not written (objects go hour by hour)."""
        by_hour: dict[str, list[dict[str, Any]]] = {}
        for event in batch:
            by_hour.setdefault(event["ts"][:13], []).append(event)
        ordered = [e for events in by_hour.values() for e in events]
        return ordered[stored:]

    def _objects(self, batch: list[dict[str, Any]]):
        by_hour: dict[str, list[dict[str, Any]]] = {}
        for event in batch:
            by_hour.setdefault(event["ts"][:13], []).append(event)
        for events in by_hour.values():
            when = datetime.fromisoformat(events[0]["ts"])
            with self._lock:
                self._seq += 1
                seq = self._seq
            yield event_key(self.env, when, self.process, seq), events

    def _put(self, key: str, events: list[dict[str, Any]]) -> None:
        body = gzip.compress(
            "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events).encode()
        )
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/x-ndjson",
            ContentEncoding="gzip",
            IfNoneMatch="*",
        )

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            room = max(0, self.buffer_max_events - len(self.buffer))
            keep = batch[len(batch) - room :]  # the newest that fit (not batch[-room:]: -0 is all)
            lost = len(batch) - len(keep)
            if lost > 0:
                self.dropped += lost
                log.warning("operational log buffer full: dropped %d events", lost)
            self.buffer.extendleft(reversed(keep))
        self._report()

    def _report(self) -> None:
        if self._on_metrics:
            self._on_metrics(self.depth(), self.dropped)


def read_events(s3: Any, bucket: str, prefix: str = "logs/") -> list[dict[str, Any]]:
    """Every event stored under ``prefix`` (for tests and operators)."""
    events: list[dict[str, Any]] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            events.extend(json.loads(line) for line in gzip.decompress(body).splitlines() if line)
    return events
