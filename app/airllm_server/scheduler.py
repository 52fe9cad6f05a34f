"""The device queue: one holder at a time, waiting requests served in arrival order, a bounded waiting line."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .errors import BUSY, ApiError, ClientGone


@dataclass
class Ticket:
    """One request's place in line."""

    id: int
    model: str
    kind: str
    enqueued_at: float = field(default_factory=time.monotonic)
    started_at: float | None = None

    def describe(self, now: float) -> dict:
        """The ticket as /health shows it."""
        info = {"id": self.id, "model": self.model, "kind": self.kind,
                "waited_s": round((self.started_at or now) - self.enqueued_at, 3)}
        if self.started_at is not None:
            info["running_s"] = round(now - self.started_at, 3)
        return info


class DeviceQueue:
    """FIFO access to the device. The head of the line holds it; up to ``max_waiting`` wait behind it."""

    def __init__(self, max_waiting: int):
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._line: deque[Ticket] = deque()
        self._ids = itertools.count(1)
        self._durations: deque[float] = deque(maxlen=20)
        self.dropped = 0
        self.rejected = 0

    def enter(self, model: str, kind: str) -> Ticket:
        """Join the line, or raise a 503 with Retry-After when the waiting line is full."""
        with self._cond:
            waiting = max(len(self._line) - 1, 0)
            if self._line and waiting >= self.max_waiting:
                self.rejected += 1
                raise ApiError(503, BUSY, {"Retry-After": str(self._retry_after(waiting))})
            ticket = Ticket(next(self._ids), model, kind)
            self._line.append(ticket)
            return ticket

    def try_enter_idle(self, model: str, kind: str) -> Ticket | None:
        """Take the device only if nobody holds or waits for it (used by the idle unloader)."""
        with self._cond:
            if self._line:
                return None
            ticket = Ticket(next(self._ids), model, kind)
            ticket.started_at = time.monotonic()
            self._line.append(ticket)
            return ticket

    def wait_turn(self, ticket: Ticket, gone: Callable[[], bool], poll: float = 0.1) -> None:
        """Block until the ticket heads the line; drop it and raise ClientGone if its client leaves first."""
        with self._cond:
            while self._line[0] is not ticket:
                if gone():
                    self._line.remove(ticket)
                    self.dropped += 1
                    self._cond.notify_all()
                    raise ClientGone()
                self._cond.wait(poll)
            ticket.started_at = time.monotonic()

    def leave(self, ticket: Ticket) -> None:
        """Give the device (or the place in line) back; idempotent."""
        with self._cond:
            if ticket in self._line:
                self._line.remove(ticket)
                if ticket.started_at is not None:
                    self._durations.append(time.monotonic() - ticket.started_at)
                self._cond.notify_all()

    def _retry_after(self, waiting: int) -> int:
        average = sum(self._durations) / len(self._durations) if self._durations else 5.0
        return max(1, min(600, round(average * (waiting + 1))))

    def snapshot(self) -> dict:
        """Running and waiting requests, in order (position 1 is next)."""
        now = time.monotonic()
        with self._cond:
            line = list(self._line)
        running = line[0] if line and line[0].started_at is not None else None
        waiting = [t for t in line if t is not running]
        return {
            "running": running.describe(now) if running else None,
            "waiting": [dict(t.describe(now), position=i) for i, t in enumerate(waiting, 1)],
            "depth": len(waiting),
            "max_waiting": self.max_waiting,
            "dropped": self.dropped,
            "rejected": self.rejected,
        }

    @property
    def busy(self) -> bool:
        """Whether anyone holds or waits for the device."""
        with self._cond:
            return bool(self._line)
