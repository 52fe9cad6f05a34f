"""The batch writer against a real SQLite file: a locked database is retried whole, a poison record is set aside
and the rest written, listeners see each record once."""
import sqlite3

import pytest
from sqlalchemy import select

from app.db import make_engine, make_session_factory, upgrade_database
from app.models import RequestLog, StatsTotal, TelemetryCounter
from app.telemetry import recorder as recorder_module
from app.telemetry.recorder import MAX_ATTEMPTS, Recorder, write_isolating
from app.telemetry.records import RequestRecord
from app.telemetry.sinks import RequestLogSink
from app.telemetry.stats import StatsSink

BEYOND_SQLITE = 2 ** 63  # no 64-bit column can hold it: sqlite3 raises OverflowError for this one record


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "telemetry.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    engine = make_engine(url)
    yield path, make_session_factory(engine)
    engine.dispose()


def record(n: int, **fields) -> RequestRecord:
    fields.setdefault("eval_duration_ns", 5_000_000_000 + n)  # five seconds: over 2**31 ns
    return RequestRecord(method="POST", endpoint="/api/chat", client=f"c{n}", status=200, model="llama3.2:1b",
                         eval_count=10, finished=0.0, **fields)


def logged(factory) -> list[tuple[str, int]]:
    with factory() as session:
        return [(r.client, r.eval_duration_ns) for r in session.execute(select(RequestLog).order_by(RequestLog.id))
                .scalars()]


def counter(factory, name: str) -> int:
    with factory() as session:
        return session.get(TelemetryCounter, name).value if session.get(TelemetryCounter, name) else 0


def test_a_poison_record_is_set_aside_and_the_rest_are_written(database, caplog):
    _, factory = database
    recorder = Recorder(factory, [RequestLogSink(retention=100), StatsSink()])
    good = [record(n) for n in range(7)]
    poison = record(99, eval_duration_ns=BEYOND_SQLITE)
    for r in good[:3] + [poison] + good[3:]:
        recorder.submit(r)
    assert recorder.flush() == 7
    assert logged(factory) == [(f"c{n}", 5_000_000_000 + n) for n in range(7)]
    for attempt in range(2, MAX_ATTEMPTS + 1):  # retried on its own, then set aside
        recorder.submit(record(100 + attempt))
        assert recorder.flush() == 1
    assert counter(factory, "unwritable") == 1
    assert recorder.flush() == 0 and not recorder._retry
    set_aside = [r for r in caplog.records if "setting aside" in r.getMessage()]
    assert len(set_aside) == 1 and "/api/chat" in set_aside[0].getMessage()
    with factory() as session:
        total = session.execute(select(StatsTotal)).scalar_one()
    assert total.requests == 7 + MAX_ATTEMPTS - 1  # statistics counted every record but the poison one


def test_a_locked_database_keeps_the_whole_batch_for_the_next_flush(database):
    path, factory = database
    recorder = Recorder(factory, [RequestLogSink(retention=100)])
    seen = []
    recorder.add_listener(seen.append)
    first = record(1)
    recorder.submit(first)
    assert logged(factory) == []  # the pool's connection exists (and is in WAL mode) before the lock
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with _busy_timeout(factory, 0):  # fail at once instead of waiting out the 5 s busy timeout
            assert recorder.flush() == 0
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert seen == [first] and first.write_failures == 0  # the database failed, not the record
    second = record(2)
    recorder.submit(second)
    assert recorder.flush() == 2
    assert [c for c, _ in logged(factory)] == ["c1", "c2"] and seen == [first, second]


class _busy_timeout:
    """Every connection the factory's pool hands out waits at most `ms` for a lock (restored afterwards)."""

    def __init__(self, factory, ms: int):
        self.engine, self.ms = factory.kw["bind"], ms

    def __enter__(self):
        from sqlalchemy import event

        def pragma(dbapi_connection, _record, _proxy):
            dbapi_connection.execute(f"PRAGMA busy_timeout={self.ms}")

        self.listener = pragma
        event.listen(self.engine, "checkout", pragma)

    def __exit__(self, *exc):
        from sqlalchemy import event

        event.remove(self.engine, "checkout", self.listener)
        return False


def test_write_isolating_bisects_to_the_failing_records_only():
    calls = []

    def write(part):
        calls.append(len(part))
        if any(r < 0 for r in part):
            raise ValueError("out of range")

    written, failed, error = write_isolating(write, [1, 2, -3, 4, 5, 6, -7, 8])
    assert written == [1, 2, 4, 5, 6, 8] and [r for r, _ in failed] == [-3, -7] and error is None
    assert len(calls) < 16  # a bisection, not one transaction per record


def test_write_isolating_stops_at_a_database_failure():
    from sqlalchemy.exc import OperationalError

    def write(part):
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))

    written, failed, error = write_isolating(write, [1, 2, 3])
    assert written == [] and failed == [] and isinstance(error, OperationalError)
    assert recorder_module.is_transient(error)


def test_records_pushed_out_of_a_full_queue_are_counted(database, monkeypatch):
    _, factory = database
    monkeypatch.setattr(recorder_module, "MAX_PENDING", 3)
    recorder = Recorder(factory, [RequestLogSink(retention=100)])
    for n in range(5):
        recorder.submit(record(n))
    assert recorder.flush() == 3
    assert [c for c, _ in logged(factory)] == ["c2", "c3", "c4"]  # the newest are kept
    assert counter(factory, "overflow") == 2 and counter(factory, "unwritable") == 0
