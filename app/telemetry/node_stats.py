"""Requests and errors per Ollama node: a Recorder sink and the queries the Nodes page and /metrics read.

Records carry the node that answered (`RequestRecord.node`, set by the routing engine); records without one
(the AirLLM server, or a request that never reached a node) are not counted here. The writes reuse the
statistics' upsert (sums, so any number of workers and replicas add to the same rows, in key order).
"""
from __future__ import annotations

import time

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import StatsNodeMinute, StatsNodeTotal
from .records import RequestRecord
from .stats import MINUTE_RETENTION_SECONDS, PRUNE_EVERY_SECONDS, is_error, upsert_sums

COUNTERS = ("requests", "errors")
ERROR_TEXT_LIMIT = 2000
RATE_WINDOW_MINUTES = 5


def error_text(record: RequestRecord) -> str:
    """What went wrong, for the node's "last error": the record's error, else its HTTP status."""
    return (record.error or f"HTTP {record.status} on {record.endpoint}")[:ERROR_TEXT_LIMIT]


class NodeStatsSink:
    """Adds each flushed batch to `stats_node_minute` and `stats_node_total`, keeps each node's newest error."""

    def __init__(self, retention_seconds: int = MINUTE_RETENTION_SECONDS):
        self.retention_seconds = retention_seconds
        self._next_prune = 0.0

    def write(self, session: Session, records: list[RequestRecord]) -> None:
        minutes: dict[tuple, dict] = {}
        totals: dict[str, dict] = {}
        newest_error: dict[str, tuple[float, str]] = {}
        for record in records:
            if not record.node:
                continue
            node, failed = record.node[:64], is_error(record)
            bucket = int(record.started_wall // 60 * 60)
            for counters in (minutes.setdefault((bucket, node), dict.fromkeys(COUNTERS, 0)),
                             totals.setdefault(node, dict.fromkeys(COUNTERS, 0))):
                counters["requests"] += 1
                counters["errors"] += failed
            if failed and record.started_wall >= newest_error.get(node, (float("-inf"), ""))[0]:
                newest_error[node] = (record.started_wall, error_text(record))
        upsert_sums(session, StatsNodeMinute, [{"bucket": b, "node": n, **c} for (b, n), c in minutes.items()],
                    ("bucket", "node"), summed=COUNTERS)
        upsert_sums(session, StatsNodeTotal, [{"node": n, **c} for n, c in totals.items()], ("node",),
                    summed=COUNTERS)
        table = StatsNodeTotal.__table__
        for node in sorted(newest_error):  # rows the upsert above already holds, in the same key order
            at, text = newest_error[node]
            session.execute(update(table).where(table.c.node == node, or_(table.c.last_error_at.is_(None),
                                                                         table.c.last_error_at <= at))
                            .values(last_error=text, last_error_at=at))
        now = time.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_SECONDS
            cutoff = int(time.time()) - self.retention_seconds
            session.execute(delete(StatsNodeMinute).where(StatsNodeMinute.bucket < cutoff))


def node_totals(session: Session) -> dict[str, dict]:
    """Per node name: requests, errors, last_error, last_error_at (Unix time) since the first request."""
    return {row.node: {"requests": row.requests, "errors": row.errors, "last_error": row.last_error,
                       "last_error_at": row.last_error_at}
            for row in session.execute(select(StatsNodeTotal)).scalars()}


def node_rates(session: Session, now: float | None = None, minutes: int = RATE_WINDOW_MINUTES) -> dict[str, dict]:
    """Per node name: requests and errors per minute, averaged over the last `minutes` (the current one included)."""
    now = time.time() if now is None else now
    since = int(now // 60 * 60) - (minutes - 1) * 60
    table = StatsNodeMinute.__table__
    query = (select(table.c.node, func.sum(table.c.requests).label("requests"),
                    func.sum(table.c.errors).label("errors"))
             .where(table.c.bucket >= since).group_by(table.c.node))
    return {row.node: {"requests_per_min": int(row.requests) / minutes, "errors_per_min": int(row.errors) / minutes}
            for row in session.execute(query)}
