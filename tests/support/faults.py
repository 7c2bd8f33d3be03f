"""The fault harness (issue 4, item 2): outages and crashes without Docker, on loopback only.

* ``FaultProxy``: a thread-based TCP proxy in front of the emulator. It reads each HTTP request
  whole (so faults can target one operation, e.g. the fifth ``BatchWriteItem``), and applies the
  current fault: ``pass``, ``delay`` (N ms before forwarding), ``reset`` (forward the request,
  wait until the emulator has answered, then drop the answer and reset the client's connection
  with RST, SO_LINGER 0: the write happened but the caller cannot know) and ``blackhole`` (accept,
  read, never answer). The fault can be switched at any time and applies from the next request.
* ``ManagedEmulator``: the emulator as a process the test controls: pause (SIGSTOP), resume
  (SIGCONT), kill (SIGKILL: moto keeps its state in memory, so everything is lost) and restart
  on the same port, then provision again.
* ``ManagedApi``: ``python -m depot.ops.cli serve`` as a real process, pointed at any endpoint (the
  proxy or the emulator), killable with SIGKILL.
* botocore event hooks on an in-process client: ``Throttle`` (a ThrottlingException answer for a
  given share of requests, before they are sent), ``HalfUnprocessed`` (every BatchWriteItem sends
  only half of its items and returns the other half as ``UnprocessedItems``), ``Crash`` (after n
  requests, this client's process is "dead": every later request raises ``ProcessCrashed``).
* Readers that look at the emulator directly, never through Depot: the assignment items of a day
  (scan) and the day's committed state (the day item, and each committed run from S3).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import boto3
import httpx
import zstandard
from botocore.awsrequest import AWSResponse

from support.processes import free_port, stop_process, wait_for_line

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.02, what: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --- the TCP proxy ------------------------------------------------------------------------------

PASS, DELAY, RESET, BLACKHOLE = "pass", "delay", "reset", "blackhole"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the proxy saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    raw: bytes

    @property
    def target(self) -> str:
        """``BatchWriteItem`` for DynamoDB (from X-Amz-Target), else ``S3:<METHOD>``; a batch of
        the day's event feed is ``BatchWriteItem:events``, so that ``BatchWriteItem`` counts the
        assignment writes alone."""
        amz = self.headers.get("x-amz-target")
        if not amz:
            return f"S3:{self.method}"
        operation = amz.rsplit(".", 1)[-1]
        if operation == "BatchWriteItem" and b'"DepotEvents' in self.raw:
            return "BatchWriteItem:events"
        return operation


@dataclass(frozen=True)
class Fault:
    mode: str = PASS
    delay_s: float = 0.0
    when: Callable[[Request], bool] | None = None  # None: every request


class _ClientGone(Exception):
    pass


def _find(sock: socket.socket, buf: bytearray, marker: bytes, start: int) -> int:
    while True:
        at = buf.find(marker, start)
        if at >= 0:
            return at
        chunk = sock.recv(65536)
        if not chunk:
            raise _ClientGone()
        buf += chunk


def _recv_exactly(sock: socket.socket, buf: bytearray, n: int) -> None:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _ClientGone()
        buf += chunk


def read_request(sock: socket.socket, buf: bytearray) -> Request:
    """Read one whole HTTP/1.1 request (Content-Length or chunked body) off ``sock``."""
    end = _find(sock, buf, b"\r\n\r\n", 0) + 4
    head = bytes(buf[:end]).decode("latin-1")
    lines = head.split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    kept = [lines[0]]
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            if name.strip().lower() == "expect" and value.strip().lower() == "100-continue":
                sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # answered here; not forwarded
                continue
            headers[name.strip().lower()] = value.strip()
        kept.append(line)
    head_end = end
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pos = end
        while True:
            line_end = _find(sock, buf, b"\r\n", pos)
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                while True:  # trailers, up to an empty line
                    line_end = _find(sock, buf, b"\r\n", pos)
                    done = line_end == pos
                    pos = line_end + 2
                    if done:
                        break
                end = pos
                break
            _recv_exactly(sock, buf, pos + size + 2)
            pos += size + 2
    else:
        length = int(headers.get("content-length", "0"))
        _recv_exactly(sock, buf, end + length)
        end += length
    raw = "\r\n".join(kept).encode("latin-1") + bytes(buf[head_end:end])
    del buf[:end]
    return Request(method, path, headers, raw)


class _Connection:
    def __init__(self, proxy: FaultProxy, client: socket.socket):
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.reset_on_answer = threading.Event()
        self.lock = threading.Lock()
        self.closed = False

    def close(self, rst: bool = False) -> None:
        """Close both sides; ``rst``: with SO_LINGER 0, so the peer sees a reset, not a FIN.

        ``shutdown(SHUT_RD)`` first wakes the thread blocked in ``recv`` on the socket (sending
        nothing), so the last reference goes and the kernel really closes (and resets) it.
        """
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                if rst:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RD if rst else socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass

    def serve(self) -> None:
        buf = bytearray()
        try:
            while not self.closed:
                request = read_request(self.client, buf)
                fault = self.proxy.fault
                applies = fault.when is None or fault.when(request)
                mode = fault.mode if applies else PASS
                self.proxy._record(request, mode)
                if mode == BLACKHOLE:
                    continue  # swallowed: the caller waits for an answer that never comes
                if mode == DELAY:
                    time.sleep(fault.delay_s)  # the fault itself, not synchronisation
                if self.upstream is None:
                    try:
                        self.upstream = socket.create_connection(self.proxy.upstream, timeout=5)
                        self.upstream.settimeout(None)
                    except OSError:
                        self.close(rst=True)  # emulator gone: the caller sees a reset connection
                        return
                    threading.Thread(target=self._pump, daemon=True).start()
                if mode == RESET:
                    self.reset_on_answer.set()
                self.upstream.sendall(request.raw)
                self.proxy._count(f"{request.target}:forwarded")
        except (_ClientGone, OSError):
            pass
        finally:
            self.close()
            self.proxy._forget(self)

    def _pump(self) -> None:
        """Copy the emulator's answers back; in reset mode, drop the answer and RST the client."""
        try:
            while True:
                data = self.upstream.recv(65536)
                if not data:
                    break
                if self.reset_on_answer.is_set():
                    self.proxy._count("reset_sent")
                    self.close(rst=True)
                    return
                self.client.sendall(data)
        except OSError:
            pass
        finally:
            self.close()


