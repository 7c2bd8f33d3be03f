"""Shared fixtures: real emulator processes over HTTP (helpers in ``support/``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.processes import Emulator, start_emulator

pytest_plugins = ("support.api",)  # the api, client and dynamodb fixtures of the HTTP tests


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator process for the session; tests isolate themselves by day and driver ids."""
    with start_emulator() as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that need an empty account."""
    with start_emulator() as emu:
        yield emu
