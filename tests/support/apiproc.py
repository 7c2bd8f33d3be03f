"""The real API as a process (``python -m depot.ops.cli serve``) against a real emulator, for the
security and fuzz suites: start, wait for /health, read its output, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.processes import free_port, stop_process


@dataclass
class ApiProcess:
    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


def provision(endpoint: str) -> None:
    from depot.config import Settings
    from depot.storage.store import make_clients
    from depot.storage.tables import bootstrap

    settings = Settings(aws_endpoint_url=endpoint)
    bootstrap(*make_clients(settings), settings)


def api_env(endpoint: str, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPOT_")}
    env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


@contextmanager
def start_api(endpoint: str, timeout: float = 60, **env: str | None):
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="depot-api-", suffix=".log")[1])
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "depot.ops.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=api_env(endpoint, **env),
        )
    api = ApiProcess(f"http://127.0.0.1:{port}", port, proc, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the API exited with {proc.returncode}:\n{api.output()}")
            try:
                if httpx.get(f"{api.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API did not answer /health:\n{api.output()}")
            time.sleep(0.1)
        yield api
    finally:
        stop_process(proc)
        log.unlink(missing_ok=True)