class FaultProxy:
    """A TCP proxy for one upstream (the emulator) whose fault is switched at runtime."""

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int | None = None
    ):
        self.upstream = (upstream_host, upstream_port)
        self.fault = Fault()
        self.seen: Counter[str] = (
            Counter()
        )  # requests by target and mode, e.g. "BatchWriteItem:pass"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._connections: set[_Connection] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port or 0))
        self._listener.listen(256)
        self.port = self._listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._stopped = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    # --- faults ---

    def set(
        self, mode: str = PASS, delay_ms: float = 0, when: Callable[[Request], bool] | None = None
    ) -> None:
        self.fault = Fault(mode, delay_ms / 1000.0, when)

    def passthrough(self) -> None:
        self.set(PASS)

    def blackhole(self, when: Callable[[Request], bool] | None = None) -> None:
        self.set(BLACKHOLE, when=when)

    def delay(self, ms: float, when: Callable[[Request], bool] | None = None) -> None:
        self.set(DELAY, ms, when)

    def reset(self, when: Callable[[Request], bool] | None = None) -> None:
        self.set(RESET, when=when)

    def drop_connections(self) -> None:
        """Reset every open connection (both sides)."""
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            conn.close(rst=True)

    # --- observation ---

    def count(self, key: str) -> int:
        with self._lock:
            return self.seen[key]

    def wait_for(self, key: str, at_least: int, timeout: float) -> None:
        """Wait until ``at_least`` requests of ``key`` (e.g. "BatchWriteItem:blackhole") were
        seen."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.seen[key] < at_least:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"proxy saw {self.seen[key]} of {at_least} {key} in {timeout}s"
                    )
                self._changed.wait(left)

    def _record(self, request: Request, mode: str) -> None:
        with self._changed:
            self.seen[request.target] += 1
            self.seen[f"{request.target}:{mode}"] += 1
            self.seen[mode] += 1
            self._changed.notify_all()

    def _count(self, key: str) -> None:
        with self._changed:
            self.seen[key] += 1
            self._changed.notify_all()

    # --- plumbing ---

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, client)
            with self._lock:
                self._connections.add(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._connections.discard(conn)

    def close(self) -> None:
        self._stopped = True
        self._listener.close()
        self.drop_connections()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def every(target: str, after: int = 0) -> Callable[[Request], bool]:
    """A ``when`` that matches requests to ``target`` from its (after+1)-th one on."""
    seen = [0]
    lock = threading.Lock()

    def when(request: Request) -> bool:
        if request.target != target:
            return False
        with lock:
            seen[0] += 1
            return seen[0] > after

    return when


# --- the emulator as a process the test controls -------------------------------------------------


class ManagedEmulator:
    """The emulator on a fixed port: pause, resume, kill, restart, provision."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, provision: bool = True) -> ManagedEmulator:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "depot.ops.emulator", "--port", str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        wait_for_line(self.process, "ready on")
        if provision:
            self.provision()
        return self

    def provision(self) -> None:
        from depot.storage.store import make_clients
        from depot.storage.tables import bootstrap

        settings = make_settings(self.endpoint)
        bootstrap(*make_clients(settings), settings)

    def pause(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: moto's in-memory state is gone with the process."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
        if self.process:
            self.process.wait()

    def restart(self, provision: bool = True) -> ManagedEmulator:
        self.kill()
        return self.start(provision)

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()


# --- API processes ------------------------------------------------------------------------------


class ManagedApi:
    """``python -m depot.ops.cli serve`` as a real process against ``endpoint``."""

    def __init__(self, endpoint: str, env: dict[str, str] | None = None, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, **(env or {})}
        full_env.pop("DEPOT_AWS_ENDPOINT_URL", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "depot.ops.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def wait_ready(self, timeout: float = 60) -> ManagedApi:
        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"API process exited with {self.process.returncode}:\n{self.stderr}"
                )
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout, interval=0.05, what=f"the API on {self.url}")
        return self

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def api_processes(
    endpoint: str, n: int, env: dict[str, str] | None = None
) -> Iterator[list[ManagedApi]]:
    procs = [ManagedApi(endpoint, env) for _ in range(n)]
    try:
        for proc in procs:
            proc.wait_ready()
        yield procs
    finally:
        for proc in procs:
            proc.kill()


