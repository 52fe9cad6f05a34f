"""The optional layer cache: keep each streamed layer's tensors in host RAM after the first pass.

airllm reads every layer's safetensors shard from disk on every token (and on CUDA copies it into freshly pinned
memory each time). On an H100 that re-reading is ~1.3 of the 1.34 s an 8B-shaped model takes per token, while the
same bytes copied from pinned host RAM take ~0.3 s (docs/airllm.md). With the cache on:

- the first pass loads each layer as airllm does and keeps the state dict (on CUDA pinned with ``pin_memory()``);
- later passes get the kept tensors back without touching the files (a shallow copy of the dict, so airllm may
  rebuild it freely; the tensors themselves are never modified: modules get them as parameters and are moved back
  to ``meta`` after each layer);
- on CUDA, pinned tensors are copied to the device with ``non_blocking=True`` before airllm places them. That is
  safe: the copy is queued on the stream the layer then runs on, and the pinned source lives in the cache until
  ``clear()`` (which synchronises first).

The wrapping is per model object (instance attributes over airllm's ``load_layer_to_cpu`` and
``move_layer_to_device``), never a patch of the installed package, and it works with airllm's prefetch thread (which
calls ``load_layer_to_cpu`` for the next layer): the dict is guarded by a lock.

Imports torch: only the engine imports this module, after the heavy imports.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("off", "auto", "on")
AUTO_FRACTION = 0.5     # auto: the shards may take at most this share of MemAvailable


def parse_mode(value, what: str) -> str:
    """``off|auto|on`` (booleans and their usual spellings accepted); raise ValueError naming ``what``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    text = str(value).strip().lower()
    text = {"true": "on", "1": "on", "yes": "on", "false": "off", "0": "off", "no": "off"}.get(text, text)
    if text not in MODES:
        raise ValueError(f"{what} must be one of off, auto, on; got {value!r}")
    return text


def mem_available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (psutil where there is no /proc), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return int(psutil.virtual_memory().available)


def shard_bytes(checkpoint_path: str | Path) -> int:
    """What the cache would hold: the size of airllm's per-layer shard files."""
    return sum(f.stat().st_size for f in Path(checkpoint_path).glob("*.safetensors") if f.is_file())


@dataclass(frozen=True)
class Decision:
    """Whether the cache is on for a model, and why (logged and shown in /health)."""

    enabled: bool
    mode: str
    reason: str


def decide(mode: str, need_bytes: int, available_bytes: int | None, max_bytes: int | None,
           compression: str | None = None) -> Decision:
    """The cache rule.

    - ``off``: never.
    - compression (4bit/8bit): never; airllm dequantises while loading, onto the GPU, so there is nothing to keep.
    - ``auto``: when the shards take at most half of MemAvailable (and at most ``max_bytes`` when set).
    - ``on``: when they fit in MemAvailable at all (and in ``max_bytes`` when set); beyond that the server would be
      killed for memory, so it reads the files as usual and says why.
    """
    gib = 2 ** 30
    need = f"{need_bytes / gib:.2f} GiB of shards"
    if mode == "off":
        return Decision(False, mode, "off by configuration")
    if compression:
        return Decision(False, mode, f"not used with {compression} compression (airllm dequantises while loading)")
    if max_bytes is not None and need_bytes > max_bytes:
        return Decision(False, mode, f"{need} exceed AIRLLM_LAYER_CACHE_MAX_GB ({max_bytes / gib:.2f} GiB)")
    if available_bytes is None:
        if mode == "on" or max_bytes is not None:
            return Decision(True, mode, f"{need}; available RAM unknown")
        return Decision(False, mode, "available RAM unknown; set AIRLLM_LAYER_CACHE=on or AIRLLM_LAYER_CACHE_MAX_GB")
    have = f"{available_bytes / gib:.2f} GiB available"
    if mode == "on":
        if need_bytes > available_bytes:
            return Decision(False, mode, f"{need} do not fit in RAM ({have})")
        return Decision(True, mode, f"{need}, {have}")
    limit = available_bytes * AUTO_FRACTION
    if need_bytes > limit:
        return Decision(False, mode, f"{need} exceed {AUTO_FRACTION:.0%} of RAM ({have})")
    return Decision(True, mode, f"{need} within {AUTO_FRACTION:.0%} of RAM ({have})")


