"""The engine: one resident airllm model, loaded lazily, used by one generation at a time.

torch, transformers and airllm are imported on first use, never at module import, so importing the package (or
the proxy's ``app``) stays light.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from . import layer_cache, shards
from .checkpoint import CheckpointError
from .config import Settings, hub_is_offline
from .errors import ApiError
from .options import Sampling
from .quiet import airllm_output_to_logging
from .registry import ModelEntry, Registry
from .scheduler import DeviceQueue, Ticket

log = logging.getLogger(__name__)
FOREVER = datetime(2318, 1, 1, tzinfo=timezone.utc)   # what "never expires" looks like in /api/ps


_import_lock = threading.Lock()
_imported = False


def heavy_imports() -> None:
    """Import torch, transformers and airllm once, under a lock.

    transformers' lazy module is not safe to import for the first time from two threads at once (the loser gets
    ``ImportError: cannot import name 'AutoTokenizer'``), and the first requests arrive concurrently.
    """
    global _imported
    with _import_lock:
        if _imported:
            return
        with airllm_output_to_logging():
            import torch  # noqa: F401
            import transformers  # noqa: F401
            from transformers import AutoTokenizer, GenerationConfig, LogitsProcessor  # noqa: F401

            import airllm  # noqa: F401

            from . import generation  # noqa: F401
        _imported = True


def resolve_device(setting: str) -> str:
    """AIRLLM_DEVICE if set, else the first CUDA device when there is one, else the CPU."""
    heavy_imports()
    import torch

    if setting:
        return setting
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_dtype(entry: ModelEntry, device: str):
    """The dtype to run with: the entry's, else float32 on CPU (half precision is slow there), else the model's."""
    import torch

    if entry.dtype and entry.dtype != "auto":
        return getattr(torch, entry.dtype)
    if not device.startswith("cuda"):
        return torch.float32
    return None    # airllm picks the checkpoint's own dtype


def freeze_heap() -> None:
    """The GC fix: move every live object out of the collector's sight.

    airllm calls gc.collect() after every layer; with torch and transformers loaded each call walks ~340k objects
    (~180 ms). Frozen objects are skipped, which makes a token ~250x cheaper on a small model (docs/airllm.md).
    """
    gc.collect()
    gc.freeze()


def thaw_heap() -> None:
    """Undo freeze_heap so an unloaded model's objects can be collected, then freeze the survivors again."""
    gc.unfreeze()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    gc.freeze()


def describe_load_error(name: str, exc: BaseException) -> str:
    """Turn what airllm/transformers raise on a bad folder into one line naming the cause."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "does not recognize this architecture" in str(exc) or "Unrecognized model" in str(exc):
        cause = f"unknown architecture: {text}"
    elif type(exc).__name__ == "SafetensorError":
        cause = f"corrupt or truncated weights: {text}"
    elif "Repo id must be" in str(exc) or type(exc).__name__ == "HFValidationError":
        cause = f"folder not found or has no weights: {text}"
    elif isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        cause = f"out of memory: {text}"
    else:
        cause = f"{type(exc).__name__}: {text}"
    return f"failed to load model '{name}': {cause}"


@dataclass
class Resident:
    """The loaded model and what /api/ps and /health say about it."""

    entry: ModelEntry
    model: object
    tokenizer: object
    tokenizer_lock: threading.Lock
    device: str
    dtype: str
    shard_folder: Path
    loaded_at: datetime
    load_seconds: float
    digest: str
    expires_at: float = math.inf            # time.monotonic() deadline
    context_length: int = 0
    hooks: list = field(default_factory=list)
    cache: "layer_cache.LayerCache | None" = None
    cache_decision: "layer_cache.Decision | None" = None


class Running:
    """A started generation holding the device; ``finish`` releases everything and is safe to call twice."""

    def __init__(self, engine: "Engine", ticket: Ticket, job, entry: ModelEntry, load_ns: int, keep_alive: float,
                 t0: float):
        self.engine, self.ticket, self.job, self.entry = engine, ticket, job, entry
        self.load_ns, self.keep_alive, self.t0 = load_ns, keep_alive, t0
        self.outcome = None
        self._finished = False
        self._lock = threading.Lock()

    def texts(self):
        """Yield text pieces as tokens are decoded; afterwards ``outcome`` holds the ending."""
        for kind, value in self.job.stream():
            if kind == "text":
                yield value
            else:
                self.outcome = value

    def collect(self) -> str:
        """Run to the end and return the whole text."""
        return "".join(self.texts())

    def total_ns(self) -> int:
        """Nanoseconds since the request arrived."""
        return int((time.perf_counter() - self.t0) * 1e9)

    def finish(self) -> None:
        """Stop the worker thread (if the client left early), then give the device back."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
        try:
            self.job.stop()
            if self.outcome is None:
                while not self.job.events.empty():
                    kind, value = self.job.events.get()
                    if kind == "done":
                        self.outcome = value
        finally:
            self.engine._release(self)


