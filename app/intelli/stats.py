"""The category distribution of virtual-model requests: a Recorder sink and the query the dashboard shows."""
from __future__ import annotations

import collections
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import CategoryCount
from ..telemetry.stats import upsert_sums

KEYS = ("day", "category", "model")


class CategoryStatsSink:
    """Adds each flushed batch's virtual-model requests to per-day counters, with the statistics' upsert (sums:
    safe across workers and replicas, rows in key order so concurrent flushes cannot deadlock)."""

    def write(self, session: Session, records: list) -> None:
        counts: collections.Counter = collections.Counter()
        for r in records:
            if r.category and r.requested_model:
                day = datetime.fromtimestamp(r.started_wall, timezone.utc).strftime("%Y-%m-%d")
                counts[(day, r.category[:32], (r.model or "")[:256])] += 1
        rows = [{"day": day, "category": category, "model": model, "requests": n}
                for (day, category, model), n in counts.items()]
        upsert_sums(session, CategoryCount, rows, KEYS, summed=("requests",))


def category_distribution(session: Session, days: int = 7) -> dict:
    """`{"total", "categories": [{category, requests, share, models: [{model, requests}]}]}` for the last days."""
    since = (datetime.now(timezone.utc) - timedelta(days=days - 1)).strftime("%Y-%m-%d")
    rows = session.execute(select(CategoryCount.category, CategoryCount.model, func.sum(CategoryCount.requests))
                           .where(CategoryCount.day >= since)
                           .group_by(CategoryCount.category, CategoryCount.model)).all()
    per: dict[str, dict] = {}
    for category, model, n in rows:
        entry = per.setdefault(category, {"category": category, "requests": 0, "models": []})
        entry["requests"] += int(n)
        entry["models"].append({"model": model, "requests": int(n)})
    total = sum(e["requests"] for e in per.values())
    out = sorted(per.values(), key=lambda e: (-e["requests"], e["category"]))
    for entry in out:
        entry["share"] = entry["requests"] / total if total else 0.0
        entry["models"].sort(key=lambda m: (-m["requests"], m["model"]))
    return {"days": days, "total": total, "categories": out}
