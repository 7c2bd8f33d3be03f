"""Issue 10: what stops the service at start instead of at the first request, or instead of
serving an open API where nobody meant one (``depot serve``, ``Settings``)."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest
from pydantic import ValidationError

from depot.config import Settings
from depot.http.auth import AuthConfigError, check_configuration, open_mode_refusal
from support.apiproc import api_env, provision, start_api
from support.processes import free_port, stop_process, wait_for_line


def serve(env: dict[str, str], host: str = "127.0.0.1") -> subprocess.CompletedProcess:
    """``depot serve`` that is expected to refuse: it must exit by itself, non-zero."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "depot.ops.cli",
            "serve",
            "--host",
            host,
            "--port",
            str(free_port()),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_open_mode_against_aws_refuses_to_start(emulator):
    proc = serve(api_env("", DEPOT_ENV="dev"))  # AWS_ENDPOINT_URL="": AWS itself
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "DEPOT_AUTH_SECRET" in output and "DEPOT_ALLOW_OPEN_MODE" in output and "AWS" in output


def test_open_mode_on_all_interfaces_refuses_to_start_even_against_an_emulator(emulator):
    proc = serve(api_env(emulator.endpoint, DEPOT_ENV="dev"), host="0.0.0.0")
    assert proc.returncode != 0
    assert (
        "0.0.0.0" in proc.stdout + proc.stderr
        and "DEPOT_ALLOW_OPEN_MODE" in proc.stdout + proc.stderr
    )


def test_open_mode_on_all_interfaces_starts_when_explicitly_allowed(emulator):
    provision(emulator.endpoint)
    port = free_port()
    env = api_env(emulator.endpoint, DEPOT_ENV="dev", DEPOT_ALLOW_OPEN_MODE="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "depot.ops.cli", "serve", "--host", "0.0.0.0", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        wait_for_line(proc, "Depot API on")
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        stop_process(proc)


def test_a_secret_allows_any_bind_and_aws(emulator):
    settings = Settings(aws_endpoint_url="", auth_secret="s" * 40)
    assert open_mode_refusal(settings, "0.0.0.0") is None


def test_the_app_itself_refuses_open_mode_against_aws():
    """create_app (also what each uvicorn worker builds) checks the storage side too."""
    with pytest.raises(AuthConfigError, match="DEPOT_ALLOW_OPEN_MODE"):
        check_configuration(Settings(aws_endpoint_url=""))
    assert check_configuration(Settings(aws_endpoint_url="", allow_open_mode=True)) == []
    assert check_configuration(Settings(aws_endpoint_url="http://localhost:4566")) == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_against_a_local_emulator_stays_open(host):
    assert open_mode_refusal(Settings(aws_endpoint_url="http://127.0.0.1:4566"), host) is None


def test_loopback_open_mode_still_serves(emulator):
    """make run and the tests: loopback, local emulator, no secret."""
    provision(emulator.endpoint)
    with start_api(emulator.endpoint) as api:
        assert httpx.get(f"{api.url}/health").status_code == 200


def test_an_unknown_timezone_is_refused_by_settings(monkeypatch):
    monkeypatch.setenv("DEPOT_TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="Mars/Olympus_Mons"):
        Settings()
    monkeypatch.setenv("DEPOT_TIMEZONE", "Europe/London")
    assert Settings().timezone == "Europe/London"


def test_serve_with_an_unknown_timezone_exits_naming_it(emulator):
    proc = serve(api_env(emulator.endpoint, DEPOT_TIMEZONE="Nowhere/Atlantis"))
    assert proc.returncode != 0
    assert "Nowhere/Atlantis" in proc.stdout + proc.stderr
