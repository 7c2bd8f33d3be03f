"""botocore's standard retry mode, bounded so that an API call answers within its deadline.

Standard mode as botocore configures it, with two bounds (``docs/reliability.md``):

* Answers that say "try again" (throttling, 5xx) are cheap to retry: up to
  ``aws_max_attempts`` (8) attempts in total, with botocore's jittered exponential backoff capped
  at ``aws_max_backoff_s`` (1 s; botocore's own cap is 20 s), so at most ~7 s of backoff. With 30%
  of requests throttled one request fails with probability 0.3**8 (0.007%), and an API call that
  makes ~5 requests with ~0.03% (with 6 attempts it was ~0.4%: too close to the 1% budget).
* No answer at all (a read or connect timeout, a reset or refused connection) costs up to a whole
  timeout per attempt, so those are retried only up to ``aws_transport_max_attempts`` attempts.
  With DynamoDB unreachable a call gives up after at most 3 x 2 s plus ~0.1 s of backoff, and the
  API answers 503 well within its 10 s deadline.

The retry quota (botocore's circuit breaker against retry storms) is kept.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError
from botocore.retries import quota, standard
from botocore.retries.base import BaseRetryableChecker

from depot.config import Settings


class BoundedTransportRetries(BaseRetryableChecker):
    """botocore's standard conditions, and at most ``transport_attempts`` when no answer came."""

    def __init__(self, max_attempts: int, transport_attempts: int):
        self._standard = standard.StandardRetryConditions(max_attempts=max_attempts)
        self._transport_attempts = transport_attempts

    def is_retryable(self, context: Any) -> bool:
        if not self._standard.is_retryable(context):
            return False
        if isinstance(context.caught_exception, (BotoConnectionError, HTTPClientError)):
            return context.attempt_number < self._transport_attempts
        return True


def install(client: Any, settings: Settings) -> Any:
    """Replace the client's standard retry handler by the bounded one (same event, same id)."""
    service = client.meta.service_model.service_id.hyphenize()
    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    retry_quota = standard.RetryQuotaChecker(quota.RetryQuota(), detector)
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=BoundedTransportRetries(
                settings.aws_max_attempts, settings.aws_transport_max_attempts
            ),
            retry_backoff=standard.ExponentialBackoff(
                max_backoff=settings.aws_max_backoff_s,
                service_name=service,
                throttling_detector=detector,
            ),
        ),
        retry_event_adapter=adapter,
        retry_quota=retry_quota,
        service_name=service,
    )
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    client.meta.events.register(f"after-call.{service}", retry_quota.release_retry_quota)
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
    return handler
