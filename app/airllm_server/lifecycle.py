"""The resident model's life: load (with shards, the layer cache and the sweep driver), keep_alive, unload.

Only the batcher's thread calls ``load_if_needed`` and ``unload`` while serving (tests may call them directly on
an idle engine), so the model object never sees two users at once.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import layer_cache, shards
from .checkpoint import CheckpointError
from .config import Settings
from .errors import ApiError
from .quiet import airllm_output_to_logging
from .registry import ModelEntry, remote_code_refusal
from .runtime import describe_load_error, freeze_heap, resolve_device, resolve_dtype, thaw_heap
from .tokenizers import TokenizerCache, download

log = logging.getLogger(__name__)
FOREVER = datetime(2318, 1, 1, tzinfo=timezone.utc)   # what "never expires" looks like in /api/ps


@dataclass
class Resident:
    """The loaded model and what /api/ps and /health say about it."""

    entry: ModelEntry
    model: object
    sweeper: object
    tokenizer: object
    eos_ids: set
    device: str
    dtype: str
    shard_folder: Path
    loaded_at: datetime
    load_seconds: float
    digest: str
    expires_at: float = math.inf            # time.monotonic() deadline
    context_length: int = 0
    cache: "layer_cache.LayerCache | None" = None
    cache_decision: "layer_cache.Decision | None" = None


class ModelLifecycle:
    """Loads one model at a time onto the device and unloads it on switch or keep_alive expiry."""

    def __init__(self, settings: Settings, tokenizers: TokenizerCache):
        self.settings = settings
        self.tokenizers = tokenizers
        self.resident: Resident | None = None
        self.state = "ready"                 # ready | loading | error
        self.last_error: str | None = None
        self.last_load_seconds = 0.0
        self.stats = {"loads": 0, "unloads": 0}
        self._device: str | None = None

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

    def load_if_needed(self, entry: ModelEntry) -> int:
        """Make ``entry`` the resident model; return the load time in ns (0 if it already was)."""
        download(entry)
        try:
            info = entry.refresh()
        except (CheckpointError, OSError) as exc:
            self.last_error = f"model '{entry.name}' cannot be loaded: {exc}"
            raise ApiError(500, self.last_error) from None
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
        self.last_load_seconds = time.perf_counter() - started
        return int(self.last_load_seconds * 1e9)

    def _load(self, entry: ModelEntry) -> Resident:
        info, device = entry.info, self.device
        refusal = remote_code_refusal(entry)
        if refusal:
            self.last_error = refusal
            raise ApiError(500, refusal)
        folder = shards.shard_folder(entry.shards_dir or self.settings.shards_dir, entry.name, info, entry.compression)
        log.info("loading %s from %s on %s (shards in %s)", entry.name, entry.path, device, folder)
        freeze_heap()   # also makes airllm's per-layer gc.collect() cheap while it splits the checkpoint
        started = time.perf_counter()
        try:
            import torch

            from .sweep import Sweeper

            with airllm_output_to_logging():
                from airllm import AutoModel

                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats(device)
                model = AutoModel.from_pretrained(
                    str(entry.path), device=device, dtype=resolve_dtype(entry.dtype, device),
                    layer_shards_saving_path=str(folder), compression=entry.compression,
                    prefetching=device.startswith("cuda") and entry.compression is None,
                    max_seq_len=entry.max_context or self.settings.num_ctx)
            sweeper = Sweeper(model)
        except Exception as exc:  # noqa: BLE001 - airllm raises anything from OSError to SafetensorError
            log.exception("loading %s failed", entry.name)
            self.last_error = describe_load_error(entry.name, exc)
            thaw_heap()
            raise ApiError(500, self.last_error) from None
        shards.mark(folder, entry.name, info, entry.compression)
        shards.remove_stale(entry.shards_dir or self.settings.shards_dir, entry.name, keep=folder)
        tokenizer, _ = self.tokenizers.get(entry)
        from .generation import eos_ids

        resident = Resident(entry=entry, model=model, sweeper=sweeper, tokenizer=tokenizer,
                            eos_ids=eos_ids(getattr(model, "generation_config", None), tokenizer), device=device,
                            dtype=str(model.running_dtype).removeprefix("torch."), shard_folder=folder,
                            loaded_at=datetime.now(timezone.utc), load_seconds=time.perf_counter() - started,
                            digest=info.digest)
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

    def unload(self) -> None:
        """Drop the resident model and give its memory back."""
        resident, self.resident = self.resident, None
        if resident is None:
            return
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

    # ---- keep_alive -----------------------------------------------------------------------------

    def keep_for(self, keep_alive: float) -> None:
        """Unload the resident model ``keep_alive`` seconds from now (inf: never, 0: as soon as it is idle)."""
        if self.resident is not None:
            self.resident.expires_at = time.monotonic() + keep_alive

    def seconds_to_expiry(self) -> float:
        """How long until the resident model's keep_alive runs out (inf without one)."""
        if self.resident is None:
            return math.inf
        return self.resident.expires_at - time.monotonic()

    def expires_at(self) -> datetime | None:
        """The resident model's unload time as a wall-clock datetime."""
        if self.resident is None:
            return None
        if math.isinf(self.resident.expires_at):
            return FOREVER
        return datetime.now(timezone.utc) + timedelta(seconds=self.seconds_to_expiry())

    def reap_if_expired(self) -> bool:
        """Unload the resident model if its keep_alive has passed (the caller knows nobody uses it)."""
        if self.resident is None or self.seconds_to_expiry() > 0:
            return False
        log.info("keep_alive expired for %s", self.resident.entry.name)
        self.unload()
        return True
