"""Security over HTTP: the real API process (DEPOT_AUTH_SECRET set) against a real emulator.

Authentication (missing, forged, expired, ``alg: none``, wrong algorithm, bad claims), roles
(driver on /assign and /manifests is 403), objects (another driver's package answers exactly as
a missing one), input limits (422 before DynamoDB is touched), body caps counted as bytes arrive
(413 before a 60 MiB chunked body is read, with bounded memory), the rate limit (429 with
Retry-After), secret rotation, the token CLI and the refusal to start without a secret.

Decision (docs/security.md): 100,001 driver ids make a body over the 1 MiB cap of POST /assign,
so the answer is 413 from the byte counter, before any JSON is parsed; a count over 10,000 that
fits in 1 MiB is 422 from validation. Both are refused before anything touches DynamoDB.
"""

from __future__ import annotations

import base64
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from depot.http.auth import mint_token
from support.apiproc import provision, start_api

SECRET = "test-secret-" + uuid.uuid4().hex + uuid.uuid4().hex
OLD_SECRET = "old-secret-" + uuid.uuid4().hex + uuid.uuid4().hex
MiB = 1024 * 1024
DEPOT = str(Path(sys.executable).with_name("depot"))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    if code:
        assert body["error"]["code"] == code, body
    return body


@pytest.fixture(scope="module")
def api(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint, DEPOT_AUTH_SECRET=SECRET, DEPOT_ENV="test") as proc:
        yield proc


@pytest.fixture(scope="module")
def tokens():
    return {
        "dispatcher": mint_token(SECRET, "dispatcher"),
        "driver_1": mint_token(SECRET, "driver", "driver_1"),
        "driver_2": mint_token(SECRET, "driver", "driver_2"),
    }


@pytest.fixture(scope="module")
def day(api, tokens):
    """A day of our own, imported and assigned: {"day", "assignments"}."""
    from depot.ops.generator import generate_day

    day = f"2041-{random.randint(1, 12):02d}-{random.randint(1, 28):02d}"
    payload = {
        "day": day,
        **generate_day(seed=7, drivers=6, packages_per_driver=6, min_rules=0, max_rules=0),
    }
    with httpx.Client(base_url=api.url, headers=bearer(tokens["dispatcher"]), timeout=60) as client:
        assert client.post("/manifests", json=payload).status_code == 201
        response = client.post(
            "/assign",
            json={
                "day": day,
                "driver_ids": [f"driver_{i}" for i in range(1, 7)],
                "max_per_driver": 5,
            },
        )
        assert response.status_code == 200, response.text
    assignments = response.json()["assignments"]
    assert all(len(assignments[d]) >= 3 for d in ("driver_1", "driver_2"))
    return {"day": day, "assignments": assignments}


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=60) as c:
        yield c


def day_version(emulator, day: str) -> str | None:
    item = (
        emulator.client("dynamodb")
        .get_item(TableName="DepotDays", Key={"day": {"S": day}}, ConsistentRead=True)
        .get("Item")
    )
    return json.dumps(item, sort_keys=True, default=str) if item else None


# --- authentication ------------------------------------------------------------------------------


