"""Request statistics in the database: a sink the Recorder's flusher calls, and the queries that read them back.

Every worker adds its batch to per-minute rows (charts, last hour/day) and to all-time rows (totals, Prometheus
counters) with one upsert per (minute, model, backend): all columns are sums, so any number of workers and
replicas can add to the same row. Latency is kept as a fixed histogram per row, which gives mean and an
estimated p95 over any range without storing every request.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, StatsMinute, StatsTotal
from ..routing import normalize_model_name
from .records import RequestRecord


MINUTE_RETENTION_SECONDS = 2 * 86400  # the day chart needs one day; keep two
PRUNE_EVERY_SECONDS = 600
SUMMED = ("requests", "errors", "duration_ms_sum", "ttft_ms_sum", "ttft_count", "prompt_tokens", "eval_tokens",
          "timed_eval_tokens", "eval_duration_ns") + LATENCY_COLUMNS
RANGES = {"hour": (3600, 60), "day": (86400, 900)}  # window seconds, chart step seconds


def is_error(record: RequestRecord) -> bool:
    """A 4xx/5xx answer, or a stream that broke or carried Ollama's mid-stream `error` line."""
    return record.status >= 400 or bool(record.error)


def latency_slot(duration_ms: float) -> int:
    """Index of the histogram bucket a duration falls in (the last one is 'slower than every bound')."""
    for index, bound in enumerate(LATENCY_BOUNDS_MS):
        if duration_ms <= bound:
            return index
    return len(LATENCY_BOUNDS_MS)


def stats_model_key(model: str | None) -> str:
    """Statistics group `llama3` with `llama3:latest`; requests without a model go under ''."""
    return normalize_model_name(model)[:256] if model else ""


def _empty_counters() -> dict:
    counters = {name: 0 for name in SUMMED}
    counters.update(duration_ms_sum=0.0, ttft_ms_sum=0.0, duration_ms_max=0.0)
    return counters


def _add_record(counters: dict, record: RequestRecord) -> None:
    duration = record.duration_ms
    counters["requests"] += 1
    counters["errors"] += is_error(record)
    counters["duration_ms_sum"] += duration
    counters["duration_ms_max"] = max(counters["duration_ms_max"], duration)
    counters[LATENCY_COLUMNS[latency_slot(duration)]] += 1
    ttfb = record.ttfb_ms
    if record.streamed and ttfb is not None and 200 <= record.status < 300:
        counters["ttft_ms_sum"] += ttfb
        counters["ttft_count"] += 1
    if record.prompt_tokens:
        counters["prompt_tokens"] += record.prompt_tokens
    if record.eval_count:
        counters["eval_tokens"] += record.eval_count
        if record.eval_duration_ns:
            counters["timed_eval_tokens"] += record.eval_count
            counters["eval_duration_ns"] += record.eval_duration_ns


