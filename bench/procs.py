"""Processes the service benchmarks need: the embedded emulator and the API, each on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k, v in FAKE_AWS.items():
        env.setdefault(k, v)
    env.update(extra)
    return env


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Stack:
    endpoint: str
    api: str
    emulator_pid: int
    api_pid: int


@contextmanager
def emulator() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "depot.ops.emulator", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    # the emulator prints one line when ready and nothing after, so stdout is not drained
    try:
        line = proc.stdout.readline()
        if "ready on" not in line:
            raise RuntimeError(f"emulator did not start: {line!r}")
        endpoint = f"http://127.0.0.1:{port}"
        os.environ.update({k: os.environ.get(k, v) for k, v in FAKE_AWS.items()})
        from depot.config import Settings
        from depot.storage.store import make_clients
        from depot.storage.tables import bootstrap

        settings = Settings(aws_endpoint_url=endpoint)
        bootstrap(*make_clients(settings), settings)
        yield endpoint, proc.pid
    finally:
        _stop(proc)


@contextmanager
def api(endpoint: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="depot-bench-api-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "depot.http.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=_env(AWS_ENDPOINT_URL=endpoint, **(env or {})),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("the API exited: " + Path(log.name).read_text()[-2000:])
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        _stop(proc)
        log.close()
        Path(log.name).unlink(missing_ok=True)


@contextmanager
def stack(api_env: dict[str, str] | None = None) -> Iterator[Stack]:
    with emulator() as (endpoint, emu_pid), api(endpoint, api_env) as (url, api_pid):
        yield Stack(endpoint=endpoint, api=url, emulator_pid=emu_pid, api_pid=api_pid)