def test_open_paths_need_no_token(client):
    assert client.get("/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert client.get("/ready").status_code in (200, 503)


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/assign"),
        ("POST", "/update"),
        ("POST", "/manifests"),
        ("GET", "/manifests/2041-01-01"),
        ("GET", "/packages/p1"),
        ("GET", "/drivers/driver_1/assignments"),
        ("GET", "/nowhere"),
    ],
)
def test_no_token_is_401_with_challenge(client, method, path):
    response = client.request(method, path, json={"driver_ids": ["driver_1"], "max_per_driver": 1})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def _none_token(claims: dict) -> str:
    def b64(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def _claims(**over) -> dict:
    now = int(time.time())
    return {
        "iss": "depot",
        "sub": "dispatcher",
        "role": "dispatcher",
        "iat": now,
        "exp": now + 600,
        **over,
    }


@pytest.mark.parametrize(
    "name,token",
    [
        ("forged: wrong secret", lambda: mint_token("another-secret-" + "x" * 40, "dispatcher")),
        ("alg none", lambda: _none_token(_claims())),
        ("alg none, empty", lambda: _none_token(_claims()) + "x"),
        ("HS512 with the right secret", lambda: jwt.encode(_claims(), SECRET, algorithm="HS512")),
        (
            "no exp",
            lambda: jwt.encode(
                {k: v for k, v in _claims().items() if k != "exp"}, SECRET, algorithm="HS256"
            ),
        ),
        ("unknown role", lambda: jwt.encode(_claims(role="admin"), SECRET, algorithm="HS256")),
        (
            "driver without driver_id",
            lambda: jwt.encode(_claims(role="driver"), SECRET, algorithm="HS256"),
        ),
        (
            "driver with a bad id",
            lambda: jwt.encode(_claims(role="driver", driver_id="../x"), SECRET, algorithm="HS256"),
        ),
        ("wrong issuer", lambda: jwt.encode(_claims(iss="evil"), SECRET, algorithm="HS256")),
        ("garbage", lambda: "not.a.jwt"),
        ("huge", lambda: "a" * 5000),
    ],
)
def test_invalid_tokens_are_401(client, name, token):
    response = client.post(
        "/assign", headers=bearer(token()), json={"driver_ids": ["driver_1"], "max_per_driver": 1}
    )
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert SECRET not in response.text


def test_expired_token_is_401(client):
    token = mint_token(SECRET, "dispatcher", ttl_s=60, now=time.time() - 3600)
    response = client.get("/manifests/2041-01-01", headers=bearer(token))
    assert_error(response, 401, "token_expired")
    assert "Bearer" in response.headers["WWW-Authenticate"]


def test_wrong_scheme_is_401(client, tokens):
    response = client.get(
        "/manifests/2041-01-01", headers={"Authorization": f"Basic {tokens['dispatcher']}"}
    )
    assert_error(response, 401)


# --- roles and objects ---------------------------------------------------------------------------


def test_driver_cannot_assign_or_import(client, tokens, day, emulator):
    before = day_version(emulator, day["day"])
    driver = bearer(tokens["driver_1"])
    assert_error(
        client.post(
            "/assign",
            headers=driver,
            json={"day": day["day"], "driver_ids": ["driver_1"], "max_per_driver": 50},
        ),
        403,
        "forbidden",
    )
    assert_error(
        client.post(
            "/manifests", headers=driver, json={"day": day["day"], "drivers": [], "packages": []}
        ),
        403,
        "forbidden",
    )
    assert_error(client.get(f"/manifests/{day['day']}", headers=driver), 403, "forbidden")
    assert day_version(emulator, day["day"]) == before


def _update(client, token, driver_id, package_id, status="accepted"):
    return client.post(
        "/update",
        headers=bearer(token),
        json={"driver_id": driver_id, "package_id": package_id, "status": status},
    )


def test_driver_updating_another_drivers_package_is_404_like_a_missing_one(client, tokens, day):
    theirs = day["assignments"]["driver_2"][0]
    missing = str(uuid.uuid4())
    foreign = _update(client, tokens["driver_1"], "driver_2", theirs)
    absent = _update(client, tokens["driver_1"], "driver_2", missing)
    assert_error(foreign, 404, "not_found")
    assert_error(absent, 404, "not_found")
    # Identical but for the id the caller sent: nothing tells "exists" from "does not".
    assert foreign.text.replace(theirs, missing) == absent.text
    assert dict(foreign.headers).keys() == dict(absent.headers).keys()
    # Claiming its own id does not help either: no such (driver_1, package) item.
    same_as_missing = _update(client, tokens["driver_1"], "driver_1", theirs)
    assert (
        same_as_missing.text.replace(theirs, missing)
        == _update(client, tokens["driver_1"], "driver_1", missing).text
    )
    # And the package did not move.
    read = client.get(
        f"/packages/{theirs}", headers=bearer(tokens["dispatcher"]), params={"day": day["day"]}
    )
    assert read.json()["status"] == "assigned" and read.json()["driver_id"] == "driver_2"


def test_driver_updates_its_own_package(client, tokens, day):
    mine = day["assignments"]["driver_1"][0]
    response = _update(client, tokens["driver_1"], "driver_1", mine, "accepted")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert _update(client, tokens["driver_1"], "driver_1", mine, "delivered").status_code == 409


def test_dispatcher_updates_any_package(client, tokens, day):
    package = day["assignments"]["driver_2"][1]
    response = _update(client, tokens["dispatcher"], "driver_2", package, "in_progress")
    assert response.status_code == 200 and response.json()["status"] == "in_progress"


def test_driver_reads_only_its_own(client, tokens, day):
    d = day["day"]
    driver = bearer(tokens["driver_1"])
    own = client.get("/drivers/driver_1/assignments", headers=driver, params={"day": d})
    assert own.status_code == 200 and len(own.json()["assignments"]) == len(
        day["assignments"]["driver_1"]
    )
    other = client.get("/drivers/driver_2/assignments", headers=driver, params={"day": d})
    nobody = client.get("/drivers/driver_999/assignments", headers=driver, params={"day": d})
    assert_error(other, 404)
    assert other.text.replace("driver_2", "driver_999") == nobody.text

    mine, theirs, missing = (
        day["assignments"]["driver_1"][1],
        day["assignments"]["driver_2"][2],
        str(uuid.uuid4()),
    )
    assert (
        client.get(f"/packages/{mine}", headers=driver, params={"day": d}).json()["driver_id"]
        == "driver_1"
    )
    foreign = client.get(f"/packages/{theirs}", headers=driver, params={"day": d})
    absent = client.get(f"/packages/{missing}", headers=driver, params={"day": d})
    assert_error(foreign, 404)
    assert foreign.text.replace(theirs, missing) == absent.text
    unassigned = client.get(f"/packages/{missing}", headers=driver)
    assert_error(unassigned, 404)


# --- input limits (422/413, nothing reaches DynamoDB) --------------------------------------------


def test_100001_driver_ids_is_413(client, tokens, day, emulator):
    before = day_version(emulator, day["day"])
    body = {
        "day": day["day"],
        "driver_ids": [f"driver_{i}" for i in range(100_001)],
        "max_per_driver": 1,
    }
    assert len(json.dumps(body)) > MiB
    assert_error(
        client.post("/assign", headers=bearer(tokens["dispatcher"]), json=body),
        413,
        "payload_too_large",
    )
    assert day_version(emulator, day["day"]) == before


def test_driver_ids_over_10000_or_repeated_are_422(client, tokens, day, emulator):
    before = day_version(emulator, day["day"])
    dispatcher = bearer(tokens["dispatcher"])
    many = {"day": day["day"], "driver_ids": [f"d{i}" for i in range(10_001)], "max_per_driver": 1}
    assert len(json.dumps(many)) < MiB
    assert_error(client.post("/assign", headers=dispatcher, json=many), 422)
    repeated = {
        "day": day["day"],
        "driver_ids": ["driver_1", "driver_2", "driver_1"],
        "max_per_driver": 1,
    }
    assert (
        "unique"
        in assert_error(client.post("/assign", headers=dispatcher, json=repeated), 422)["error"][
            "message"
        ]
    )
    assert day_version(emulator, day["day"]) == before


@pytest.mark.parametrize("cap", [-1, 1001, "3", 2.5, None, True])
def test_bad_caps_are_422(client, tokens, day, cap):
    body = {"day": day["day"], "driver_ids": ["driver_1"], "max_per_driver": cap}
    assert_error(
        client.post("/assign", headers=bearer(tokens["dispatcher"]), json=body),
        422,
        "invalid_request",
    )


@pytest.mark.parametrize(
    "driver_id", ["", "a" * 129, "driver/1", "driver 1", "drïver", "x\u0000", "<script>"]
)
def test_bad_ids_are_422(client, tokens, day, driver_id):
    dispatcher = bearer(tokens["dispatcher"])
    assert_error(
        client.post(
            "/assign",
            headers=dispatcher,
            json={"day": day["day"], "driver_ids": [driver_id], "max_per_driver": 1},
        ),
        422,
    )
    assert_error(
        client.post(
            "/update",
            headers=dispatcher,
            json={"driver_id": driver_id, "package_id": "p", "status": "accepted"},
        ),
        422,
    )


def test_unknown_fields_are_422(client, tokens, day):
    dispatcher = bearer(tokens["dispatcher"])
    assign = {"day": day["day"], "driver_ids": ["driver_1"], "max_per_driver": 1, "admin": True}
    assert_error(client.post("/assign", headers=dispatcher, json=assign), 422)
    update = {
        "driver_id": "driver_1",
        "package_id": day["assignments"]["driver_1"][2],
        "status": "accepted",
        "force": True,
    }
    assert_error(client.post("/update", headers=dispatcher, json=update), 422)
    manifest = {"day": day["day"], "drivers": [], "packages": [], "purge": True}
    assert_error(client.post("/manifests", headers=dispatcher, json=manifest), 422)
    driver_extra = {
        "day": day["day"],
        "drivers": [{"driver_id": "driver_1", "rules": [], "admin": True}],
    }
    assert_error(client.post("/manifests", headers=dispatcher, json=driver_extra), 422)


def test_unknown_status_is_422_and_deep_json_is_not_500(client, tokens, day):
    dispatcher = bearer(tokens["dispatcher"])
    bad = {
        "driver_id": "driver_1",
        "package_id": day["assignments"]["driver_1"][2],
        "status": "stolen",
    }
    assert_error(client.post("/update", headers=dispatcher, json=bad), 422)
    deep = b"[" * 200_000 + b"]" * 200_000
    for path in ("/manifests", "/assign"):
        response = client.post(
            path, headers={**dispatcher, "Content-Type": "application/json"}, content=deep
        )
        assert 400 <= response.status_code < 500, (path, response.status_code, response.text[:200])


# --- body caps, counted as bytes arrive ----------------------------------------------------------


class RssSampler:
    def __init__(self, api):
        self.api, self.peak, self.stop = api, 0, threading.Event()
        self.baseline = api.rss_bytes()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.api.rss_bytes())
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.api.rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


