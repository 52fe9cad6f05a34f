"""Sinks that persist request records."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import RequestLog
from .records import RequestRecord

PROMPT_LIMIT = 2000


class RequestLogSink:
    """Appends to the request log and trims it to the newest `retention` rows."""

    def __init__(self, retention: int = 200, store_prompts: bool = False):
        self.retention = retention
        self.store_prompts = store_prompts

    def write(self, session: Session, records: list[RequestRecord]) -> None:
        # Rows beyond the retention would be deleted in this same transaction: never insert them. Under load
        # (thousands of requests per flush) this is most of the flusher's work.
        records = records[-self.retention:] if self.retention > 0 else []
        if not records:
            return
        rows = [{
            "created_at": datetime.fromtimestamp(r.started_wall, timezone.utc),
            "client": r.client[:64], "method": r.method[:8], "endpoint": r.endpoint[:256],
            "model": r.model[:256] if r.model else None, "backend": r.backend, "status": r.status,
            "duration_ms": round(r.duration_ms, 3),
            "ttfb_ms": None if r.ttfb_ms is None else round(r.ttfb_ms, 3),
            "streamed": r.streamed, "prompt_tokens": r.prompt_tokens, "eval_count": r.eval_count,
            "eval_duration_ns": r.eval_duration_ns, "error": r.error, "note": r.note,
            "requested_model": r.requested_model[:256] if r.requested_model else None, "category": r.category,
            "node": r.node[:64] if r.node else None, "route_reason": r.route_reason[:256] if r.route_reason else None,
            "prompt": (r.prompt or "")[:PROMPT_LIMIT] or None if self.store_prompts else None,
        } for r in records]
        session.execute(RequestLog.__table__.insert(), rows)  # Core executemany: no ORM bookkeeping per row
        cutoff = session.execute(select(RequestLog.id).order_by(RequestLog.id.desc())
                                 .offset(self.retention).limit(1)).scalar()
        if cutoff is not None:
            session.execute(delete(RequestLog).where(RequestLog.id <= cutoff))