# --- in-process Depot and botocore hooks ----------------------------------------------------------


def make_settings(endpoint: str, **overrides: Any):
    from depot.config import Settings

    for name, value in FAKE_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    return Settings(aws_endpoint_url=endpoint, **overrides)


def make_service(endpoint: str, **overrides: Any):
    """A Store and a Service of their own (own clients, own process id) on ``endpoint``."""
    from depot.service import Service
    from depot.storage.store import Store, make_clients

    settings = make_settings(endpoint, **overrides)
    dynamodb, s3 = make_clients(settings)
    return Service(settings, Store(settings, dynamodb, s3))


class _Raw:
    def __init__(self, body: bytes):
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def throttling_response(request) -> AWSResponse:
    body = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
            "message": "Rate of requests exceeds the allowed throughput (injected)",
        }
    ).encode()
    headers = {
        "x-amzn-RequestId": "injected",
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(body)),
    }
    return AWSResponse(request.url, 400, headers, _Raw(body))


class Hook:
    """A botocore handler on ``client``; ``remove()`` unregisters it."""

    def __init__(self, client, event: str, handler: Callable):
        self.client = client
        self.event = event
        self.handler = handler
        self.lock = threading.Lock()
        client.meta.events.register(event, handler)

    def remove(self) -> None:
        self.client.meta.events.unregister(self.event, self.handler)


class Throttle(Hook):
    """Answer ``rate`` of the client's requests with a ThrottlingException, before they are sent.

    On ``before-send``, so botocore's retry logic sees it exactly as a real throttle.
    """

    def __init__(self, client, rate: float, seed: int = 0, operations: set[str] | None = None):
        self.rate = rate
        self.rng = random.Random(seed)
        self.operations = operations
        self.sent = 0
        self.throttled = 0
        self.gave_up = 0  # calls that ended throttled after botocore's retries
        self.quota_reached = 0  # ... because botocore's retry quota was empty
        super().__init__(client, "before-send.dynamodb", self._before_send)
        client.meta.events.register("after-call.dynamodb", self._after_call)

    def _after_call(self, parsed, **kwargs):
        metadata = parsed.get("ResponseMetadata", {})
        if parsed.get("Error", {}).get("Code") == "ThrottlingException":
            with self.lock:
                self.gave_up += 1
                self.quota_reached += bool(metadata.get("RetryQuotaReached"))

    def remove(self) -> None:
        super().remove()
        self.client.meta.events.unregister("after-call.dynamodb", self._after_call)

    def _before_send(self, request, **kwargs):
        operation = request.headers.get("X-Amz-Target", b"")
        operation = (operation.decode() if isinstance(operation, bytes) else operation).rsplit(
            ".", 1
        )[-1]
        if self.operations is not None and operation not in self.operations:
            return None
        with self.lock:
            self.sent += 1
            throttle = self.rng.random() < self.rate
            if throttle:
                self.throttled += 1
        return throttling_response(request) if throttle else None


