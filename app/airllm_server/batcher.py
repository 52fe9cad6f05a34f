"""The sweep scheduler: requests in, tokens out. One thread owns the model and runs continuous batching.

Each loop: drop waiting requests whose client left, then either switch models (the batch is empty and the head of
the line needs another model, a load or an unload), or let newcomers join (policy.joiners) and run one sweep in
which the newcomers' prompt passes share each layer load with the running sequences' next tokens. A sequence that
finishes, hits a stop, reaches its limit or loses its client leaves after that sweep; the others carry on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Callable

from . import policy
from .admission import Handle
from .config import Settings
from .errors import BUSY, ApiError, ClientGone
from .lifecycle import ModelLifecycle
from .runtime import first_line

log = logging.getLogger(__name__)


class Batcher:
    """The waiting line, the running batch and the device thread that serves them."""

    def __init__(self, settings: Settings, lifecycle: ModelLifecycle, on_done: Callable[[Handle], None]):
        self.max_batch, self.max_waiting = settings.max_batch, settings.max_queue
        self.switch_after_s = settings.switch_after_s
        self.lifecycle, self.on_done = lifecycle, on_done
        self.cond = threading.Condition()
        self.waiting: list[Handle] = []
        self.active: list[Handle] = []
        self.loading = 0                         # tokenizer loads / downloads holding a place
        self.samples: deque[tuple[int, float]] = deque(maxlen=50)     # (tokens fed, seconds) per sweep
        self.durations: deque[float] = deque(maxlen=20)
        self.progress = {"module": None, "modules": None, "steps": 0, "last_step_s": None}
        self.dropped = self.rejected = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="airllm-batcher", daemon=True)
        self._thread.start()

    # ---- request threads ------------------------------------------------------------------------

    def _reject(self) -> ApiError:
        self.rejected += 1
        mean = sum(self.durations) / len(self.durations) if self.durations else None
        return ApiError(503, BUSY, {"Retry-After": str(policy.retry_after(len(self.waiting), mean))})

    def submit(self, handle: Handle) -> Handle:
        """Put a validated request in line, or raise the 503 when the line is full."""
        with self.cond:
            if not policy.admits(len(self.waiting), self.loading, len(self.active), self.max_batch, self.max_waiting):
                raise self._reject()
            handle.on_close = self.wake
            self.waiting.append(handle)
            self.cond.notify_all()
        return handle

    @contextmanager
    def hold_place(self):
        """A place in the waiting line for a tokenizer load or download (503 when the line is full)."""
        with self.cond:
            if not policy.admits(len(self.waiting), self.loading, len(self.active), self.max_batch, self.max_waiting):
                raise self._reject()
            self.loading += 1
        try:
            yield
        finally:
            with self.cond:
                self.loading -= 1
                self.cond.notify_all()

    def wake(self) -> None:
        """Something changed (a request closed): look again now."""
        with self.cond:
            self.cond.notify_all()

    def idle(self) -> bool:
        """Nobody runs or waits."""
        with self.cond:
            return not self.active and not self.waiting

    # ---- the device thread ----------------------------------------------------------------------

    def _views(self) -> list[policy.Waiting]:
        return [policy.Waiting(h.id, h.model, h.joins, h.enqueued_at,
                               h.sequence.max_new_tokens if h.sequence else 1,
                               len(h.sequence.prompt_ids) if h.sequence else 0) for h in self.waiting]

    def _resident_name(self) -> str | None:
        resident = self.lifecycle.resident
        return resident.entry.name if resident else None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._turn()
            except Exception:  # noqa: BLE001 - the device thread must survive for the next requests
                log.exception("batcher turn failed")

    def _turn(self) -> None:
        with self.cond:
            for h in [h for h in self.waiting if h.is_gone()]:
                self.waiting.remove(h)
                self.dropped += 1
                h.post("error", ClientGone())
            resident = self._resident_name()
            views = self._views()
            head = policy.switch_to(views, resident, len(self.active))
            joining = [] if head else policy.joiners(views, resident, len(self.active), self.max_batch,
                                                     time.monotonic(), self.switch_after_s)
            if head is None and not joining and not self.active:
                if not self.waiting and self.lifecycle.reap_if_expired():
                    return
                # Poll now and then: waiting clients may leave, keep_alive may run out.
                self.cond.wait(min(max(self.lifecycle.seconds_to_expiry(), 0.01), 0.1 if self.waiting else 1.0))
                return
            chosen = {w.id for w in ([head] if head else joining)}
            picked = [h for h in self.waiting if h.id in chosen]
            for h in picked:
                self.waiting.remove(h)
                h.started_at = time.monotonic()
                h.state = "loading" if head else "running"
        if head is not None:
            self._exclusive(picked[0])
        else:
            self._step(picked)

    def _exclusive(self, handle: Handle) -> None:
        """With the batch empty: load (or unload) for the head of the line; a generation then joins the batch."""
        try:
            if handle.kind == "unload":
                resident = self.lifecycle.resident
                if resident is not None and resident.entry.name == handle.model:
                    self.lifecycle.unload()
                self._complete(handle, ("loaded", 0))
                return
            handle.load_ns = self.lifecycle.load_if_needed(handle.entry)
            if handle.load_ns:
                self.samples.clear()         # sweep times of the previous model say nothing about this one
        except ApiError as exc:
            self._complete(handle, ("error", exc))
            return
        if handle.sequence is None:
            self.lifecycle.keep_for(handle.keep_alive)
            self._complete(handle, ("loaded", handle.load_ns))
            return
        handle.state = "running"
        self._step([handle])

    def _complete(self, handle: Handle, event: tuple) -> None:
        if event[0] == "error":
            handle.error = event[1].message if isinstance(event[1], ApiError) else str(event[1])
        handle.state = "done"
        handle.finished_at = time.monotonic()
        handle.post(*event)
        self.on_done(handle)

    def _join(self, handle: Handle) -> bool:
        """Make a newcomer's sequence ready for its prompt pass; False when it is already complete."""
        from .sampler import TokenChooser
        from .sweep import Slot

        if handle.sequence is None:         # a load of the resident model: nothing to run
            self.lifecycle.keep_for(handle.keep_alive)
            self._complete(handle, ("loaded", 0))
            return False
        seq = handle.sequence
        seq.eos_ids = self.lifecycle.resident.eos_ids
        seq.slot = Slot(new_ids=list(seq.prompt_ids), position=0)
        seq.chooser = TokenChooser(seq.sampling)
        seq.started = time.perf_counter()
        if seq.max_new_tokens <= 0:         # num_predict 0, or a prompt that fills the context
            self._finish(handle, "length")
            return False
        return True

    def _finish(self, handle: Handle, reason: str | None = None, error: str | None = None) -> None:
        handle.outcome = handle.sequence.end(reason, error)
        handle.sequence.slot = None          # the KV cache goes now, not when the reply is read
        if handle in self.active:
            with self.cond:
                self.active.remove(handle)
        if handle.started_at is not None:
            self.durations.append(time.monotonic() - handle.started_at)
        self.lifecycle.keep_for(handle.keep_alive)
        handle.state = "done"
        handle.finished_at = time.monotonic()
        self.on_done(handle)

    def _step(self, newcomers: list[Handle]) -> None:
        """One sweep over the running batch plus the newcomers' prompt passes."""
        from .sweep import SweepCanceled

        joined = [h for h in newcomers if self._join(h)]
        with self.cond:
            self.active.extend(joined)
        for h in [h for h in self.active if h.is_gone()]:
            self._finish(h, "canceled")
        batch = list(self.active)
        if not batch:
            return
        resident = self.lifecycle.resident
        slots = [h.sequence.slot for h in batch]
        tokens = sum(len(s.new_ids) for s in slots)
        started = time.perf_counter()
        try:
            logits = resident.sweeper.run(slots, lambda i: self._before_module(i, batch, resident.sweeper))
        except SweepCanceled:
            for h in batch:
                self._finish(h, "canceled")
            return
        except Exception as exc:  # noqa: BLE001 - reported to every client of the sweep
            log.exception("sweep failed")
            for h in batch:
                self._finish(h, "error", first_line(exc))
            return
        elapsed = time.perf_counter() - started
        self.samples.append((tokens, elapsed))
        self.progress.update(steps=self.progress["steps"] + 1, last_step_s=elapsed, module=None)
        for h, row in zip(batch, logits):
            seq = h.sequence
            seq.slot.position += len(seq.slot.new_ids)
            token = seq.chooser.choose(row, seq.history)
            seq.slot.new_ids = [token]
            if seq.accept(token):
                self._finish(h)
            elif h.is_gone():
                self._finish(h, "canceled")

    def _before_module(self, index: int, batch: list[Handle], sweeper) -> None:
        """Progress for /api/queue; abandon the sweep when every client in it has left."""
        from .sweep import SweepCanceled

        self.progress.update(module=index, modules=sweeper.module_count)
        if all(h.is_gone() for h in batch):
            raise SweepCanceled()

    # ---- reporting --------------------------------------------------------------------------------

    def snapshot(self) -> dict:
        """A consistent copy of the line, the batch and the sweep measurements."""
        with self.cond:
            return {"waiting": list(self.waiting), "active": list(self.active), "views": self._views(),
                    "samples": list(self.samples), "progress": dict(self.progress), "dropped": self.dropped,
                    "rejected": self.rejected, "loading": self.loading}

    def shutdown(self) -> None:
        """Stop the device thread."""
        self._stop.set()
        self.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