class LayerCache:
    """Per-model cache of layer state dicts, installed on one airllm model object."""

    def __init__(self, device: str):
        import torch

        self._torch = torch
        self.device = device
        self.pin = device.startswith("cuda") and torch.cuda.is_available()
        self._layers: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._model = None
        self._closed = False
        self.bytes = 0
        self.pinned_bytes = 0
        self.hits = 0
        self.misses = 0
        self._pin_failed = False

    # ---- installing on a model ------------------------------------------------------------------

    def install(self, model) -> "LayerCache":
        """Put the cache in front of this model's layer loader (and, on CUDA, its device placement)."""
        original_load = model.load_layer_to_cpu          # bound methods of airllm's class
        original_move = model.move_layer_to_device

        def load_layer_to_cpu(layer_name):
            with self._lock:
                kept = self._layers.get(layer_name)
                if kept is not None:
                    self.hits += 1
                    return dict(kept)
            state = original_load(layer_name)
            if self.pin:
                state = self._pinned(state)
            self._keep(layer_name, state)
            return dict(state)

        def move_layer_to_device(state_dict):
            if self.pin and self._can_premove(model):
                device = model.running_device
                state_dict = {k: v.to(device, non_blocking=True) if v.is_pinned() else v
                              for k, v in state_dict.items()}
            return original_move(state_dict)

        model.load_layer_to_cpu = load_layer_to_cpu
        model.move_layer_to_device = move_layer_to_device
        self._model = model
        return self

    @staticmethod
    def _can_premove(model) -> bool:
        """Only plain checkpoints: quantizers and CPU-resident tables place their tensors themselves."""
        return model.hf_quantizer is None and not getattr(model, "_cpu_resident_params", None)

    def _pinned(self, state: dict) -> dict:
        """Pinned copies (airllm may already have pinned small layers when prefetching)."""
        if self._pin_failed:
            return state
        try:
            return {k: v if v.is_pinned() else v.pin_memory() for k, v in state.items()}
        except RuntimeError as exc:     # out of page-locked memory: keep pageable tensors, still no file reads
            self._pin_failed = True
            log.warning("layer cache: pinning failed (%s); keeping further layers in pageable RAM", exc)
            return state

    def _keep(self, layer_name: str, state: dict) -> None:
        size = sum(v.numel() * v.element_size() for v in state.values())
        pinned = sum(v.numel() * v.element_size() for v in state.values() if self.pin and v.is_pinned())
        with self._lock:
            self.misses += 1
            if self._closed or layer_name in self._layers:
                return
            self._layers[layer_name] = state
            self.bytes += size
            self.pinned_bytes += pinned

    # ---- reporting and freeing ------------------------------------------------------------------

    @property
    def layers(self) -> int:
        """How many modules are held."""
        return len(self._layers)

    def snapshot(self) -> dict:
        """What /health shows."""
        with self._lock:
            return {"layers": len(self._layers), "bytes": self.bytes, "pinned_bytes": self.pinned_bytes,
                    "pinned": self.pin and not self._pin_failed, "hits": self.hits, "misses": self.misses}

    def clear(self) -> None:
        """Drop every kept tensor (unpinning pinned memory) and take the wrappers off the model."""
        torch = self._torch
        if self.pin:
            torch.cuda.synchronize()            # no queued copy may still read a pinned source
        with self._lock:
            self._closed = True
            self._layers.clear()
            self.bytes = self.pinned_bytes = 0
        model, self._model = self._model, None
        if model is not None:
            for name in ("load_layer_to_cpu", "move_layer_to_device"):
                model.__dict__.pop(name, None)
        if self.pin:
            empty_host_cache = getattr(torch._C, "_host_emptyCache", None)
            if empty_host_cache is not None:    # torch keeps freed pinned blocks for reuse; give them back
                empty_host_cache()


def max_bytes_from_gb(value: float) -> int | None:
    """AIRLLM_LAYER_CACHE_MAX_GB in bytes; 0 or less means no cap of its own."""
    return int(value * 2 ** 30) if value and value > 0 else None


def describe(decision: Decision, cache: LayerCache | None) -> dict:
    """/health's view of a resident model's cache."""
    out = {"enabled": cache is not None, "mode": decision.mode, "reason": decision.reason,
           "bytes": 0, "layers": 0, "pinned": False}
    if cache is not None:
        out.update(cache.snapshot())
    return out

