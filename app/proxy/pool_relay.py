"""Sending one Ollama attempt to the pool: choose the node (app.routing.place), wait in the proxy's line when every
loaded copy is busy, and fail over to the next node before the first byte.

Failover replays the request body from memory: refused, timed out, 5xx (Ollama's instant 503 "server busy"
included) and a 404 for a model the node was thought to list all move on to the next candidate. Nothing is
retried once the response head has been accepted: from then on the bytes go to the client.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ..fleet.line import ClientLeft, LineFull
from ..fleet.pool import Pool, Ticket
from ..routing import LOADED, SEND, NodeConfig, normalize_model_name
from .errors import is_model_not_found
from .upstream import ClientGone, UpstreamClient, UpstreamError, UpstreamResponse

log = logging.getLogger(__name__)
ERROR_BODY_LIMIT = 4096  # an error reply read to decide on failover (Ollama's are small JSON)


@dataclass
class PoolOutcome:
    """What sending to the pool came to: a response to relay, or a failure (`status`, `message`)."""

    upstream: UpstreamResponse | None = None
    ticket: Ticket | None = None
    node: NodeConfig | None = None
    reason: str | None = None
    status: int = 0
    message: str = ""
    retry_after: int | None = None
    tried: list = field(default_factory=list)  # (node name, why it was passed over)
    failure_kind: str | None = None  # connect | timeout | 5xx | not_found: the last node's failure

    @property
    def notes(self) -> str:
        return "; ".join(f"retry after {name}: {why}" for name, why in self.tried)


def placement_for(pool: Pool, key: str | None, inference: bool, client_alive):
    """Candidates for a request, as (node, reason) pairs, and the first one's ticket when it is inference.

    Inference may wait in the line (LineFull and ClientLeft are raised)."""
    single = pool.single_node()
    if single is not None:  # one node: nothing to choose, and no waiting (Ollama's own queue, as without a pool)
        node, reason = single.config, LOADED if key in single.loaded else "only node"
        return [(node, reason)], pool.acquire(node, key, cold=reason != LOADED) if inference and key else None
    if key is None:
        views = pool.up_views()
        ranked = sorted(views, key=lambda v: (v.state != "up", v.config.id))
        return [(v.config, "any node") for v in ranked], None
    if not inference:
        placement = pool.placement(key)
        candidates = placement.candidates or tuple((v.config, "any node") for v in pool.up_views())
        return list(candidates), None
    placement, ticket = pool.claim(key)
    if placement.action != SEND:
        model_slot = pool.board.model_slot(key)

        def replan():
            again = pool.claim(key, waiting_self=1)
            return again if again[0].action == SEND else None

        placement, ticket = pool.line.wait(key, model_slot, replan, client_alive)
    return list(placement.candidates), ticket


def send(pool: Pool, client: UpstreamClient, method: str, target: str, headers: list, body, body_length,
         model: str | None, inference: bool, client_alive, head_timeout: float | None,
         only: list | None = None) -> PoolOutcome:
    """Send to the best node, then the next ones, until one answers with a head worth relaying."""
    key = normalize_model_name(model) if model else None
    outcome = PoolOutcome()
    try:
        if only:
            candidates, claimed = list(only), None
        else:
            candidates, claimed = placement_for(pool, key, inference and key is not None, client_alive)
    except LineFull as exc:
        outcome.status, outcome.message, outcome.retry_after = 503, exc.message, exc.retry_after
        return outcome
    except ClientLeft:
        outcome.status, outcome.message = 499, "client disconnected while waiting for a free slot"
        return outcome
    replayable = body is None or isinstance(body, (bytes, bytearray))
    for index, (node, reason) in enumerate(candidates):
        final = index == len(candidates) - 1 or not replayable
        if index == 0 and claimed is not None:
            ticket = claimed
        else:
            ticket = pool.acquire(node, key, cold=reason != LOADED) if inference and key else None
        try:
            upstream = client.request(method, node.host, node.port, target, headers, body, body_length,
                                      client_alive=client_alive, head_timeout=head_timeout)
            passed_over = _pass_over(pool, node, upstream, final)
        except ClientGone:
            _release(pool, ticket)
            outcome.status, outcome.message = 499, "client disconnected"
            return outcome
        except UpstreamError as exc:  # also while reading an error reply to decide on failover
            _release(pool, ticket)
            pool.node_failed(node, exc.message)
            who = "Ollama" if pool.node_count <= 1 else f"Ollama node {node.name}"
            why = f"cannot reach {who} at {node.backend.url}: {exc.message}" if exc.kind == "connect" \
                else f"{who} at {node.backend.url} failed: {exc.message}"
            outcome.tried.append((node.name, exc.message))
            outcome.failure_kind = "timeout" if exc.kind == "timeout" else "connect" \
                if exc.kind in ("connect", "closed") else "5xx"
            if final:
                outcome.status = 504 if exc.kind == "timeout" and len(outcome.tried) == 1 else 502
                outcome.message = why if len(outcome.tried) == 1 else _all_failed(outcome.tried)
                return outcome
            continue
        if passed_over is not None:
            _release(pool, ticket)
            upstream.close()
            outcome.tried.append((node.name, passed_over))
            outcome.failure_kind = "not_found" if upstream.status == 404 else "5xx"
            continue
        if ticket is not None:
            pool.answered(ticket)
        outcome.upstream, outcome.ticket, outcome.node, outcome.reason = upstream, ticket, node, reason
        if upstream.status == 404:
            pool.model_missing(node)
        return outcome
    outcome.status, outcome.message = 502, _all_failed(outcome.tried) if outcome.tried else "no Ollama node"
    return outcome


def _pass_over(pool: Pool, node: NodeConfig, upstream: UpstreamResponse, final: bool) -> str | None:
    """Why this head should go to the next node instead of the client (None: relay it)."""
    status = upstream.status
    if status < 500 and status != 404:
        return None
    if status >= 500:
        body = upstream.read()[:ERROR_BODY_LIMIT]
        upstream.replay(body)
        why = f"HTTP {status}" + (": server busy" if b"server busy" in body else "")
        pool.node_failed(node, why)  # 503 busy counts too: a full node must not look idle
        return None if final else why
    body = upstream.read()[:ERROR_BODY_LIMIT]
    upstream.replay(body)
    if final or not is_model_not_found(body):
        return None
    pool.model_missing(node)
    return "model not found there"


def _release(pool: Pool, ticket: Ticket | None) -> None:
    if ticket is not None:
        pool.release(ticket, ok=False)


def _all_failed(tried: list) -> str:
    return "every Ollama node failed: " + "; ".join(f"{name}: {why}" for name, why in tried)