def stream_chunked(
    api, path: str, token: str, total: int, chunk: int = 256 * 1024
) -> tuple[int, bytes]:
    """Send ``total`` bytes as chunked transfer encoding, reading as we go; stop at the first
    response. Returns (bytes of body sent, the response head)."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    sock.sendall(head)
    sock.setblocking(False)
    piece = f"{chunk:x}\r\n".encode() + b" " * chunk + b"\r\n"
    sent, pending, finished, response = 0, memoryview(b""), False, b""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and b"\r\n\r\n" not in response:
            if not len(pending) and not finished:
                if sent < total:
                    pending, sent = memoryview(piece), sent + chunk
                else:
                    pending, finished = memoryview(b"0\r\n\r\n"), True
            readable, writable, _ = select.select([sock], [sock] if len(pending) else [], [], 5)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                response += data
            elif writable:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError):
                    pending, finished = memoryview(b""), True
    finally:
        sock.close()
    return sent, response


@pytest.mark.slow
def test_60_mib_chunked_manifest_is_413_before_it_is_read(api, tokens):
    with RssSampler(api) as rss:
        sent, response = stream_chunked(api, "/manifests", tokens["dispatcher"], 60 * MiB)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 60 * MiB, "the server answered only after the whole body"
    # The manifest cap is 48 MiB: the server holds at most that much of it, never 60 MiB.
    print(f"RSS growth {rss.growth / MiB:.1f} MiB after {sent / MiB:.0f} MiB sent")
    assert rss.growth < 56 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"


@pytest.mark.slow
def test_60_mib_chunked_elsewhere_is_413_with_little_memory(api, tokens):
    with RssSampler(api) as rss:
        sent, response = stream_chunked(api, "/update", tokens["dispatcher"], 60 * MiB)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert sent < 60 * MiB
    print(f"RSS growth {rss.growth / MiB:.1f} MiB after {sent / MiB:.0f} MiB sent")
    assert rss.growth < 16 * MiB, f"RSS grew by {rss.growth / MiB:.1f} MiB"
    assert b'"payload_too_large"' in response or b"413" in response


def test_declared_60_mib_is_413_at_once(api, tokens):
    """A declared Content-Length over the cap is answered before a single body byte is sent."""
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /manifests HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {tokens['dispatcher']}"
                f"\r\nContent-Type: application/json\r\nContent-Length: {60 * MiB}\r\n\r\n"
            ).encode()
        )
        response = b""
        while b"}}" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "payload_too_large"


def test_the_api_is_alive_after_the_abuse(client):
    assert client.get("/health").status_code == 200


# --- rate limit, rotation, CLI, startup ----------------------------------------------------------


@pytest.fixture(scope="module")
def limited_api(emulator):
    with start_api(
        emulator.endpoint,
        DEPOT_AUTH_SECRET=SECRET,
        DEPOT_AUTH_PREVIOUS_SECRETS=OLD_SECRET,
        DEPOT_RATE_LIMIT_PER_MINUTE="5",
    ) as proc:
        yield proc


def test_rate_limit_429_with_retry_after(limited_api):
    token, other = mint_token(SECRET, "dispatcher"), mint_token(SECRET, "dispatcher")
    with httpx.Client(base_url=limited_api.url, timeout=30) as c:
        statuses = [
            c.get("/manifests/2041-01-01", headers=bearer(token)).status_code for _ in range(5)
        ]
        assert 429 not in statuses
        response = c.get("/manifests/2041-01-01", headers=bearer(token))
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 60
        assert c.get("/manifests/2041-01-01", headers=bearer(other)).status_code != 429  # per token
        assert c.get("/health").status_code == 200  # operations are never limited


def test_previous_secret_still_verifies_during_rotation(limited_api):
    with httpx.Client(base_url=limited_api.url, timeout=30) as c:
        old = c.get("/manifests/2041-01-01", headers=bearer(mint_token(OLD_SECRET, "dispatcher")))
        assert old.status_code in (200, 404), old.text
        gone = c.get(
            "/manifests/2041-01-01", headers=bearer(mint_token("retired-" + "y" * 40, "dispatcher"))
        )
        assert_error(gone, 401)


def test_token_cli_prints_a_usable_token(api, day):
    env = {**os.environ, "DEPOT_AUTH_SECRET": SECRET}
    out = subprocess.run(
        [DEPOT, "token", "--role", "driver", "--driver-id", "driver_1", "--ttl", "8h"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["role"] == "driver" and claims["driver_id"] == "driver_1"
    assert 8 * 3600 - 5 <= claims["exp"] - claims["iat"] <= 8 * 3600
    response = httpx.get(
        f"{api.url}/drivers/driver_1/assignments", params={"day": day["day"]}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text

    out = subprocess.run(
        [DEPOT, "token", "--role", "dispatcher"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    response = httpx.get(
        f"{api.url}/manifests/{day['day']}", headers=bearer(out.stdout.strip().splitlines()[-1])
    )
    assert response.status_code == 200

    refused = subprocess.run(
        [DEPOT, "token", "--role", "driver"], env=env, capture_output=True, text=True, check=False
    )
    assert refused.returncode != 0 and not refused.stdout.strip()
    unset = {k: v for k, v in env.items() if k != "DEPOT_AUTH_SECRET"}
    assert (
        subprocess.run(
            [DEPOT, "token", "--role", "dispatcher"], env=unset, capture_output=True, check=False
        ).returncode
        != 0
    )


@pytest.mark.parametrize("env", ["prod", "test"])
def test_refuses_to_start_without_a_secret(emulator, env):
    from support.apiproc import api_env
    from support.processes import free_port

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "depot.ops.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        env=api_env(emulator.endpoint, DEPOT_ENV=env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "DEPOT_AUTH_SECRET" in proc.stdout + proc.stderr


def test_open_dev_mode_warns_loudly(emulator):
    with start_api(emulator.endpoint, DEPOT_ENV="dev") as proc:
        response = httpx.post(
            f"{proc.url}/assign",
            json={"driver_ids": ["driver_1"], "max_per_driver": 1, "day": "2041-02-30"},
        )
        assert response.status_code == 422  # reached validation without a token
        assert "DEPOT_AUTH_SECRET is not set" in proc.output() and "OPEN" in proc.output()


def test_no_secret_or_token_in_the_logs(api, tokens):
    output = api.output()
    assert SECRET not in output
    for token in tokens.values():
        assert token not in output and token.split(".")[2] not in output
