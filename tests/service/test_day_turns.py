"""One change of a day at a time per process (``DayTurns``): a waiter past its deadline is told
to come back (503), a use case may take its own turn again, other days are not held up."""

from __future__ import annotations

import threading
import time

import pytest

from depot.errors import Busy
from depot.service.rollforward import DayTurns


def _holding(turns: DayTurns, day: str):
    """A thread that takes ``day``'s turn and keeps it until told to let go."""
    entered, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn(day, time.monotonic() + 60):
            entered.set()
            leave.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    assert entered.wait(10)
    return leave, thread


def test_a_change_past_its_deadline_is_busy_while_another_holds_the_day():
    turns = DayTurns()
    leave, holder = _holding(turns, "2030-01-01")
    try:
        with pytest.raises(Busy, match="queued"), turns.turn("2030-01-01", time.monotonic()):
            pass
        with turns.turn("2030-01-02", time.monotonic()):  # another day goes on
            pass
    finally:
        leave.set()
        holder.join()
    with turns.turn("2030-01-01", time.monotonic()):  # free again once let go
        pass


def test_the_next_waiter_goes_on_when_the_holder_lets_go():
    turns = DayTurns()
    leave, holder = _holding(turns, "2030-01-01")
    went_on = threading.Event()

    def wait_turn() -> None:
        with turns.turn("2030-01-01", time.monotonic() + 60):
            went_on.set()

    waiter = threading.Thread(target=wait_turn)
    waiter.start()
    leave.set()
    holder.join()
    waiter.join()
    assert went_on.is_set()


def test_a_turn_is_taken_again_inside_itself_and_forgotten_when_unused():
    turns = DayTurns()
    day = "2030-01-01"
    with turns.turn(day, time.monotonic()), turns.turn(day, time.monotonic()):  # an import
        pass  # releasing held packages commits an unassign inside its own turn
    assert turns._turns == {}
