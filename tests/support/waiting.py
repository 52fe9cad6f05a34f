"""Wait for a condition with a deadline, never for a fixed time."""

from __future__ import annotations

import time


def wait_for(check, what: str, timeout: float = 60.0, poll: float = 0.002):
    """Poll ``check`` until it returns something truthy (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
