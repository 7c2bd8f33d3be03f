"""Operations: Prometheus metrics, liveness (``/health``) and readiness (``/ready``)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from depot.http.deps import ServiceDep
from depot.http.schemas import Health, Readiness
from depot.observability import REGISTRY

log = logging.getLogger("depot.http.app")  # its name from before the routes moved

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> PlainTextResponse:
    """Prometheus metrics of this process."""
    return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/health", response_model=Health)
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
def ready(service: ServiceDep):
    """DynamoDB and S3 answer, each reported on its own (checked at once: each may take the
    whole retry budget when unreachable, and /ready must answer within the 10 s deadline \
too)."""

    def probe(name: str, check) -> str:
        try:
            check()
            return "ok"
        except Exception:
            # The detail (endpoints, bucket names, AWS messages) is for the operator's log,
            # not for whoever may call /ready without a token.
            log.warning("/ready: %s is unavailable", name, exc_info=True)
            return "unavailable"

    probes = service.readiness_checks()
    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(probe, name, check) for name, check in probes.items()}
        checks = {name: future.result() for name, future in futures.items()}
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        status_code=200 if ok else 503,
        content={"status": "ready" if ok else "not_ready", "checks": checks},
    )
