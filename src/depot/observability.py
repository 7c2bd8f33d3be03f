"""Structured logs (structlog, JSON, a request id on every line) and Prometheus metrics."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REQUEST_ID_HEADER = "x-request-id"
# The ``method`` label takes these values and ``other``: a client choosing methods must not mint
# a new time series with each (Prometheus labels are to be bounded).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that went away before the answer
ACCESS_LOG = structlog.get_logger("depot.access")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUEST_LATENCY = Histogram(
    "depot_request_duration_seconds",
    "HTTP request latency",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
ASSIGN_RUN_PACKAGES = Histogram(
    "depot_assignment_run_packages",
    "packages newly assigned by one /assign run",
    registry=REGISTRY,
    buckets=(0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000),
)
ASSIGN_RUN_SECONDS = Histogram(
    "depot_assignment_run_seconds",
    "duration of one /assign run, by phase",
    ["phase"],
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
CHANGE_CONFLICTS = Counter(
    "depot_change_conflicts_total",
    "changes of a day computed again because another change of the day committed first",
    ["kind"],
    registry=REGISTRY,
)
CHANGE_WAIT_SECONDS = Histogram(
    "depot_change_wait_seconds",
    "time a change of a day waited for this process's turn on the day",
    registry=REGISTRY,
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AWS_CALLS = Counter(
    "depot_aws_calls_total", "AWS API calls", ["service", "operation", "outcome"], registry=REGISTRY
)
AWS_RETRIES = Counter(
    "depot_aws_retries_total", "retries botocore made", ["service", "operation"], registry=REGISTRY
)
LOG_BUFFER_DEPTH = Gauge(
    "depot_oplog_buffer_events", "operational log events waiting for S3", registry=REGISTRY
)
LOG_DROPPED = Gauge(
    "depot_oplog_dropped_events", "operational log events dropped (buffer full)", registry=REGISTRY
)


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr, with whatever is bound in contextvars (the request id)."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        _redact,
    ]
    structlog.configure(
        processors=[*processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


SECRET_FIELDS = ("authorization", "token", "secret", "password")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in SECRET_FIELDS):
            event[key] = "[redacted]"
    return event


def record_aws_calls(client: Any) -> None:
    """Count calls, errors and botocore's retries per operation, from its own events."""
    service = client.meta.service_model.service_name

    def after_call(http_response=None, parsed=None, model=None, **_: Any) -> None:
        op = model.name if model else "unknown"
        status = getattr(http_response, "status_code", 0) or 0
        AWS_CALLS.labels(service, op, "ok" if status < 400 else f"http_{status}").inc()
        retries = (parsed or {}).get("ResponseMetadata", {}).get("RetryAttempts", 0)
        if retries:
            AWS_RETRIES.labels(service, op).inc(retries)

    def after_error(exception=None, model=None, **_: Any) -> None:
        if exception is not None:
            AWS_CALLS.labels(
                service, model.name if model else "unknown", type(exception).__name__
            ).inc()

    client.meta.events.register("after-call", after_call)
    client.meta.events.register("after-call-error", after_error)


def oplog_metrics(depth: int, dropped: int) -> None:
    LOG_BUFFER_DEPTH.set(depth)
    LOG_DROPPED.set(dropped)
