"""Throttle token guessing: after LIMIT failed authentications from one address within WINDOW_S seconds, that
address is refused (429 with Retry-After) until its oldest failure is older than the window.

Pure and in memory, one per worker and port: no database or lock on the proxy's hot path, where a successful
request costs one dict lookup. With N gunicorn workers an address gets at most N x LIMIT guesses a window
(connections land on any worker). A blocked address is refused even with the right token: otherwise it could
keep guessing at full speed and only the answers would change. Requests without credentials are not counted.
"""
from __future__ import annotations

import collections
import math
import time
from typing import Callable

LIMIT = 10
WINDOW_S = 60.0
MAX_ADDRESSES = 10000  # addresses remembered; the longest-quiet ones are forgotten first


class FailureThrottle:
    def __init__(self, limit: int = LIMIT, window_s: float = WINDOW_S, max_addresses: int = MAX_ADDRESSES,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._clock = clock
        self._failures: collections.OrderedDict[str, collections.deque] = collections.OrderedDict()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds until `address` may try again, or None when it may try now."""
        times = self._failures.get(address)
        if times is None:
            return None
        now = self._clock()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        if len(times) < self.limit:
            return None
        return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, address: str) -> None:
        """Count one failed authentication from `address`."""
        times = self._failures.get(address)
        if times is None:
            times = self._failures[address] = collections.deque(maxlen=self.limit)
            if len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        times.append(self._clock())

    def message(self, seconds: int) -> str:
        return (f"too many failed authentication attempts from this address ({self.limit} in {self.window_s:g} s); "
                f"retry in {seconds} s")
