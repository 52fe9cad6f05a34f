"""Collect request records in memory and write them to the database in batches, off the request path.

Each worker appends finished records to a deque (no I/O, no lock: greenlets only switch on I/O) and a
background flusher writes them every TELEMETRY_FLUSH_SECONDS in one short transaction, through sinks:
the request log here, and whatever else registers (statistics, metrics). The write itself runs in a native
thread (app.offload), so a database that waits for a lock never stops the worker's streams.

A batch that fails because of the database (down, locked) is retried whole at the next flush. A batch that
fails because of its data is written in halves, down to single records, so one bad record (a counter out of
range) cannot hold back the others; a record that still fails on its own after MAX_ATTEMPTS flushes is set
aside: logged once and counted in `telemetry_counters` (`/metrics`).
"""
from __future__ import annotations

import collections
import logging
import threading
from typing import Callable, Protocol

from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker

from ..models import TelemetryCounter
from ..offload import run_blocking
from .records import RequestRecord

log = logging.getLogger(__name__)
MAX_PENDING = 10000  # if the database is down for a long time, keep the newest records only
MAX_ATTEMPTS = 3  # flushes in which a record failed on its own before it is set aside
UNWRITABLE, OVERFLOW = "unwritable", "overflow"  # telemetry_counters names: why records were dropped


class Sink(Protocol):
    def write(self, session: Session, records: list[RequestRecord]) -> None: ...


def is_transient(exc: BaseException) -> bool:
    """A failure of the database itself (unreachable, locked, connection lost), not of the records written."""
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError,
                        sa_exc.DisconnectionError)):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


def write_isolating(write: Callable[[list], None], records: list) -> tuple[list, list, BaseException | None]:
    """Write `records` with `write`; when that fails for their data, write the halves apart, down to single records.

    Returns (written, failed alone as [(record, error)], the transient error that stopped it or None); records in
    neither list were not tried because the database itself failed.
    """
    written, failed = [], []
    parts = [records]
    while parts:
        part = parts.pop()
        try:
            write(part)
        except Exception as exc:
            if is_transient(exc):
                return written, failed, exc
            if len(part) == 1:
                failed.append((part[0], exc))
            else:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]  # first half first: ids stay in order
        else:
            written += part
    return written, failed, None


def settle(batch: list, written: list, failed: list) -> tuple[list, list]:
    """After a write: (the records to try again, [(record, error)] to set aside). Untried records keep their
    order; a record that failed on its own is retried until it has failed MAX_ATTEMPTS times."""
    done = {id(r) for r in written} | {id(r) for r, _ in failed}
    retry = [r for r in batch if id(r) not in done]
    set_aside = []
    for record, exc in failed:
        record.write_failures += 1
        if record.write_failures < MAX_ATTEMPTS:
            retry.append(record)
        else:
            set_aside.append((record, exc))
    return retry, set_aside


def _call(fn, *args):
    return fn(*args)


class Recorder:
    def __init__(self, session_factory: sessionmaker, sinks: list[Sink], flush_seconds: float = 1.0):
        self._factory = session_factory
        self.sinks = list(sinks)
        self._flush_seconds = flush_seconds
        self._pending: collections.deque[RequestRecord] = collections.deque(maxlen=MAX_PENDING)
        self._retry: list[RequestRecord] = []
        self._listeners: list[Callable[[RequestRecord], None]] = []
        self._dropped = collections.Counter()  # dropped records not yet added to telemetry_counters
        self._flushing = threading.Lock()  # the flusher and worker_exit's stop() must not flush at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_listener(self, callback: Callable[[RequestRecord], None]) -> None:
        """Called for every record at flush time, in the flusher (e.g. in-process metrics)."""
        self._listeners.append(callback)

    def submit(self, record: RequestRecord) -> None:
        if len(self._pending) == MAX_PENDING:
            self._dropped[OVERFLOW] += 1  # the deque drops its oldest record now
        self._pending.append(record)

    def flush(self, offload: bool = True) -> int:
        """Write everything pending now; returns how many records were written. `offload=False` writes on the
        calling greenlet (the worker's exit, where gevent's hub may already be stopping).

        Listeners see each record exactly once, when it is first taken from the queue (on the caller's
        greenlet: they touch in-memory state only); records whose write failed wait in `_retry` (the newest
        MAX_PENDING of them) for the next flush.
        """
        with self._flushing:
            fresh = []
            while self._pending:
                fresh.append(self._pending.popleft())
            for record in fresh:
                record.extract_counters()
                for callback in self._listeners:
                    callback(record)
            batch, self._retry = self._retry + fresh, []
            run = run_blocking if offload else _call
            written, failed, error = run(write_isolating, self._write, batch) if batch else ([], [], None)
            if error is not None:
                log.warning("could not write %d request records; will retry: %s", len(batch) - len(written), error)
            retry, set_aside = settle(batch, written, failed)
            for record, exc in set_aside:
                self._dropped[UNWRITABLE] += 1
                log.error("setting aside a request record that failed %d times (%s %s, model %r): %s",
                          record.write_failures, record.method, record.endpoint, record.model, exc)
            if len(retry) > MAX_PENDING:
                self._dropped[OVERFLOW] += len(retry) - MAX_PENDING
            self._retry = retry[-MAX_PENDING:]
            if self._dropped and error is None:
                counts = dict(self._dropped)
                if run(self._count_dropped, counts):
                    self._dropped.subtract(counts)  # no I/O from here on: no other greenlet runs meanwhile
                    self._dropped = +self._dropped  # keep only what was dropped while counting
            return len(written)

    def _write(self, records: list[RequestRecord]) -> None:
        with self._factory.begin() as session:
            for sink in self.sinks:
                sink.write(session, records)

    def _count_dropped(self, counts: dict) -> bool:
        """Add dropped records to the shared counters (every worker and replica adds to the same rows)."""
        from .stats import upsert_sums

        try:
            with self._factory.begin() as session:
                upsert_sums(session, TelemetryCounter, [{"name": n, "value": v} for n, v in counts.items()],
                            ("name",), summed=("value",))
        except Exception as exc:  # counted at the next flush instead
            log.warning("could not count %s dropped request records: %s", counts, exc)
            return False
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry-flusher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.flush(offload=False)

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
            except Exception:  # never let the flusher die: records wait in memory for the next try
                log.exception("telemetry flush failed")
