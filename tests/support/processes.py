"""Processes for the tests: free ports, the emulator as a process, waiting on a process's
readiness line (never sleeping), stopping a process.

Processes announce readiness on stdout (a line they print once their socket is bound), so the
helpers wait on that line rather than sleeping.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3

os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

READY_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = READY_TIMEOUT_S) -> str:
    """Read the process's stdout until a line contains ``needle``; fail if it exits first.

    Reads the raw file descriptor (not the buffered text stream), so select() never misses a
    line that arrived in the same chunk as the previous one.
    """
    import selectors
    import time

    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    pending = b""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace") + "\n"
                seen.append(line)
                if needle in line:
                    return line
    finally:
        sel.close()
    proc.kill()
    raise RuntimeError(
        f"process did not print {needle!r}; output:\n"
        f"{''.join(seen)}{pending.decode(errors='replace')}"
    )


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within ``timeout``; reaps it either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Emulator:
    endpoint: str
    port: int
    process: subprocess.Popen

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1")


@contextmanager
def start_emulator(port: int | None = None) -> Iterator[Emulator]:
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "depot.ops.emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_line(proc, "ready on")
        yield Emulator(endpoint=f"http://127.0.0.1:{port}", port=port, process=proc)
    finally:
        proc.kill()
        proc.wait()
