"""Scheduling decisions as pure functions: admission, who joins the running batch, model switches, ETAs.

The rule for several models (docs/airllm-server.md): the line is first come, first served, except that requests
for the resident model may overtake a waiting request that needs another model (or the device to itself, like an
unload) and join the running batch; once that request has waited ``switch_after_s``, only requests that arrived
before it may still join, so the batch drains and the model switches. A steady stream for one model therefore
delays another model by at most ``switch_after_s`` plus the longest generation then running.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    """What a decision needs to know about one waiting request."""

    id: int
    model: str
    joins: bool            # a generation (or a load of an already resident model): can share a running batch
    enqueued_at: float
    steps: int = 1         # sweeps it will take at most (its token limit)
    prompt_tokens: int = 0


def fits(w: Waiting, resident: str | None) -> bool:
    """Whether the request can run alongside the resident model's batch."""
    return w.joins and w.model == resident


def admits(waiting: int, loading: int, active: int, max_batch: int, max_waiting: int) -> bool:
    """Whether one more request may wait: at most ``max_waiting`` beyond the free places in the batch.

    Tokenizer loads and downloads in progress (``loading``) count as waiting requests.
    """
    room = max(max_batch - active, 0)
    return waiting + loading - room < max_waiting


def joiners(waiting: list[Waiting], resident: str | None, active: int, max_batch: int, now: float,
            switch_after_s: float) -> list[Waiting]:
    """The waiting requests that join the running batch at the next step, in arrival order."""
    free = max_batch - active
    if free <= 0:
        return []
    barrier = next((w for w in waiting if not fits(w, resident)), None)
    cutoff = math.inf
    if barrier is not None and (active == 0 or now - barrier.enqueued_at >= switch_after_s):
        cutoff = barrier.enqueued_at
    return [w for w in waiting if fits(w, resident) and w.enqueued_at < cutoff][:free]


def switch_to(waiting: list[Waiting], resident: str | None, active: int) -> Waiting | None:
    """With the batch drained, the head of the line if it needs the device to itself (a load, unload or switch)."""
    if active or not waiting or fits(waiting[0], resident):
        return None
    return waiting[0]


def fit_step_cost(samples: list[tuple[int, float]]) -> tuple[float, float]:
    """Sweep time as ``fixed + per_token * tokens``, least squares over (tokens fed, seconds) samples.

    With one batch size seen so far (or a fit that comes out negative) the cost is taken as flat: the sweep's cost
    is mostly moving the layers, which does not grow with the batch.
    """
    if not samples:
        return 0.0, 0.0
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    var = sum((x - mean_x) ** 2 for x, _ in samples)
    if var == 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / var
    fixed = mean_y - slope * mean_x
    if slope < 0 or fixed < 0:
        return mean_y, 0.0
    return fixed, slope


def estimate_starts(running_left: list[int], waiting: list[Waiting], resident: str | None, max_batch: int,
                    now: float, switch_after_s: float, cost: tuple[float, float], switch_s: float) -> dict[int, float]:
    """Seconds until each waiting request starts, by playing the scheduling rule forward.

    ``running_left``: sweeps each running sequence still needs at most; ``cost``: fit_step_cost's (fixed,
    per_token); ``switch_s``: what a model load took last time. Every request is assumed to run to its limit.
    """
    fixed, per_token = cost
    slots, pending, model, t, eta = [s for s in running_left if s > 0], list(waiting), resident, 0.0, {}
    while pending:
        head = switch_to(pending, model, len(slots))
        if head is not None:
            pending.remove(head)
            eta[head.id] = t
            t += switch_s
            model = head.model
            if head.joins:
                slots.append(head.steps)
                t += per_token * head.prompt_tokens
            continue
        join = joiners(pending, model, len(slots), max_batch, now + t, switch_after_s)
        if join:
            for w in join:
                pending.remove(w)
                eta[w.id] = t
                slots.append(w.steps)
                t += per_token * w.prompt_tokens
            continue
        if not slots:       # nothing runs and nothing may start: cannot happen with a consistent line
            break
        k = min(slots)
        t += k * (fixed + per_token * len(slots))
        slots = [s - k for s in slots if s > k]
    return eta


def retry_after(waiting: int, mean_request_s: float | None) -> int:
    """Retry-After seconds for a 503: the waiting line's expected drain time, within [1, 600]."""
    average = mean_request_s if mean_request_s else 5.0
    return max(1, min(600, round(average * (waiting + 1))))
