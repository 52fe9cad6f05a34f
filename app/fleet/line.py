"""The proxy's waiting line: requests for a model whose loaded copies are all at capacity wait here, not in
Ollama's queue, and go to the first node that frees a slot (or to a new copy, when the rule decides so).

FIFO per model within a worker: only the head re-plans, on every slot freed in this worker and every POLL_SECONDS
(slots freed by other workers are seen through the shared board). The bound (PROXY_MAX_QUEUE) counts the waiting
requests of all workers.
"""
from __future__ import annotations

import collections
import threading
import time

POLL_SECONDS = 0.02
CLIENT_CHECK_SECONDS = 1.0


class LineFull(Exception):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ClientLeft(Exception):
    """The client closed its connection while waiting."""


class WaitingLine:
    def __init__(self, board, max_queue: int = 64, timeout_s: float = 120.0):
        self.board = board
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self._lines: dict[str, collections.deque] = {}

    def wait(self, key: str, model_slot: int, replan, client_alive=None):
        """Wait for `replan()` (called at the head of the line) to return a placement that sends; return it."""
        self.board.add_waiting(model_slot, 1)
        if self.board.total_waiting() > self.max_queue:  # counted after joining: two workers can't both slip in
            self.board.add_waiting(model_slot, -1)
            raise LineFull(f"the proxy's waiting line is full ({self.max_queue} requests, PROXY_MAX_QUEUE)", 5)
        wake = threading.Event()
        line = self._lines.setdefault(key, collections.deque())
        line.append(wake)
        started = time.monotonic()
        next_client_check = started + CLIENT_CHECK_SECONDS
        try:
            while True:
                if line[0] is wake:
                    placement = replan()
                    if placement is not None:
                        return placement
                wake.wait(POLL_SECONDS)
                wake.clear()
                now = time.monotonic()
                if now - started >= self.timeout_s:
                    raise LineFull(f"no node freed a slot for {key} within {self.timeout_s:g} s "
                                   "(PROXY_QUEUE_TIMEOUT_S)", max(1, int(self.timeout_s / 10)))
                if client_alive is not None and now >= next_client_check:
                    next_client_check = now + CLIENT_CHECK_SECONDS
                    if not client_alive():
                        raise ClientLeft()
        finally:
            self.board.add_waiting(model_slot, -1)
            line.remove(wake)
            if line:
                line[0].set()  # the next in line re-plans at once
            else:
                self._lines.pop(key, None)

    def slot_freed(self, key: str) -> None:
        line = self._lines.get(key)
        if line:
            line[0].set()
