"""The heavy stack, imported once on first use, and the process-wide knobs around it (device, dtype, GC, memory).

torch, transformers and airllm are imported here on demand, never at module import, so importing the package (or
the proxy's ``app``) stays light.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading

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
        from .quiet import airllm_output_to_logging

        with airllm_output_to_logging():
            import torch  # noqa: F401
            import transformers  # noqa: F401
            from transformers import AutoTokenizer  # noqa: F401

            import airllm  # noqa: F401

            from . import sampler, sweep  # noqa: F401
        _imported = True


def resolve_device(setting: str) -> str:
    """AIRLLM_DEVICE if set, else the first CUDA device when there is one, else the CPU."""
    heavy_imports()
    import torch

    if setting:
        return setting
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str | None, device: str):
    """The dtype to run with: the entry's, else float32 on CPU (half precision is slow there), else the model's."""
    import torch

    if dtype and dtype != "auto":
        return getattr(torch, dtype)
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


def first_line(exc: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def peak_rss_bytes() -> int:
    """The process's peak resident set size."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int | None:
    """The process's resident set size now (Linux), None elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
