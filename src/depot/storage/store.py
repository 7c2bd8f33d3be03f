"""The store: every read and write Depot makes to DynamoDB and S3, and nothing else, one
class per resource (see ``docs/design.md``):

* ``days.DayTable``: the day item (``DepotDays``) with its version, lease map and log;
* ``objects.StateBucket``: the S3 state bucket (manifests, changes, snapshots);
* ``assignments.AssignmentTable``: the assignment items (``DeliveryAssignments``);
* ``events.EventTable``: the day's numbered change feed and its counter (``DepotEvents``).

The AWS plumbing they share (clients, the outage guard, the attribute codec) is in ``aws``.
Outages surface as ``StorageUnavailable`` (the API answers 503); nothing else leaks botocore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from depot.config import Settings
from depot.storage.assignments import AssignmentTable
from depot.storage.aws import (
    ConditionFailed,
    StorageUnavailable,
    VersionConflict,
    make_clients,
    make_log_client,
    outage_guard,
)
from depot.storage.days import DayTable
from depot.storage.events import EventTable
from depot.storage.objects import StateBucket

__all__ = [
    "ConditionFailed",
    "StorageUnavailable",
    "Store",
    "VersionConflict",
    "make_clients",
    "make_log_client",
    "outage_guard",
]


@dataclass
class Store:
    """The four resources over one DynamoDB and one S3 client, which they share (a botocore hook
    registered on ``store.dynamodb`` sees every table's calls)."""

    settings: Settings
    dynamodb: Any
    s3: Any
    days: DayTable = field(init=False)
    objects: StateBucket = field(init=False)
    assignments: AssignmentTable = field(init=False)
    events: EventTable = field(init=False)

    def __post_init__(self) -> None:
        self.days = DayTable(self.settings, self.dynamodb)
        self.objects = StateBucket(self.settings, self.s3)
        self.assignments = AssignmentTable(self.settings, self.dynamodb)
        self.events = EventTable(self.settings, self.dynamodb)

    # --- health (the readiness probes) -------------------------------------------------------

    def check_dynamodb(self) -> None:
        with outage_guard("DynamoDB"):
            self.dynamodb.describe_table(TableName=self.settings.assignments_table)

    def check_s3(self) -> None:
        with outage_guard("S3"):
            self.s3.head_bucket(Bucket=self.settings.state_bucket)
