"""Throttle token guessing: after LIMIT failed authentications from one address within WINDOW_S seconds, that
address is refused (429 with Retry-After) until its oldest failure is older than the window.

A blocked address is refused even with the right token: otherwise it could keep guessing at full speed and only
the answers would change. Requests without credentials are not counted, and a right token costs one lookup.

Under gunicorn, the master makes one table per port before it forks (`prepare()`, from gunicorn.conf.py), in an
anonymous shared mapping, so every worker of the host counts every failure: no database, no lock, no I/O on the
hot path. Without a master (tests, a single process) each app gets a private in-memory table.
"""
from __future__ import annotations

import collections
import hashlib
import math
import mmap
import time
from typing import Callable, Iterable

LIMIT = 10
WINDOW_S = 60.0
MAX_ADDRESSES = 10000  # private table: addresses remembered; the longest-quiet ones are forgotten first
SHARED_SLOTS = 4096  # shared table: one slot per address hash


def wait_seconds(failures: Iterable[float], now: float, limit: int, window_s: float) -> int | None:
    """The rule: whole seconds until an address with these failure times may try again, or None if it may now."""
    recent = [t for t in failures if t > now - window_s]
    if len(recent) < limit:
        return None
    return max(1, math.ceil(min(recent) + window_s - now))


def _message(limit: int, window_s: float, seconds: int) -> str:
    return f"too many failed authentication attempts from this address ({limit} in {window_s:g} s); retry in {seconds} s"


class FailureThrottle:
    """A private table: the failure times of each address in a bounded dict."""

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
        return wait_seconds(times, now, self.limit, self.window_s)

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
        return _message(self.limit, self.window_s, seconds)


class SharedFailureThrottle:
    """The same rule over a mapping shared by forked processes: per slot, an address hash and LIMIT failure times.

    Best effort by design: two workers recording a failure for one address at the same instant may keep one of
    them, and an address whose hash lands on a taken slot takes it over (the other address's failures are
    forgotten). Either way guessing stays bounded; nothing blocks.
    """

    def __init__(self, limit: int = LIMIT, window_s: float = WINDOW_S, slots: int = SHARED_SLOTS,
                 clock: Callable[[], float] = time.monotonic):  # CLOCK_MONOTONIC: the same in every process
        self.limit = limit
        self.window_s = window_s
        self.slots = slots
        self._clock = clock
        self._mm = mmap.mmap(-1, slots * 8 * (1 + limit), flags=mmap.MAP_SHARED)
        view = memoryview(self._mm)
        self._keys = view[:slots * 8].cast("q")
        self._times = view[slots * 8:].cast("d")  # 0.0 = no failure

    def _slot(self, address: str) -> tuple[int, int]:
        key = int.from_bytes(hashlib.blake2b(address.encode(), digest_size=8).digest(), "little") >> 1 or 1
        return key, key % self.slots

    def retry_after(self, address: str) -> int | None:
        key, slot = self._slot(address)
        if self._keys[slot] != key:
            return None
        times = self._times[slot * self.limit:(slot + 1) * self.limit]
        return wait_seconds((t for t in times if t > 0), self._clock(), self.limit, self.window_s)

    def failed(self, address: str) -> None:
        key, slot = self._slot(address)
        base = slot * self.limit
        if self._keys[slot] != key:
            self._keys[slot] = key
            for i in range(self.limit):
                self._times[base + i] = 0.0
        oldest = min(range(self.limit), key=lambda i: self._times[base + i])
        self._times[base + oldest] = self._clock()

    def message(self, seconds: int) -> str:
        return _message(self.limit, self.window_s, seconds)


_prepared: dict[str, SharedFailureThrottle] = {}


def prepare() -> None:
    """In gunicorn's master, before the fork: one shared table per port, inherited by every worker (idempotent)."""
    for port in ("proxy", "dashboard"):
        _prepared.setdefault(port, SharedFailureThrottle())


def for_port(port: str) -> FailureThrottle | SharedFailureThrottle:
    """The master's shared table for `port` ("proxy" or "dashboard"), or a private one when there is no master."""
    return _prepared.get(port) or FailureThrottle()
