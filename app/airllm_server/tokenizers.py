"""Tokenizers, loaded once per model version outside the device, and hub downloads.

A load (or a download) takes a place in the waiting line while it runs (``hold_place``), so a burst of first
requests is bounded by AIRLLM_MAX_QUEUE like any other wait, and one lock per model makes the others wait for the
first load instead of each running their own.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Callable

from .config import hub_is_offline
from .errors import ApiError
from .quiet import airllm_output_to_logging
from .registry import ModelEntry, remote_code_refusal
from .runtime import first_line, heavy_imports


class TokenizerCache:
    """name -> (version key, tokenizer, lock for using it)."""

    def __init__(self, hold_place: Callable[[], AbstractContextManager]):
        self._hold_place = hold_place
        self._cache: dict[str, tuple[str, object, threading.Lock]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _cached(self, entry: ModelEntry, key: str):
        with self._guard:
            cached = self._cache.get(entry.name)
        return (cached[1], cached[2]) if cached and cached[0] == key else None

    def _model_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def get(self, entry: ModelEntry) -> tuple[object, threading.Lock]:
        """The entry's tokenizer and the lock to use it under; loads (or downloads) it the first time."""
        key = entry.info.digest if entry.info else entry.source
        hit = self._cached(entry, key)
        if hit:
            return hit
        with self._hold_place(), self._model_lock(entry.name):
            if entry.path is None:
                download(entry)
            key = entry.info.digest if entry.info else entry.source
            hit = self._cached(entry, key)
            if hit:                                    # loaded by the request we waited for
                return hit
            tok = self._load(entry)
            lock = threading.Lock()
            with self._guard:
                self._cache[entry.name] = (key, tok, lock)
            return tok, lock

    @staticmethod
    def _load(entry: ModelEntry):
        refusal = remote_code_refusal(entry)
        if refusal:
            raise ApiError(500, refusal)
        heavy_imports()
        from transformers import AutoTokenizer

        try:
            with airllm_output_to_logging():
                return AutoTokenizer.from_pretrained(str(entry.path), trust_remote_code=entry.trust_remote_code)
        except Exception as exc:  # noqa: BLE001 - any failure here is a broken model folder
            raise ApiError(500, f"failed to load the tokenizer of model '{entry.name}': {first_line(exc)}") from None


def download(entry: ModelEntry) -> None:
    """Fetch a hub-id entry into the local cache (only with hub access on); the caller holds the model's lock."""
    if entry.path is not None:
        return
    if hub_is_offline():
        raise ApiError(500, f"model '{entry.name}' is not downloaded and HF_HUB_OFFLINE=1")
    from huggingface_hub import snapshot_download

    try:
        with airllm_output_to_logging():
            entry.path = Path(snapshot_download(entry.hub_id))
        entry.refresh()
    except Exception as exc:  # noqa: BLE001 - hub and folder errors alike
        entry.path = None
        raise ApiError(500, f"failed to download model '{entry.name}' ({entry.hub_id}): {exc}") from None