class Engine:
    """Owns the device queue, the resident model, tokenizers and the idle unloader."""

    def __init__(self, settings: Settings, registry: Registry):
        self.settings = settings
        self.registry = registry
        self.queue = DeviceQueue(settings.max_queue)
        self.resident: Resident | None = None
        self.state = "ready"
        self.last_error: str | None = None
        self.history: deque[dict] = deque(maxlen=20)
        self.stats = {"completed": 0, "canceled": 0, "failed": 0, "loads": 0, "unloads": 0}
        self._device: str | None = None
        self._tokenizers: dict[str, tuple[str, object, threading.Lock]] = {}
        self._tokenizer_lock = threading.Lock()
        self._active_cancel: tuple[threading.Event, Callable[[], bool]] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="airllm-keepalive", daemon=True)
        self._reaper.start()
        atexit.register(self.shutdown)

    # ---- device -------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        """The device models run on (resolved once; importing torch the first time)."""
        if self._device is None:
            self._device = resolve_device(self.settings.device)
        return self._device

    def vram(self) -> dict | None:
        """VRAM used/total on a CUDA device, None on the CPU."""
        if not self.device.startswith("cuda"):
            return None
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(self.device))
        return {"used_bytes": total - free, "total_bytes": total,
                "allocated_bytes": torch.cuda.memory_allocated(self.device),
                "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device)}

    # ---- tokenizers (light, shared, outside the device queue) ---------------------------------

    def tokenizer(self, entry: ModelEntry) -> tuple[object, threading.Lock]:
        """The entry's tokenizer, loaded once per weights version, for templating and counting outside the queue."""
        key = entry.info.digest if entry.info else entry.source
        with self._tokenizer_lock:
            cached = self._tokenizers.get(entry.name)
            if cached and cached[0] == key:
                return cached[1], cached[2]
        if entry.path is None:
            self._download(entry)
        heavy_imports()
        from transformers import AutoTokenizer

        try:
            with airllm_output_to_logging():
                tok = AutoTokenizer.from_pretrained(str(entry.path), trust_remote_code=True)
        except Exception as exc:  # noqa: BLE001 - any failure here is a broken model folder
            raise ApiError(500, f"failed to load the tokenizer of model '{entry.name}': "
                                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}")
        lock = threading.Lock()
        with self._tokenizer_lock:
            self._tokenizers[entry.name] = (key, tok, lock)
        return tok, lock

    def _download(self, entry: ModelEntry) -> None:
        if hub_is_offline():
            raise ApiError(500, f"model '{entry.name}' is not downloaded and HF_HUB_OFFLINE=1")
        from huggingface_hub import snapshot_download

        try:
            with airllm_output_to_logging():
                entry.path = Path(snapshot_download(entry.hub_id))
            entry.refresh()
        except Exception as exc:  # noqa: BLE001 - hub and folder errors alike
            entry.path = None
            raise ApiError(500, f"failed to download model '{entry.name}' ({entry.hub_id}): {exc}")

    # ---- lifecycle ------------------------------------------------------------------------------

    def load_if_needed(self, entry: ModelEntry) -> int:
        """Make ``entry`` the resident model (caller holds the device); return the load time in ns (0 if resident)."""
        if entry.path is None:
            self._download(entry)
        try:
            info = entry.refresh()
        except (CheckpointError, OSError) as exc:
            self.last_error = f"model '{entry.name}' cannot be loaded: {exc}"
            raise ApiError(500, self.last_error)
        if self.resident and self.resident.entry.name == entry.name and self.resident.digest == info.digest:
            return 0
        if self.resident:
            self.unload()
        started = time.perf_counter()
        self.state = "loading"
        try:
            self.resident = self._load(entry)
        except ApiError:
            self.state = "error"
            raise
        self.state = "ready"
        self.last_error = None
        self.stats["loads"] += 1
        return int((time.perf_counter() - started) * 1e9)

    def _load(self, entry: ModelEntry) -> Resident:
        info = entry.info
        device = self.device
        folder = shards.shard_folder(entry.shards_dir or self.settings.shards_dir, entry.name, info, entry.compression)
        log.info("loading %s from %s on %s (shards in %s)", entry.name, entry.path, device, folder)
        freeze_heap()   # also makes airllm's per-layer gc.collect() cheap while it splits the checkpoint
        started = time.perf_counter()
        try:
            import torch

            with airllm_output_to_logging():
                from airllm import AutoModel

                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(device)
                model = AutoModel.from_pretrained(
                    str(entry.path), device=device, dtype=resolve_dtype(entry, device),
                    layer_shards_saving_path=str(folder), compression=entry.compression,
                    prefetching=device.startswith("cuda") and entry.compression is None,
                    max_seq_len=entry.max_context or self.settings.num_ctx)
        except Exception as exc:  # noqa: BLE001 - airllm raises anything from OSError to SafetensorError
            log.exception("loading %s failed", entry.name)
            self.last_error = describe_load_error(entry.name, exc)
            thaw_heap()
            raise ApiError(500, self.last_error) from None
        shards.mark(folder, entry.name, info, entry.compression)
        shards.remove_stale(entry.shards_dir or self.settings.shards_dir, entry.name, keep=folder)
        tokenizer, tok_lock = self.tokenizer(entry)
        resident = Resident(entry=entry, model=model, tokenizer=tokenizer, tokenizer_lock=tok_lock, device=device,
                            dtype=str(model.running_dtype).removeprefix("torch."), shard_folder=folder,
                            loaded_at=datetime.now(timezone.utc), load_seconds=time.perf_counter() - started,
                            digest=info.digest)
        resident.hooks = self._install_cancel_hooks(model)
        resident.cache_decision, resident.cache = self._layer_cache(entry, model, device)
        freeze_heap()
        log.info("loaded %s in %.2f s (%s, %s)", entry.name, resident.load_seconds, device, resident.dtype)
        return resident

    def _layer_cache(self, entry: ModelEntry, model, device: str):
        """Decide on the layer cache for this model (logged) and install it when on."""
        mode = entry.layer_cache or self.settings.layer_cache
        need = layer_cache.shard_bytes(model.checkpoint_path)
        decision = layer_cache.decide(mode, need, layer_cache.mem_available_bytes(),
                                      layer_cache.max_bytes_from_gb(self.settings.layer_cache_max_gb),
                                      entry.compression)
        log.info("layer cache for %s: %s (%s)", entry.name, "on" if decision.enabled else "off", decision.reason)
        if not decision.enabled:
            return decision, None
        return decision, layer_cache.LayerCache(device).install(model)

    def _install_cancel_hooks(self, model) -> list:
        """Check the active request's cancel flag before each streamed layer, so a cancel takes one layer, not a token."""
        from .generation import GenerationCanceled

        def check(module, args):
            active = self._active_cancel
            if active is not None and (active[0].is_set() or active[1]()):
                active[0].set()
                raise GenerationCanceled()

        return [layer.register_forward_pre_hook(check, prepend=True) for layer in getattr(model, "layers", [])]

    def unload(self) -> None:
        """Drop the resident model and give its memory back (caller holds the device)."""
        resident, self.resident = self.resident, None
        if resident is None:
            return
        for hook in resident.hooks:
            hook.remove()
        executor = getattr(resident.model, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=True)
        if resident.cache is not None:
            resident.cache.clear()      # frees (and unpins) the kept layers before the heap is thawed
        name = resident.entry.name
        del resident
        thaw_heap()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
        self.stats["unloads"] += 1
        log.info("unloaded %s", name)

    # ---- requests -------------------------------------------------------------------------------

    def load_only(self, entry: ModelEntry, keep_alive: float, gone: Callable[[], bool]) -> int:
        """An empty prompt: load the model (or unload it for keep_alive 0); return the load time in ns."""
        ticket = self.queue.enter(entry.name, "load" if keep_alive > 0 else "unload")
        try:
            self.queue.wait_turn(ticket, gone)
            if keep_alive <= 0:
                if self.resident and self.resident.entry.name == entry.name:
                    self.unload()
                return 0
            load_ns = self.load_if_needed(entry)
            self._set_expiry(keep_alive)
            return load_ns
        finally:
            self.queue.leave(ticket)

    def start(self, entry: ModelEntry, prompt_ids: list[int], sampling: Sampling, keep_alive: float,
              gone: Callable[[], bool], kind: str, t0: float) -> Running:
        """Queue for the device, load the model, and start generating; errors come back as ApiError."""
        from .generation import GenerationJob

        ticket = self.queue.enter(entry.name, kind)
        try:
            self.queue.wait_turn(ticket, gone)
            load_ns = self.load_if_needed(entry)
            resident = self.resident
            resident.context_length = sampling.num_ctx
            max_new = sampling.num_ctx - len(prompt_ids)
            if sampling.num_predict >= 0:
                max_new = min(max_new, sampling.num_predict)
            cancel = threading.Event()
            job = GenerationJob(resident.model, resident.tokenizer, resident.tokenizer_lock, prompt_ids, sampling,
                                max_new, cancel, gone)
            self._active_cancel = (cancel, gone)
            job.start()
        except BaseException:
            self.queue.leave(ticket)
            raise
        return Running(self, ticket, job, entry, load_ns, keep_alive, t0)

    def _release(self, running: Running) -> None:
        """After a generation: record it, apply keep_alive, free the device."""
        try:
            self._active_cancel = None
            outcome = running.outcome
            reason = outcome.done_reason if outcome else "canceled"
            key = {"canceled": "canceled", "error": "failed"}.get(reason, "completed")
            self.stats[key] += 1
            self.history.append({
                "id": running.ticket.id, "model": running.entry.name, "kind": running.ticket.kind,
                "done_reason": reason, "eval_count": outcome.eval_count if outcome else 0,
                "prompt_eval_count": outcome.prompt_eval_count if outcome else 0,
                "queue_wait_s": round((running.ticket.started_at or 0) - running.ticket.enqueued_at, 3),
                "total_s": round(running.total_ns() / 1e9, 3),
                "finished_at": datetime.now(timezone.utc).isoformat(),
                "error": outcome.error if outcome else None,
            })
            if running.keep_alive <= 0:
                self.unload()
            else:
                self._set_expiry(running.keep_alive)
        finally:
            self.queue.leave(running.ticket)

    # ---- keep_alive -----------------------------------------------------------------------------

    def _set_expiry(self, keep_alive: float) -> None:
        if self.resident is not None:
            self.resident.expires_at = time.monotonic() + keep_alive
            self._wake.set()

    def expires_at(self) -> datetime | None:
        """The resident model's unload time as a wall-clock datetime."""
        if self.resident is None:
            return None
        if math.isinf(self.resident.expires_at):
            return FOREVER
        return datetime.now(timezone.utc) + timedelta(seconds=self.resident.expires_at - time.monotonic())

    def _reap(self) -> None:
        """Unload the resident model once its keep_alive has passed and nobody is using or waiting for it."""
        while not self._stop.is_set():
            resident = self.resident
            delay = 1.0 if resident is None or math.isinf(resident.expires_at) else \
                min(max(resident.expires_at - time.monotonic(), 0.05), 1.0)
            self._wake.wait(delay)
            self._wake.clear()
            resident = self.resident
            if self._stop.is_set() or resident is None or time.monotonic() < resident.expires_at:
                continue
            ticket = self.queue.try_enter_idle(resident.entry.name, "unload")
            if ticket is None:
                continue
            try:
                if self.resident is resident and time.monotonic() >= resident.expires_at:
                    log.info("keep_alive expired for %s", resident.entry.name)
                    self.unload()
            except Exception:  # noqa: BLE001 - the reaper must survive to unload later models
                log.exception("idle unload failed")
            finally:
                self.queue.leave(ticket)

    def shutdown(self) -> None:
        """Stop the idle unloader thread."""
        self._stop.set()
        self._wake.set()
        if self._reaper.is_alive() and self._reaper is not threading.current_thread():
            self._reaper.join(timeout=5)

    # ---- reporting ------------------------------------------------------------------------------

    def health(self) -> dict:
        """Everything /health reports."""
        resident = self.resident
        model = None
        if resident is not None:
            expires = self.expires_at()
            model = {"name": resident.entry.name, "device": resident.device, "dtype": resident.dtype,
                     "loaded_at": resident.loaded_at.isoformat(), "load_seconds": round(resident.load_seconds, 3),
                     "expires_at": expires.isoformat() if expires else None,
                     "shard_folder": str(resident.shard_folder),
                     "layer_cache": layer_cache.describe(resident.cache_decision, resident.cache)
                     if resident.cache_decision else None}
        return {
            "status": self.state if not (self.state == "error" and resident) else "ready",
            "device": self.device,
            "resident_model": resident.entry.name if resident else None,
            "model": model,
            "queue": self.queue.snapshot(),
            "vram": self.vram(),
            "ram_rss_bytes": _rss_bytes(),
            "ram_peak_rss_bytes": _peak_rss_bytes(),
            "models": sorted(e.name for e in self.registry),
            "broken": [{"name": b.name, "source": b.source, "error": b.error} for b in self.registry.broken],
            "last_error": self.last_error,
            "stats": dict(self.stats),
            "recent": list(self.history),
        }


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            import os

            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
