"""Per-model shard folders: unique per model and per weights version, so changed weights re-split.

airllm silently reuses whatever it finds in a shard folder, so two models (or two versions of one model) sharing
a folder would serve the wrong weights. The folder name carries a hash of the checkpoint's identity.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from .checkpoint import CheckpointInfo

log = logging.getLogger(__name__)
MARKER = ".airllm-server.json"


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "_", name.lower()).strip("_") or "model"


def shard_folder(root: Path, name: str, info: CheckpointInfo, compression: str | None) -> Path:
    """The folder for this model's shards, keyed on name, path, weights (sizes, mtimes) and compression."""
    key = info.digest[:16] + (f"-{compression}" if compression else "")
    return root / f"{_slug(name)}-{key}"


def mark(folder: Path, name: str, info: CheckpointInfo, compression: str | None) -> None:
    """Record whose shards these are, so stale folders can be recognised (and only ours removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text(json.dumps({"model": name, "source": str(info.path), "digest": info.digest,
                                             "compression": compression}), encoding="utf-8")


def remove_stale(root: Path, name: str, keep: Path) -> list[Path]:
    """Delete this model's older shard folders (marked by us, same model name) and return what went."""
    removed = []
    if not root.is_dir():
        return removed
    for folder in root.glob(f"{_slug(name)}-*"):
        if folder == keep or not (folder / MARKER).is_file():
            continue
        try:
            owner = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError):
            continue
        if owner == name:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
            log.info("removed stale shards of %s at %s", name, folder)
    return removed