class HalfUnprocessed:
    """Every BatchWriteItem sends only half its items (rounded down) and returns the rest as
    ``UnprocessedItems``, as DynamoDB does when a partition is throttled."""

    def __init__(self, client):
        self.client = client
        self.calls = 0
        self.withheld = 0
        self.lock = threading.Lock()
        client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem", self._before)
        client.meta.events.register("after-call.dynamodb.BatchWriteItem", self._after)

    def _before(self, params, context, **kwargs):
        withheld = {}
        for table, requests in params["RequestItems"].items():
            keep = len(requests) - len(requests) // 2
            withheld[table] = requests[keep:]
            params["RequestItems"][table] = requests[:keep]
        context["depot_withheld"] = withheld
        with self.lock:
            self.calls += 1
            self.withheld += sum(len(v) for v in withheld.values())

    def _after(self, parsed, context, **kwargs):
        withheld = {t: r for t, r in context.pop("depot_withheld", {}).items() if r}
        if withheld and "Error" not in parsed:
            unprocessed = parsed.setdefault("UnprocessedItems", {})
            for table, requests in withheld.items():
                unprocessed.setdefault(table, []).extend(requests)

    def remove(self) -> None:
        self.client.meta.events.unregister(
            "before-parameter-build.dynamodb.BatchWriteItem", self._before
        )
        self.client.meta.events.unregister("after-call.dynamodb.BatchWriteItem", self._after)


class ProcessCrashed(Exception):
    """Raised by every request of a client whose process has "crashed"."""


class Crash:
    """The process dies at its ``at``-th DynamoDB call (1-based) from now.

    ``applied=True``: that call still reaches DynamoDB, and the process dies before it reads the
    answer; ``applied=False``: it dies before sending. Every later call of the clients (the lease
    renewer, the other batch writers, S3) raises too, as nothing runs after a crash.
    """

    def __init__(self, clients, at: int, applied: bool):
        self.clients = list(clients)
        self.at = at
        self.applied = applied
        self.calls = 0
        self.dead = False
        self.lock = threading.Lock()
        for client in self.clients:
            client.meta.events.register("before-call", self._before_call)
            client.meta.events.register("after-call", self._after_call)

    def _before_call(self, model, context, **kwargs):
        with self.lock:
            if self.dead:
                raise ProcessCrashed("the process is dead")
            if model.service_model.service_name != "dynamodb":
                return
            self.calls += 1
            if self.calls == self.at:
                self.dead = True
                if not self.applied:
                    raise ProcessCrashed(f"crashed before sending call {self.at} ({model.name})")
                context["depot_crash_after"] = model.name  # goes through; its answer is never read
        return

    def _after_call(self, context, **kwargs):
        if context.get("depot_crash_after"):
            raise ProcessCrashed(
                f"crashed after sending call {self.at} ({context['depot_crash_after']})"
            )

    def remove(self) -> None:
        for client in self.clients:
            client.meta.events.unregister("before-call", self._before_call)
            client.meta.events.unregister("after-call", self._after_call)


# --- reading the emulator directly ---------------------------------------------------------------


