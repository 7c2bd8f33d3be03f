"""End to end: start the app as `make run` does (`depot run`), send the brief's exact request, stop
it with Ctrl-C (SIGINT) and check that everything it started has ended."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from support.oracle import driver_accepts, max_assignable
from support.processes import free_port, wait_for_line

BRIEF_BODY = b'{"driver_ids":["driver_1","driver_2"],"max_per_driver":2}'


def children_of(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.e2e
def test_depot_run_answers_the_briefs_request_and_stops_on_ctrl_c():
    api_port, emulator_port = free_port(), free_port()
    depot = Path(sys.executable).with_name("depot")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DEPOT_") and k != "AWS_ENDPOINT_URL"
    }
    # The embedded default with the app's own bootstrap: a Terraform apply against a fresh emulator
    # takes about a minute and is tested on its own (tests/system/test_infra.py).
    env.update(DEPOT_PROVISION="bootstrap", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [str(depot), "run", "--port", str(api_port), "--emulator-port", str(emulator_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        output.append(wait_for_line(proc, "Depot API on", timeout=120))
        drainer = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
        drainer.start()
        emulators = [c for c in children_of(proc.pid) if "depot.ops.emulator" in cmdline(c)]
        assert len(emulators) == 1, [cmdline(c) for c in children_of(proc.pid)]
        (emulator_pid,) = emulators

        url = f"http://127.0.0.1:{api_port}"
        with httpx.Client(base_url=url, timeout=60) as client:
            _wait_until_serving(client, proc, output)
            r = client.post(
                "/assign", content=BRIEF_BODY, headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"assignments", "unassigned_packages", "unassigned_drivers"}
            assert list(body["assignments"]) == ["driver_1", "driver_2"]
            assert all(len(v) <= 2 for v in body["assignments"].values())

            day = client.get("/drivers/driver_1/assignments").json()["day"]
            manifest = client.get(f"/manifests/{day}")
            assert manifest.status_code == 200
            manifest = manifest.json()
            assert len(manifest["drivers"]) == 99 and len(manifest["packages"]) == 990, (
                "the brief's default day"
            )
            drivers = {d["driver_id"]: d for d in manifest["drivers"]}
            packages = {p["package_id"]: p for p in manifest["packages"]}
            held = [p for pids in body["assignments"].values() for p in pids]
            assert len(held) == len(set(held))
            for d, pids in body["assignments"].items():
                for pid in pids:
                    assert driver_accepts(drivers[d], packages[pid]), (d, packages[pid], drivers[d])
            optimum = max_assignable(
                [drivers["driver_1"], drivers["driver_2"]], manifest["packages"], 2
            )
            assert len(held) == optimum
            assert set(body["unassigned_packages"]) == set(packages) - set(held)
            assert body["unassigned_drivers"] == [
                d for d in ("driver_1", "driver_2") if not body["assignments"][d]
            ]

            again = client.post(
                "/assign", content=BRIEF_BODY, headers={"Content-Type": "application/json"}
            )
            assert again.status_code == 200 and again.json() == body

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) is not None
        drainer.join(timeout=10)
        assert not alive(emulator_pid), "the emulator outlived `depot run`"
        assert not port_open(api_port) and not port_open(emulator_port)
        assert any("stopped the API and the emulator" in line for line in output), "".join(output)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until_serving(client: httpx.Client, proc: subprocess.Popen, output: list[str]) -> None:
    """`depot run` prints its "Depot API on" line just before uvicorn binds the port."""
    for _ in range(1200):
        if proc.poll() is not None:
            raise AssertionError("`depot run` exited:\n" + "".join(output))
        try:
            if client.get("/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            try:
                proc.wait(timeout=0.05)  # returns early only if the process died
            except subprocess.TimeoutExpired:
                pass
    raise AssertionError("the API never answered /health:\n" + "".join(output))
