"""The errors the use cases raise; the HTTP edge maps each to its status code and error body."""

from __future__ import annotations

from typing import Any


class DepotError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DepotError):
    status_code = 404
    code = "not_found"


class UnprocessableInput(DepotError):
    status_code = 422
    code = "invalid_input"


class StateConflict(DepotError):
    status_code = 409
    code = "conflict"


class Busy(DepotError):
    """The day kept changing under us, or a writer holds it: retry shortly (503)."""

    status_code = 503
    code = "busy"


class WriteRefused(DepotError):
    """The store refused a write for a reason no retry can cure (a DynamoDB limit): 422."""

    status_code = 422
    code = "unstorable"
