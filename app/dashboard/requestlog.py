"""Reading and clearing the request log (written by the Recorder's RequestLogSink)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ..models import OllamaNode, RequestLog
from ..validation import ValidationError

STATUS_CHOICES = (("", "Any status"), ("ok", "Succeeded"), ("error", "Failed"), ("2xx", "2xx"), ("4xx", "4xx"),
                  ("5xx", "5xx"))
PROMPT_PREVIEW = 160


def _is_number(text: str) -> bool:
    """ASCII digits only: `"²".isdigit()` and `"٣".isdigit()` are true too, and int() refuses the first."""
    return text.isascii() and text.isdecimal()


@dataclass(frozen=True)
class LogFilter:
    model: str = ""
    backend: str = ""
    node: str = ""
    status: str = ""
    limit: int = 200

    @classmethod
    def from_args(cls, args, default_limit: int) -> "LogFilter":
        """Read `model`, `backend`, `node`, `status` and `limit` from query arguments; raise ValidationError on
        nonsense."""
        status = (args.get("status") or "").strip().lower()
        if status and status not in dict(STATUS_CHOICES) and not (_is_number(status) and 100 <= int(status) <= 599):
            raise ValidationError("status", "must be ok, error, 2xx, 4xx, 5xx or an HTTP status code")
        raw_limit = (args.get("limit") or "").strip()
        if raw_limit and not _is_number(raw_limit):
            raise ValidationError("limit", "must be a positive integer")
        limit = min(int(raw_limit), default_limit) if raw_limit else default_limit
        return cls(model=(args.get("model") or "").strip()[:256], backend=(args.get("backend") or "").strip()[:32],
                   node=(args.get("node") or "").strip()[:64], status=status, limit=max(limit, 1))

    @property
    def active(self) -> bool:
        return bool(self.model or self.backend or self.node or self.status)


def query_log(session: Session, flt: LogFilter) -> list[RequestLog]:
    """Newest first, filtered: model matches as a substring, backend and node exactly, status as a class or code."""
    query = select(RequestLog).order_by(RequestLog.id.desc()).limit(flt.limit)
    if flt.model:
        escaped = flt.model.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(RequestLog.model.ilike(f"%{escaped}%", escape="\\"))
    if flt.backend:
        query = query.where(RequestLog.backend == flt.backend)
    if flt.node:
        query = query.where(RequestLog.node == flt.node)
    if flt.status == "ok":
        query = query.where(RequestLog.status < 400, RequestLog.error.is_(None))
    elif flt.status == "error":
        query = query.where(or_(RequestLog.status >= 400, RequestLog.error.is_not(None)))
    elif flt.status in ("2xx", "4xx", "5xx"):
        low = int(flt.status[0]) * 100
        query = query.where(RequestLog.status >= low, RequestLog.status < low + 100)
    elif flt.status:
        query = query.where(RequestLog.status == int(flt.status))
    return list(session.execute(query).scalars())


def backends_seen(session: Session) -> list[str]:
    """Backend labels in the log (ollama, airllm, ollama-fallback, ...), for the filter's choices."""
    found = set(session.execute(select(RequestLog.backend).distinct()).scalars())
    return sorted(found | {"ollama", "airllm", "ollama-fallback"})


def nodes_seen(session: Session) -> list[str]:
    """Node names in the log and in the pool, for the filter's choices."""
    found = set(session.execute(select(RequestLog.node).distinct()).scalars())
    found |= set(session.execute(select(OllamaNode.name)).scalars())
    return sorted(name for name in found if name)


def clear_log(session: Session) -> int:
    """Delete every log row; statistics are kept. Returns how many rows went."""
    return session.execute(delete(RequestLog)).rowcount or 0


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; the log stores UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def tokens_per_s(row: RequestLog) -> float | None:
    if row.eval_count and row.eval_duration_ns:
        return row.eval_count / (row.eval_duration_ns / 1e9)
    return None


def row_as_dict(row: RequestLog) -> dict:
    """The JSON twin's shape of one log row."""
    speed = tokens_per_s(row)
    return {
        "id": row.id, "time": utc(row.created_at).isoformat(), "client": row.client, "method": row.method,
        "endpoint": row.endpoint, "model": row.model, "requested_model": row.requested_model,
        "category": row.category, "backend": row.backend, "node": row.node, "route_reason": row.route_reason,
        "status": row.status,
        "duration_ms": row.duration_ms, "ttfb_ms": row.ttfb_ms, "streamed": row.streamed,
        "prompt_tokens": row.prompt_tokens, "eval_count": row.eval_count, "eval_duration_ns": row.eval_duration_ns,
        "tokens_per_s": None if speed is None else round(speed, 2), "error": row.error, "note": row.note,
        "prompt": row.prompt,
    }
