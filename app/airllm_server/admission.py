"""An admitted request's handle: what the request thread reads (text, heartbeats, the outcome) and closes.

The view validates the whole request first (options, prompt, context) and only then asks the batcher for a place;
the handle it gets is a context manager, so an error between admission and the reply releases the place.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from typing import Callable, Iterator

from .generation import Outcome, Sequence
from .registry import ModelEntry

_ids = itertools.count(1)


class Handle:
    """One request in the batcher: waiting, loading its model, running, or done."""

    def __init__(self, entry: ModelEntry, kind: str, keep_alive: float, gone: Callable[[], bool],
                 sequence: Sequence | None = None, t0: float | None = None):
        self.id = next(_ids)
        self.entry, self.kind, self.keep_alive, self.sequence = entry, kind, keep_alive, sequence
        self.model = entry.name
        self.events: queue.Queue = sequence.events if sequence is not None else queue.Queue()
        self.enqueued_at = time.monotonic()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.state = "waiting"               # waiting | loading | running | done
        self.t0 = t0 if t0 is not None else time.perf_counter()
        self.load_ns = 0
        self.outcome: Outcome | None = None
        self.error: str | None = None        # why it failed before generating (a load error)
        self._gone = gone
        self._closed = threading.Event()
        self.on_close: Callable[[], None] = lambda: None

    @property
    def joins(self) -> bool:
        """Whether it can share a running batch (a generation, or a load of the model already resident)."""
        return self.sequence is not None or self.kind == "load"

    def is_gone(self) -> bool:
        """The client left, or the reply was closed before the end."""
        if self._closed.is_set():
            return True
        if self._gone():
            self._closed.set()
            return True
        return False

    def post(self, kind: str, value) -> None:
        """Called by the batcher: ("loaded", ns) for a load or unload, ("error", ApiError) when it failed."""
        self.events.put((kind, value))

    def pieces(self, heartbeat_s: float | None) -> Iterator[str | None]:
        """Text as it is decoded, None every ``heartbeat_s`` of silence; ends with ``outcome`` set (or raises)."""
        while True:
            try:
                kind, value = self.events.get(timeout=heartbeat_s)
            except queue.Empty:
                yield None
                continue
            if kind == "text":
                yield value
            elif kind == "done":
                self.outcome = value
                return
            elif kind == "loaded":
                self.load_ns = value
                return
            else:
                raise value

    def collect(self) -> str:
        """Wait for the end and return the whole text."""
        return "".join(p for p in self.pieces(None) if p)

    def total_ns(self) -> int:
        """Nanoseconds since the request arrived."""
        return int((time.perf_counter() - self.t0) * 1e9)

    def close(self) -> None:
        """Give the place back: a waiting request leaves the line, a running one leaves the batch at the next step."""
        if not self._closed.is_set():
            self._closed.set()
            self.on_close()

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:        # the reply was never built: nobody else will close it
            self.close()
