"""The engine: the AirLLM server's parts wired together, and the few calls the views make.

- tokenizers.TokenizerCache: tokenizers and downloads, outside the device, each holding a place in line;
- lifecycle.ModelLifecycle: the resident model (load, unload, keep_alive);
- batcher.Batcher: the waiting line and the device thread that runs continuous batching (sweep.py, sampler.py);
- reporting: /health and /api/queue.
"""

from __future__ import annotations

import atexit
import threading
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from . import reporting
from .admission import Handle
from .batcher import Batcher
from .config import Settings
from .generation import Sequence
from .lifecycle import ModelLifecycle
from .options import Sampling
from .registry import ModelEntry, Registry
from .tokenizers import TokenizerCache


class Engine:
    """Owns the tokenizer cache, the model lifecycle and the batcher."""

    def __init__(self, settings: Settings, registry: Registry):
        self.settings = settings
        self.registry = registry
        self.history: deque[dict] = deque(maxlen=20)
        self.stats = {"completed": 0, "canceled": 0, "failed": 0}
        self._stats_lock = threading.Lock()
        self.tokenizers = TokenizerCache(lambda: self.batcher.hold_place())
        self.lifecycle = ModelLifecycle(settings, self.tokenizers)
        self.batcher = Batcher(settings, self.lifecycle, self._record)
        atexit.register(self.shutdown)

    # ---- what the views call ------------------------------------------------------------------

    def tokenizer(self, entry: ModelEntry) -> tuple[object, threading.Lock]:
        """The entry's tokenizer and its lock (loaded once per weights version, holding a place in line)."""
        return self.tokenizers.get(entry)

    def admit(self, entry: ModelEntry, prompt_ids: list[int], sampling: Sampling, keep_alive: float,
              gone: Callable[[], bool], kind: str, t0: float) -> Handle:
        """Queue a validated generation; use the handle as a context manager until the reply owns it."""
        tokenizer, lock = self.tokenizer(entry)
        max_new = sampling.num_ctx - len(prompt_ids)
        if sampling.num_predict >= 0:
            max_new = min(max_new, sampling.num_predict)
        sequence = Sequence(prompt_ids, sampling, max_new, tokenizer, lock)
        return self.batcher.submit(Handle(entry, kind, keep_alive, gone, sequence, t0))

    def load_only(self, entry: ModelEntry, keep_alive: float, gone: Callable[[], bool]) -> int:
        """An empty prompt: load the model (keep_alive 0: unload it); return the load time in ns."""
        handle = self.batcher.submit(Handle(entry, "load" if keep_alive > 0 else "unload", keep_alive, gone))
        with handle:
            for _ in handle.pieces(None):
                pass
        return handle.load_ns

    # ---- the resident model (also used directly by tests on an idle engine) -------------------------

    @property
    def resident(self):
        """The loaded model, or None."""
        return self.lifecycle.resident

    @property
    def device(self) -> str:
        """The device models run on."""
        return self.lifecycle.device

    def vram(self) -> dict | None:
        """VRAM used/total on CUDA, None on the CPU."""
        return self.lifecycle.vram()

    def expires_at(self) -> datetime | None:
        """When the resident model unloads."""
        return self.lifecycle.expires_at()

    def load_if_needed(self, entry: ModelEntry) -> int:
        """Load ``entry`` now (only on an idle engine: the batcher owns the model while serving)."""
        return self.lifecycle.load_if_needed(entry)

    def unload(self) -> None:
        """Unload now (only on an idle engine)."""
        self.lifecycle.unload()

    # ---- reporting ------------------------------------------------------------------------------

    def _record(self, handle: Handle) -> None:
        """After a request: count it and keep it in the recent history."""
        outcome = handle.outcome
        if handle.sequence is None:
            return
        reason = outcome.done_reason if outcome else ("error" if handle.error else "canceled")
        key = {"canceled": "canceled", "error": "failed"}.get(reason, "completed")
        with self._stats_lock:
            self.stats[key] += 1
            self.history.append({
                "id": handle.id, "model": handle.model, "kind": handle.kind, "done_reason": reason,
                "eval_count": outcome.eval_count if outcome else 0,
                "prompt_eval_count": outcome.prompt_eval_count if outcome else 0,
                "queue_wait_s": round((handle.started_at or handle.enqueued_at) - handle.enqueued_at, 3),
                "total_s": round(handle.total_ns() / 1e9, 3),
                "finished_at": datetime.now(timezone.utc).isoformat(),
                "error": outcome.error if outcome else handle.error,
            })

    def health(self) -> dict:
        """Everything /health reports."""
        return reporting.health(self)

    def queue_report(self) -> dict:
        """GET /api/queue."""
        return reporting.queue_report(self.batcher, self.lifecycle)

    def shutdown(self) -> None:
        """Stop the device thread."""
        self.batcher.shutdown()
