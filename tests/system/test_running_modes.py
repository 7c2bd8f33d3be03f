"""How the app finds its storage: the dev default, emulators without credentials, and an
unprovisioned account (a clear 503, never a 500)."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from depot.config import EMBEDDED_ENDPOINT, Settings
from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.processes import free_port, start_emulator, wait_for_line


@pytest.fixture
def no_aws_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("AWS_", "DEPOT_")):
            monkeypatch.delenv(name)


def test_dev_without_an_endpoint_uses_the_embedded_emulator(no_aws_env):
    assert Settings().aws_endpoint_url == EMBEDDED_ENDPOINT


def test_an_empty_endpoint_or_another_env_means_aws_itself(no_aws_env, monkeypatch):
    assert Settings(env="prod").aws_endpoint_url is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")
    assert Settings().aws_endpoint_url is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert Settings().aws_endpoint_url == "http://127.0.0.1:9"


def test_serve_against_an_emulator_needs_no_aws_credentials(emulator):
    provision(emulator.endpoint)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPOT_"))}
    env["AWS_ENDPOINT_URL"] = emulator.endpoint
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "depot.ops.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_line(proc, "Depot API on")
        url = f"http://127.0.0.1:{port}"
        day = "2026-07-01"
        payload = {"day": day, **generate_day(seed=31, drivers=3, packages_per_driver=2)}
        assert httpx.post(f"{url}/manifests", json=payload).status_code == 201
        answer = httpx.post(
            f"{url}/assign", json={"day": day, "driver_ids": ["driver_1"], "max_per_driver": 1}
        )
        assert answer.status_code == 200
        assert len(answer.json()["assignments"]["driver_1"]) == 1
    finally:
        proc.kill()
        proc.wait()


def test_an_unprovisioned_account_answers_503_naming_the_cause():
    with start_emulator() as emu, start_api(emu.endpoint) as api:
        answer = httpx.post(
            f"{api.url}/assign", json={"driver_ids": ["driver_1"], "max_per_driver": 1}
        )
        assert answer.status_code == 503
        assert answer.headers["retry-after"]
        assert "not provisioned" in answer.json()["error"]["message"]
        assert httpx.get(f"{api.url}/manifests/2026-07-02").status_code == 503
