"""The HTTP edge's pieces on their own: rate limits with an injected clock, the body cap, and
token verification, each through Starlette's TestClient on a minimal app (no emulator, no API
process; the whole app is tested through its process elsewhere)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from depot.http import auth
from depot.http.limits import BodyLimitMiddleware, RateLimitMiddleware, TokenBuckets

SECRET = "unit-test-secret-of-at-least-32-characters"


class FakeClock:
    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_its_rate_through_then_says_how_long_to_wait():
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(20.0)  # one token per 20 s
    assert buckets.take("b") == 0.0  # callers do not share a bucket
    clock.now += 20
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0


def test_buckets_stay_bounded_and_drop_full_idle_ones_first():
    clock = FakeClock()
    buckets = TokenBuckets(per_minute=60, max_keys=10, clock=clock)
    buckets.take("busy")
    for i in range(9):
        buckets.take(f"idle{i}")
    clock.now += 60  # every bucket has refilled
    buckets.take("busy")
    for i in range(5):
        buckets.take(f"new{i}")
    assert len(buckets._buckets) <= 10


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"bytes": len(body)})


def _client(*middleware) -> TestClient:
    app = Starlette(routes=[Route("/echo", echo, methods=["GET", "POST"]), Route("/health", echo)])
    for cls, kwargs in middleware:
        app.add_middleware(cls, **kwargs)
    return TestClient(app)


def test_the_rate_limit_answers_429_with_retry_after_and_spares_the_open_paths():
    client = _client((RateLimitMiddleware, {"per_minute": 2}))
    assert [client.get("/echo").status_code for _ in range(2)] == [200, 200]
    refused = client.get("/echo")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "30"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert client.get("/health").status_code == 200  # probes are never limited


def test_a_body_over_the_cap_is_413_naming_the_limit_and_never_reaches_the_route():
    client = _client((BodyLimitMiddleware, {"default_limit": 100}))
    assert client.post("/echo", content=b"x" * 100).json() == {"bytes": 100}
    refused = client.post("/echo", content=b"x" * 101)
    assert refused.status_code == 413
    assert "100 bytes" in refused.json()["error"]["message"]


def test_a_body_without_content_length_is_counted_as_it_arrives():
    client = _client((BodyLimitMiddleware, {"default_limit": 100}))

    def chunks():
        for _ in range(5):
            yield b"x" * 30

    assert client.post("/echo", content=chunks()).status_code == 413


def test_tokens_verify_until_they_expire_and_only_with_a_known_secret():
    token = auth.mint_token(SECRET, "driver", "driver_7", ttl_s=60)
    principal = auth.verify_token(token, [SECRET])
    assert (principal.role, principal.driver_id) == ("driver", "driver_7")
    assert auth.verify_token(token, ["the-new-secret-of-at-least-32-chars!!", SECRET]).driver_id
    with pytest.raises(auth.AuthError) as wrong:
        auth.verify_token(token, ["another-secret-of-at-least-32-characters"])
    assert wrong.value.code == "invalid_token"
    old = auth.mint_token(SECRET, "dispatcher", ttl_s=60, now=time.time() - 3_600)
    with pytest.raises(auth.AuthError) as expired:
        auth.verify_token(old, [SECRET])
    assert expired.value.code == "token_expired"


def test_a_token_signed_for_longer_than_the_policy_allows_is_refused():
    long_lived = auth.mint_token(SECRET, "dispatcher", ttl_s=auth.MAX_TTL_S + 3_600)
    with pytest.raises(auth.AuthError) as refused:
        auth.verify_token(long_lived, [SECRET])
    assert refused.value.code == "invalid_token"
    assert "longer than" in refused.value.message
