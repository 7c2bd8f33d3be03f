"""All of Depot's configuration, in one place, read from the environment.

AWS endpoints come from the standard ``AWS_ENDPOINT_URL`` so the same code runs against the
embedded emulator, LocalStack and AWS. Names of tables and the bucket default to the ``dev``
workspace of ``infra/`` (see ``depot.storage.tables``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["dev", "test", "prod"]
EMBEDDED_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""What a local emulator is given when no credentials are configured (emulators ignore them, but
botocore signs every request)."""


def use_local_credentials() -> None:
    """Set ``LOCAL_CREDENTIALS`` where the environment has none (emulator processes, the CLI)."""
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEPOT_", extra="ignore")

    env: Environment = "dev"
    provision: Literal["auto", "terraform", "bootstrap"] = "auto"
    """How ``depot run`` and ``depot provision`` create storage (``DEPOT_PROVISION``)."""
    repo_root: str | None = None
    """Where ``infra/`` is looked for (``DEPOT_REPO_ROOT``); default: the checkout."""
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL", "DEPOT_AWS_ENDPOINT_URL")
    )
    """Unset in ``dev``: the embedded emulator (``EMBEDDED_ENDPOINT``). Set but empty: AWS
    itself."""
    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION", "DEPOT_AWS_REGION"),
    )

    assignments_table: str = "DeliveryAssignments"
    days_table: str = "DepotDays"
    idempotency_table: str = "DepotIdempotency"
    events_table: str = "DepotEvents"
    log_bucket: str = "depot-logs-dev"
    state_bucket: str = "depot-state-dev"

    timezone: str = "UTC"
    """The centre's time zone (an IANA name): ``day`` defaults to today there. Checked here, so
    that a bad name stops the start instead of failing the first request."""

    # DynamoDB and S3 client behaviour: botocore's standard retry mode, bounded so that a call
    # gives up within the API's 10 s deadline (``depot.storage.retries``, docs/reliability.md).
    aws_max_attempts: int = 8
    """Attempts in total (first one included) for answers that say "try again" (throttling, 5xx)."""
    aws_transport_max_attempts: int = 3
    """Attempts in total when no answer came (timeout, reset, refused): each may cost a timeout."""
    aws_max_backoff_s: float = 1.0
    """Cap of botocore's jittered exponential backoff between attempts (botocore's own: 20 s)."""
    aws_connect_timeout_s: float = 1.0
    aws_read_timeout_s: float = 2.0
    batch_write_workers: int = 4

    # Assignment runs: a committed run's writer holds a lease, renewed while it writes; when the
    # lease runs out (the writer died), the next /assign rolls the run forward.
    lease_s: float = 5.0
    lease_renew_s: float = 1.0
    change_wait_s: float = 30.0
    """How long a change of a day (a run, a plan change, an import) may wait for its turn, for an
    earlier change still being written and for its commit attempts before it answers 503."""
    claim_ttl_s: float = 30.0  # a plan change's claim on an item older than this is stale
    day_cache_days: int = 4  # days a process keeps in memory (least recently used out)
    attempt_window_days: int = 7  # days before and after a day where a package's attempts are found

    # Operational log shipping to S3.
    log_flush_interval_s: float = 5.0
    log_flush_max_events: int = 500
    log_buffer_max_events: int = 100_000

    # Request limits.
    max_manifest_bytes: int = 48 * 1024 * 1024
    """A 1,000-driver x 100,000-package day with destinations is ~38.5 MB of JSON."""
    max_body_bytes: int = 1024 * 1024

    # Authentication: unset means the open embedded default (dev only).
    auth_secret: SecretStr | None = None
    auth_previous_secrets: SecretStr | None = None  # comma-separated, verify-only (rotation)
    rate_limit_per_minute: int = 0
    """Requests per token per minute; 0 disables the limit."""
    allow_open_mode: bool = False
    """Without a secret the API is open (every caller a dispatcher). That is allowed by itself
    only on a loopback bind against a local emulator; anything else needs this explicit consent
    (DEPOT_ALLOW_OPEN_MODE=true, docs/security.md), or the service refuses to start."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"DEPOT_TIMEZONE={value!r} is not a known IANA time zone (e.g. Europe/London)"
            )
        return value

    @model_validator(mode="after")
    def _embedded_endpoint_by_default_in_dev(self) -> Settings:
        """In ``dev`` with no AWS_ENDPOINT_URL at all, talk to the embedded emulator (``make run``);
        an explicitly empty AWS_ENDPOINT_URL, or env test/prod, means AWS itself."""
        if self.env == "dev" and "aws_endpoint_url" not in self.model_fields_set:
            self.aws_endpoint_url = EMBEDDED_ENDPOINT
        if self.aws_endpoint_url == "":
            self.aws_endpoint_url = None
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
