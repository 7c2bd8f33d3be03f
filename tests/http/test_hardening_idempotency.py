"""Issue 10, idempotency keys that do not stick: an unexpected exception releases the key, a
refreshed token of the same principal replays, another principal gets a scope of its own; and
token lifetimes over the policy's maximum are refused on verify."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from fastapi.testclient import TestClient

from depot.config import Settings
from depot.http.app import create_app
from depot.http.auth import ALGORITHM, ISSUER, MAX_TTL_S, AuthError, mint_token, verify_token
from depot.ops.generator import generate_day
from depot.storage.store import make_clients
from depot.storage.tables import bootstrap

SECRET = "hardening-" + uuid.uuid4().hex + uuid.uuid4().hex


@pytest.fixture(scope="module")
def settings(emulator) -> Settings:
    settings = Settings(aws_endpoint_url=emulator.endpoint, auth_secret=SECRET)
    bootstrap(*make_clients(settings), settings)
    return settings


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_unexpected_exception_releases_the_key_so_the_retry_runs(settings):
    app = create_app(settings)
    day = "2033-01-01"
    dispatcher = bearer(mint_token(SECRET, "dispatcher"))
    with TestClient(app, raise_server_exceptions=False) as client:
        payload = {"day": day, **generate_day(seed=1, drivers=3, packages_per_driver=2)}
        assert client.post("/manifests", json=payload, headers=dispatcher).status_code == 201
        service = app.state.service
        real_assign, calls = service.assign, {"n": 0}

        def broken_once(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("a bug")
            return real_assign(*args, **kwargs)

        service.assign = broken_once
        body = {"day": day, "driver_ids": ["driver_1"], "max_per_driver": 1}
        headers = {**dispatcher, "Idempotency-Key": f"bug-{uuid.uuid4().hex}"}
        crashed = client.post("/assign", json=body, headers=headers)
        retry = client.post("/assign", json=body, headers=headers)
    assert crashed.status_code == 500
    assert retry.status_code == 200, retry.text  # not 409 idempotency_in_progress for 5 minutes
    assert "idempotent-replayed" not in retry.headers


def test_a_refreshed_token_replays_and_another_principal_has_its_own_scope(settings):
    app = create_app(settings)
    day = "2033-01-02"
    key = f"refresh-{uuid.uuid4().hex}"
    payload = {"day": day, **generate_day(seed=2, drivers=3, packages_per_driver=2)}
    old = mint_token(SECRET, "dispatcher", now=time.time() - 60)
    new = mint_token(SECRET, "dispatcher")
    assert old != new
    with TestClient(app) as client:
        first = client.post(
            "/manifests", json=payload, headers={**bearer(old), "Idempotency-Key": key}
        )
        again = client.post(
            "/manifests", json=payload, headers={**bearer(new), "Idempotency-Key": key}
        )
    assert first.status_code == 201
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.content == first.content


def test_keys_are_scoped_by_principal_not_by_token(settings):
    from depot.http.auth import OPEN_PRINCIPAL, Principal
    from depot.http.idempotency import _scoped_key

    def scope(principal, token: str) -> dict:
        return {
            "path": "/assign",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "state": {"principal": principal},
        }

    dispatcher = Principal(role="dispatcher", subject="dispatcher", token_id="a")
    refreshed = Principal(role="dispatcher", subject="dispatcher", token_id="b")
    driver = Principal(role="driver", driver_id="driver_1", subject="driver_1", token_id="c")
    assert _scoped_key(scope(dispatcher, "t1"), "k") == _scoped_key(scope(refreshed, "t2"), "k")
    assert _scoped_key(scope(driver, "t1"), "k") != _scoped_key(scope(dispatcher, "t1"), "k")
    assert _scoped_key(scope(OPEN_PRINCIPAL, "whatever"), "k") == "/assign|open|k"
    assert "t1" not in _scoped_key(scope(dispatcher, "t1"), "k")


def hand_made(**claims) -> str:
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "dispatcher", "role": "dispatcher", "iat": now, "exp": now + 3600}
    return jwt.encode({**base, **claims}, SECRET, algorithm=ALGORITHM)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) + 100 * 365 * 86400},
        {"iat": int(time.time()) - 10, "exp": int(time.time()) + MAX_TTL_S + 60},
        {
            "iat": int(time.time()) - 40 * 86400,
            "exp": int(time.time()) + 3600,
        },  # signed for 40 days
    ],
)
def test_a_token_living_longer_than_the_policy_maximum_is_refused(claims):
    with pytest.raises(AuthError) as info:
        verify_token(hand_made(**claims), [SECRET])
    assert info.value.status == 401 and "maximum" in info.value.message


def test_a_token_of_the_maximum_lifetime_verifies():
    now = int(time.time())
    assert verify_token(hand_made(iat=now, exp=now + MAX_TTL_S), [SECRET]).role == "dispatcher"
    assert (
        verify_token(mint_token(SECRET, "driver", "driver_3", ttl_s=MAX_TTL_S), [SECRET]).driver_id
        == "driver_3"
    )