def scan_all(dynamodb, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = dynamodb.scan(TableName=table, **kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def table_assignments(
    dynamodb, day: str, table: str = "DeliveryAssignments"
) -> list[tuple[str, str, str]]:
    """(driver_id, package_id, status) of every item of ``day`` in the table, straight from a
    scan."""
    items = scan_all(
        dynamodb,
        table,
        FilterExpression="#d = :d",
        ProjectionExpression="driver_id, package_id, #s",
        ExpressionAttributeNames={"#d": "day", "#s": "status"},
        ExpressionAttributeValues={":d": {"S": day}},
    )
    return [(i["driver_id"]["S"], i["package_id"]["S"], i["status"]["S"]) for i in items]


def count_day_items(dynamodb, day: str, table: str = "DeliveryAssignments") -> int:
    total, kwargs = 0, {}
    while True:
        page = dynamodb.scan(
            TableName=table,
            Select="COUNT",
            FilterExpression="#d = :d",
            ExpressionAttributeNames={"#d": "day"},
            ExpressionAttributeValues={":d": {"S": day}},
            **kwargs,
        )
        total += page["Count"]
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def read_state_object(s3, key: str, state_bucket: str = "depot-state-dev") -> Any:
    """A JSON object of the state bucket (a manifest or a run), zstd-compressed or not."""
    raw = s3.get_object(Bucket=state_bucket, Key=key)["Body"].read()
    return json.loads(zstandard.decompress(raw) if raw[:4] == b"\x28\xb5\x2f\xfd" else raw)


@dataclass
class Committed:
    """The day as committed: its runs (from the day item) and their assignments (from S3)."""

    version: int
    runs: list[str]
    pending: dict[str, Any]
    pairs: list[tuple[str, str]] = field(
        default_factory=list
    )  # every (driver, package) of every run
    caps: dict[str, int] = field(default_factory=dict)  # run key -> its max_per_driver


def committed_state(
    dynamodb, s3, day: str, days_table: str = "DepotDays", state_bucket: str = "depot-state-dev"
) -> Committed:
    """The day item, and every committed change of the day read from the state bucket (the day
    item's log is compacted, so the changes are listed by their key prefix; a stored change that
    never committed has a version above the day's)."""
    item = dynamodb.get_item(TableName=days_table, Key={"day": {"S": day}}, ConsistentRead=True)[
        "Item"
    ]
    version = int(item["version"]["N"])
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=state_bucket, Prefix=f"changes/{day}/"
    ):
        keys.extend(o["Key"] for o in page.get("Contents", []))
    committed_keys = {r["S"] for r in item.get("log", {}).get("L", [])} | set(
        item.get("pending", {}).get("M", {})
    )
    if "snapshot_key" in item:
        committed_keys |= set(
            read_state_object(s3, item["snapshot_key"]["S"], state_bucket).get("folded", [])
        )
    runs = []
    by_version: dict[int, str] = {}
    for key in sorted(keys):
        v = int(key.rsplit("/", 1)[-1][:8])
        if v <= version and key in committed_keys:
            by_version[v] = key
    state = Committed(
        version=version,
        runs=runs,
        pending={k: v for k, v in item.get("pending", {}).get("M", {}).items()},
    )
    for v in sorted(by_version):
        key = by_version[v]
        body = read_state_object(s3, key, state_bucket)
        if body.get("kind") != "run":
            continue
        runs.append(key)
        state.caps[key] = body.get("cap")
        for driver_id, package_ids in body.get("assign", {}).items():
            state.pairs.extend((driver_id, p) for p in package_ids)
    return state


def import_day(
    service,
    day: str,
    drivers: int,
    packages_per_driver: int,
    seed: int,
    min_rules: int = 0,
    max_rules: int = 3,
    driver_prefix: str = "driver_",
    with_destination: bool = True,
) -> dict[str, Any]:
    """Generate a day (``depot.ops.generator.generate_day``) and import it in-process."""
    from depot.core.models import parse_drivers, parse_packages
    from depot.ops.generator import generate_day

    payload = generate_day(
        seed=seed,
        drivers=drivers,
        packages_per_driver=packages_per_driver,
        min_rules=min_rules,
        max_rules=max_rules,
        with_destination=with_destination,
    )
    for d in payload["drivers"]:
        d["driver_id"] = driver_prefix + d["driver_id"].removeprefix("driver_")
    service.import_manifest(
        day, parse_drivers(payload["drivers"]), parse_packages(payload["packages"])
    )
    return payload


# --- the real app in this process (for botocore hooks on its clients) -----------------------------


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a thread of this process; yield its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, what="uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]
    elapsed: float


def call(
    client: httpx.Client, method: str, url: str, body: Any = None, timeout: float = 60
) -> Answer:
    """One HTTP call; a transport failure is status 0 (never raised)."""
    started = time.monotonic()
    try:
        response = client.request(method, url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return Answer(0, repr(exc), {}, time.monotonic() - started)
    try:
        payload = response.json()
    except ValueError:
        payload = response.text
    return Answer(response.status_code, payload, dict(response.headers), time.monotonic() - started)
