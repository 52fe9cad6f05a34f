"""Collect request records in memory and write them to the database in batches, off the request path.

Each worker appends finished records to a deque (no I/O, no lock: greenlets only switch on I/O) and a
background flusher writes them every TELEMETRY_FLUSH_SECONDS in one short transaction, through sinks:
the request log here, and whatever else registers (statistics, metrics).
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Protocol

from sqlalchemy.orm import Session, sessionmaker

from .records import RequestRecord

log = logging.getLogger(__name__)
MAX_PENDING = 10000  # if the database is down for a long time, keep the newest records only


class Sink(Protocol):
    def write(self, session: Session, records: list[RequestRecord]) -> None: ...


class Recorder:
    def __init__(self, session_factory: sessionmaker, sinks: list[Sink], flush_seconds: float = 1.0):
        self._factory = session_factory
        self.sinks = list(sinks)
        self._flush_seconds = flush_seconds
        self._pending: collections.deque[RequestRecord] = collections.deque(maxlen=MAX_PENDING)
        self._retry: list[RequestRecord] = []
        self._listeners: list[Callable[[RequestRecord], None]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, callback: Callable[[RequestRecord], None]) -> None:
        """Called for every record at flush time, in the flusher (e.g. in-process metrics)."""
        self._listeners.append(callback)

    def submit(self, record: RequestRecord) -> None:
        self._pending.append(record)

    def flush(self) -> int:
        """Write everything pending now; returns how many records were written.

        Listeners see each record exactly once, when it is first taken from the queue; records whose write
        failed wait in `_retry` (the newest MAX_PENDING of them) for the next flush.
        """
        fresh = []
        while self._pending:
            fresh.append(self._pending.popleft())
        for record in fresh:
            record.extract_counters()
            for callback in self._listeners:
                callback(record)
        batch, self._retry = self._retry + fresh, []
        if not batch:
            return 0
        try:
            with self._factory.begin() as session:
                for sink in self.sinks:
                    sink.write(session, batch)
        except Exception:
            log.exception("could not write %d request records; will retry", len(batch))
            self._retry = batch[-MAX_PENDING:]
            return 0
        return len(batch)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry-flusher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()
