"""The category distribution of virtual-model requests: a Recorder sink and the query the dashboard shows."""
from __future__ import annotations

import collections
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..models import CategoryCount


class CategoryStatsSink:
    """Adds each flushed batch's virtual-model requests to per-day counters (sums: safe across workers)."""

    def write(self, session: Session, records: list) -> None:
        counts: collections.Counter = collections.Counter()
        for r in records:
            if r.category and r.requested_model:
                day = datetime.fromtimestamp(r.started_wall, timezone.utc).strftime("%Y-%m-%d")
                counts[(day, r.category[:32], (r.model or "")[:256])] += 1
        for (day, category, model), n in counts.items():
            done = session.execute(update(CategoryCount).where(
                CategoryCount.day == day, CategoryCount.category == category, CategoryCount.model == model)
                .values(requests=CategoryCount.requests + n)).rowcount
            if not done:
                session.add(CategoryCount(day=day, category=category, model=model, requests=n))
                session.flush()


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
