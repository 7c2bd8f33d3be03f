"""DynamoDB's limits, checked before anything is committed (a placeholder until the full check)."""

from __future__ import annotations

from typing import Any


class UnstorableItem(ValueError):
    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


def check_items(items: list[dict[str, Any]]) -> None:
    return None
