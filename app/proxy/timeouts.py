"""How long the server waits for a client's request, and whom it gives up on when connection slots run out.

Pure rules; app/proxy/server.py applies them to gevent's pywsgi handler.
- Headers: CLIENT_HEADER_TIMEOUT_S from the first byte of a request (for a connection's first request, from the
  accept) to the blank line. An idle keep-alive connection waits KEEPALIVE_SECONDS for its next request.
- Body: no read may wait longer than CLIENT_BODY_TIMEOUT_S (nginx's client_body_timeout), and the body as a
  whole may take one CLIENT_BODY_TIMEOUT_S more than 1 MiB per CLIENT_BODY_TIMEOUT_S, so a trickle of a byte
  a minute cannot hold a slot forever while a multi-GB blob upload is never cut.
- Slots: when a worker's last connection slot is taken, the connection that has waited longest on its client
  (at least EVICT_AFTER_S: idle keep-alive, slow headers or a stalled body) is given up on, so new clients
  (and /health) get in during a slow-client flood instead of waiting for the timeouts.
"""
from __future__ import annotations

BODY_RATE_BYTES = 1 << 20  # per CLIENT_BODY_TIMEOUT_S, on average
EVICT_AFTER_S = 1.0


def body_read_budget(elapsed: float, received: int, timeout: float) -> float:
    """Seconds the next body read may wait: `timeout` unless the whole body's allowance binds sooner (then less;
    0 or less means the body is already too slow)."""
    allowed = timeout * (2 + received // BODY_RATE_BYTES)
    return min(timeout, allowed - elapsed)


def pick_victim(waiting: dict, server, now: float, min_wait: float = EVICT_AFTER_S):
    """The key in `waiting` ({key: (server, waiting_since)}) of `server` that has waited longest, if long enough."""
    best, best_since = None, now - min_wait
    for key, (owner, since) in waiting.items():
        if owner is server and since <= best_since:
            best, best_since = key, since
    return best


def next_check_in(waiting: dict, server, now: float, min_wait: float = EVICT_AFTER_S) -> float | None:
    """Seconds until the oldest waiter of `server` becomes a victim; None if nobody of it waits."""
    oldest = min((since for owner, since in waiting.values() if owner is server), default=None)
    return None if oldest is None else max(0.0, oldest + min_wait - now)
