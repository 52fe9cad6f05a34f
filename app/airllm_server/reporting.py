"""What /health and /api/queue say: the running batch, the waiting line with ETAs, the sweep's progress."""

from __future__ import annotations

import time

from . import layer_cache, policy
from .admission import Handle
from .runtime import peak_rss_bytes, rss_bytes


def _s_per_token(handle: Handle) -> float | None:
    seq = handle.sequence
    if seq is None or len(seq.generated) < 2:
        return None
    return round((seq.last_token_at - seq.first_token_at) / (len(seq.generated) - 1), 4)


def running_row(handle: Handle, now: float) -> dict:
    """One request of the running batch."""
    seq = handle.sequence
    return {"id": handle.id, "model": handle.model, "kind": handle.kind, "state": handle.state,
            "prompt_tokens": len(seq.prompt_ids) if seq else 0, "tokens": len(seq.generated) if seq else 0,
            "max_tokens": seq.max_new_tokens if seq else 0, "s_per_token": _s_per_token(handle),
            "waited_s": round((handle.started_at or now) - handle.enqueued_at, 3),
            "running_s": round(now - handle.started_at, 3) if handle.started_at else 0.0}


def waiting_rows(snap: dict, resident: str | None, max_batch: int, switch_after_s: float, switch_s: float,
                 now: float) -> list[dict]:
    """The waiting line in order (position 1 is next), each with an ETA in seconds from now."""
    left = [h.sequence.max_new_tokens - len(h.sequence.generated) for h in snap["active"] if h.sequence]
    etas = policy.estimate_starts(left, snap["views"], resident, max_batch, now, switch_after_s,
                                  policy.fit_step_cost(snap["samples"]), switch_s)
    rows = []
    for position, h in enumerate(snap["waiting"], 1):
        eta = etas.get(h.id)
        rows.append({"id": h.id, "model": h.model, "kind": h.kind, "position": position,
                     "waited_s": round(now - h.enqueued_at, 3),
                     "prompt_tokens": len(h.sequence.prompt_ids) if h.sequence else 0,
                     "eta_s": round(eta, 2) if eta is not None and snap["samples"] else None})
    return rows


def queue_report(batcher, lifecycle) -> dict:
    """GET /api/queue: the resident model, the sweep, the running batch and the waiting line with ETAs."""
    snap = batcher.snapshot()
    now = time.monotonic()
    resident = lifecycle.resident
    name = resident.entry.name if resident else None
    fixed, per_token = policy.fit_step_cost(snap["samples"])
    progress = snap["progress"]
    step_s = progress["last_step_s"]
    batch = [running_row(h, now) for h in snap["active"]]
    return {
        "resident_model": name,
        "state": lifecycle.state if not snap["active"] else "generating",
        "sweep": {"module": progress["module"], "modules": progress["modules"], "steps": progress["steps"],
                  "last_step_s": round(step_s, 4) if step_s else None,
                  "steps_per_s": round(1 / step_s, 2) if step_s else None,
                  "fixed_s": round(fixed, 4), "per_token_s": round(per_token, 5)},
        "batch": batch, "max_batch": batcher.max_batch,
        "waiting": waiting_rows(snap, name, batcher.max_batch, batcher.switch_after_s, lifecycle.last_load_seconds,
                                now),
        "max_waiting": batcher.max_waiting, "loading_tokenizers": snap["loading"],
        "dropped": snap["dropped"], "rejected": snap["rejected"],
    }


def queue_summary(report: dict) -> dict:
    """/health's queue: the same facts, with ``running`` the oldest running request (None when idle)."""
    batch = report["batch"]
    return {"running": batch[0] if batch else None, "batch": batch, "batch_size": len(batch),
            "max_batch": report["max_batch"], "waiting": report["waiting"], "depth": len(report["waiting"]),
            "max_waiting": report["max_waiting"], "dropped": report["dropped"], "rejected": report["rejected"]}


def model_report(lifecycle) -> dict | None:
    """/health's view of the resident model."""
    resident = lifecycle.resident
    if resident is None:
        return None
    expires = lifecycle.expires_at()
    return {"name": resident.entry.name, "device": resident.device, "dtype": resident.dtype,
            "loaded_at": resident.loaded_at.isoformat(), "load_seconds": round(resident.load_seconds, 3),
            "expires_at": expires.isoformat() if expires else None, "shard_folder": str(resident.shard_folder),
            "layer_cache": layer_cache.describe(resident.cache_decision, resident.cache)
            if resident.cache_decision else None}


def health(engine) -> dict:
    """Everything /health reports."""
    lifecycle = engine.lifecycle
    resident = lifecycle.resident
    return {
        "status": lifecycle.state if not (lifecycle.state == "error" and resident) else "ready",
        "device": lifecycle.device,
        "resident_model": resident.entry.name if resident else None,
        "model": model_report(lifecycle),
        "queue": queue_summary(queue_report(engine.batcher, lifecycle)),
        "vram": lifecycle.vram(),
        "ram_rss_bytes": rss_bytes(),
        "ram_peak_rss_bytes": peak_rss_bytes(),
        "models": sorted(e.name for e in engine.registry),
        "broken": [{"name": b.name, "source": b.source, "error": b.error} for b in engine.registry.broken],
        "last_error": lifecycle.last_error,
        "stats": dict(engine.stats, **lifecycle.stats),
        "recent": list(engine.history),
    }
