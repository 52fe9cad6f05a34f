"""Wait for a condition with a deadline, instead of sleeping and hoping it has happened."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy, and return that; AssertionError naming `what` (and the
    last value seen) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)  # the pause between two checks of the condition, not a bet on timing


def wait_for(check: Callable[[], T], what: str, timeout: float = 60.0, poll: float = 0.002) -> T:
    """wait_until with the AirLLM tests' argument order and a fine poll (token timings are milliseconds apart)."""
    return wait_until(check, timeout, what, poll)