class StatsSink:
    """Adds each flushed batch to `stats_minute` and `stats_total` and prunes old minutes now and then."""

    def __init__(self, retention_seconds: int = MINUTE_RETENTION_SECONDS):
        self.retention_seconds = retention_seconds
        self._next_prune = 0.0

    def write(self, session: Session, records: list[RequestRecord]) -> None:
        minutes: dict[tuple, dict] = {}
        totals: dict[tuple, dict] = {}
        for record in records:
            model, backend = stats_model_key(record.model), record.backend[:32]
            bucket = int(record.started_wall // 60 * 60)
            for groups, key in ((minutes, (bucket, model, backend)), (totals, (model, backend))):
                counters = groups.get(key)
                if counters is None:
                    counters = groups[key] = _empty_counters()
                    if groups is totals:
                        counters["first_at"] = counters["last_at"] = record.started_wall
                if groups is totals:
                    counters["first_at"] = min(counters["first_at"], record.started_wall)
                    counters["last_at"] = max(counters["last_at"], record.started_wall)
                _add_record(counters, record)
        minute_keys, total_keys = ("bucket", "model", "backend"), ("model", "backend")
        upsert_sums(session, StatsMinute, [dict(zip(minute_keys, k), **v) for k, v in minutes.items()], minute_keys)
        upsert_sums(session, StatsTotal, [dict(zip(total_keys, k), **v) for k, v in totals.items()], total_keys)
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            cutoff = int(time.time()) - self.retention_seconds
            session.execute(delete(StatsMinute).where(StatsMinute.bucket < cutoff))


_UPSERTS: dict = {}  # (table, dialect, summed) -> statement: building one costs more than running it
MAXED = ("duration_ms_max", "last_at")  # columns that keep the larger value instead of adding up


def _upsert_statement(table, dialect: str, keys: tuple[str, ...], summed: tuple[str, ...]):
    cached = _UPSERTS.get((table.name, dialect, summed))
    if cached is not None:
        return cached
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
        greatest = func.max  # SQLite's two-argument max() is scalar
    else:
        from sqlalchemy.dialects.postgresql import insert
        greatest = func.greatest
    stmt = insert(table)
    changes = {name: table.c[name] + stmt.excluded[name] for name in summed}
    for name in MAXED:
        if name in table.c:
            changes[name] = greatest(table.c[name], stmt.excluded[name])
    statement = stmt.on_conflict_do_update(index_elements=list(keys), set_=changes)
    _UPSERTS[(table.name, dialect, summed)] = statement
    return statement


def upsert_sums(session: Session, model, rows: list[dict], keys: tuple[str, ...],
                summed: tuple[str, ...] = SUMMED) -> None:
    """Add each row's `summed` columns to the stored row with the same `keys` (inserting it when missing).

    INSERT ... ON CONFLICT DO UPDATE SET col = col + new on SQLite and PostgreSQL (no race between workers or
    replicas), read-modify-write elsewhere. Rows go in primary-key order, so two workers flushing overlapping
    batches lock rows in the same order and cannot deadlock each other on PostgreSQL.
    """
    if not rows:
        return
    rows = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
    table = model.__table__
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        session.execute(_upsert_statement(table, dialect, keys, summed), rows)
        return
    for row in rows:  # other databases: correct, a little slower, and fine at one flush per second
        where = [table.c[k] == row[k] for k in keys]
        changes = {name: table.c[name] + row[name] for name in summed}
        for name in MAXED:
            if name in table.c:
                changes[name] = func.greatest(table.c[name], row[name])
        if session.execute(update(table).where(*where).values(changes)).rowcount == 0:
            session.execute(table.insert().values(row))


# -- reading ---------------------------------------------------------------------------------------------------

def _number(value):
    """PostgreSQL's SUM over integer columns is NUMERIC, a Decimal in Python; the figures here want int/float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


@dataclass
class Aggregate:
    """Counters summed over any set of rows, and the figures derived from them."""

    requests: int = 0
    errors: int = 0
    duration_ms_sum: float = 0.0
    duration_ms_max: float = 0.0
    ttft_ms_sum: float = 0.0
    ttft_count: int = 0
    prompt_tokens: int = 0
    eval_tokens: int = 0
    timed_eval_tokens: int = 0
    eval_duration_ns: int = 0
    histogram: list = field(default_factory=lambda: [0] * len(LATENCY_COLUMNS))

    def add(self, row) -> "Aggregate":
        """Add a row (an ORM row, a Row or a mapping) or another Aggregate."""
        raw_get = row.get if isinstance(row, dict) else (lambda name: getattr(row, name))

        def get(name):
            return _number(raw_get(name))

        for name in ("requests", "errors", "duration_ms_sum", "ttft_ms_sum", "ttft_count", "prompt_tokens",
                     "eval_tokens", "timed_eval_tokens", "eval_duration_ns"):
            setattr(self, name, getattr(self, name) + (get(name) or 0))
        self.duration_ms_max = max(self.duration_ms_max, get("duration_ms_max") or 0.0)
        counts = row.histogram if isinstance(row, Aggregate) else [get(c) or 0 for c in LATENCY_COLUMNS]
        self.histogram = [a + b for a, b in zip(self.histogram, counts)]
        return self

    @property
    def mean_ms(self) -> float | None:
        return self.duration_ms_sum / self.requests if self.requests else None

    def percentile_ms(self, q: float) -> float | None:
        """Estimate from the histogram: linear inside the bucket, never above the slowest request seen."""
        total = sum(self.histogram)
        if not total:
            return None
        rank = max(math.ceil(q * total), 1)  # nearest rank: one sample's p95 is that sample
        seen = 0
        for index, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                low = LATENCY_BOUNDS_MS[index - 1] if index else 0.0
                high = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else self.duration_ms_max
                high = min(high, self.duration_ms_max) if self.duration_ms_max else high
                low = min(low, high)
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self.duration_ms_max

    @property
    def p95_ms(self) -> float | None:
        return self.percentile_ms(0.95)

    @property
    def ttft_ms(self) -> float | None:
        return self.ttft_ms_sum / self.ttft_count if self.ttft_count else None

    @property
    def tokens_per_s(self) -> float | None:
        """Ollama's own generation speed: eval_count / eval_duration, summed over requests that report both."""
        if not self.eval_duration_ns:
            return None
        return self.timed_eval_tokens / (self.eval_duration_ns / 1e9)

    def as_dict(self) -> dict:
        def r(value, digits=1):
            return None if value is None else round(value, digits)

        return {"requests": self.requests, "errors": self.errors, "mean_ms": r(self.mean_ms),
                "p95_ms": r(self.p95_ms), "max_ms": r(self.duration_ms_max) if self.requests else None,
                "ttft_ms": r(self.ttft_ms), "prompt_tokens": self.prompt_tokens,
                "tokens_generated": self.eval_tokens, "tokens_per_s": r(self.tokens_per_s, 2)}


@dataclass
class ModelStats:
    model: str
    backend: str
    stats: Aggregate


def _sum_columns(table):
    cols = [func.sum(table.c[name]).label(name) for name in SUMMED]
    return cols + [func.max(table.c.duration_ms_max).label("duration_ms_max")]


def window_start(range_name: str, now: float | None = None) -> int:
    """Start (Unix time, a whole minute) of the last hour or day."""
    seconds, _step = RANGES[range_name]
    now = time.time() if now is None else now
    return int((now - seconds) // 60 * 60) + 60


def per_model(session: Session, range_name: str = "all", now: float | None = None) -> list[ModelStats]:
    """Aggregates per model and backend, over all time or the last hour/day, sorted by model then backend."""
    if range_name == "all":
        rows = session.execute(select(StatsTotal)).scalars()
        result = [ModelStats(row.model, row.backend, Aggregate().add(row)) for row in rows]
    else:
        table = StatsMinute.__table__
        query = (select(table.c.model, table.c.backend, *_sum_columns(table))
                 .where(table.c.bucket >= window_start(range_name, now))
                 .group_by(table.c.model, table.c.backend))
        result = [ModelStats(row.model, row.backend, Aggregate().add(row)) for row in session.execute(query)]
    return sorted(result, key=lambda m: (m.model == "", m.model, m.backend))


def totals(session: Session) -> dict:
    """All-time totals over every model and backend, and when the first request was seen."""
    table = StatsTotal.__table__
    row = session.execute(select(*_sum_columns(table), func.min(table.c.first_at).label("first_at"))).one()
    aggregate = Aggregate().add(row)
    return {**aggregate.as_dict(), "since": row.first_at}


def series(session: Session, range_name: str, model: str | None = None, now: float | None = None) -> dict:
    """Points for the charts: one per minute (last hour) or per 15 minutes (last day), zeros where idle."""
    seconds, step = RANGES[range_name]
    now = time.time() if now is None else now
    table = StatsMinute.__table__
    start = window_start(range_name, now) // step * step
    slot = (table.c.bucket - table.c.bucket % step).label("slot")
    query = select(slot, *_sum_columns(table)).where(table.c.bucket >= start).group_by(slot)
    if model:
        query = query.where(table.c.model == stats_model_key(model))
    by_slot = {int(row.slot): Aggregate().add(row) for row in session.execute(query)}
    points = {"t": [], "requests": [], "errors": [], "mean_ms": [], "p95_ms": [], "ttft_ms": [], "tokens_per_s": []}
    t = start
    while t <= now:
        agg = by_slot.get(t, Aggregate())
        points["t"].append(t)
        points["requests"].append(agg.requests)
        points["errors"].append(agg.errors)
        for name in ("mean_ms", "p95_ms", "ttft_ms", "tokens_per_s"):
            value = getattr(agg, name)
            points[name].append(None if value is None else round(value, 2))
        t += step
    return {"range": range_name, "step_s": step, "model": model or None, "points": points}


def model_names(session: Session) -> list[str]:
    """Every model that has statistics (for the chart's model picker)."""
    return sorted(m for m in session.execute(select(StatsTotal.model).distinct()).scalars() if m)
