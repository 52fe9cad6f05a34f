"""The model registry: Ollama-style names mapped to checkpoint folders (or hub ids), validated at start.

Two sources, merged (the file wins on a name clash):
- AIRLLM_MODELS="llama3.1:70b=/models/llama70b,tiny=/m/tiny"
- AIRLLM_MODELS_FILE: JSON (``.json``) or TOML (``.toml``) with per-model options, e.g. in TOML::

      [models."llama3.1:70b"]
      path = "/models/llama70b"
      dtype = "bfloat16"          # auto | float32 | float16 | bfloat16
      compression = "4bit"        # 4bit | 8bit, needs bitsandbytes
      context_length = 8192
      shards_dir = "/fast/shards" # default: AIRLLM_SHARDS_DIR
      layer_cache = "on"          # off | auto | on (default: AIRLLM_LAYER_CACHE)
      trust_remote_code = true    # let the folder's own Python code run (auto_map); off by default

A broken entry is logged, listed by /health and left out; the others are still served.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint
from .checkpoint import CheckpointError, CheckpointInfo
from .config import hub_is_offline
from .layer_cache import parse_mode

log = logging.getLogger(__name__)

DTYPES = ("auto", "float32", "float16", "bfloat16")
COMPRESSIONS = ("4bit", "8bit")
OPTION_KEYS = {"path", "dtype", "compression", "context_length", "shards_dir", "layer_cache", "trust_remote_code"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
NAME = re.compile(r"^[A-Za-z0-9][\w./-]*(:[\w.-]+)?$")


def normalize_name(name: str) -> str:
    """Ollama's rule: names are case-insensitive and the tag defaults to ``latest``."""
    name = (name or "").strip().lower()
    if not name:
        return ""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


@dataclass
class ModelEntry:
    """One servable model and its per-model options."""

    name: str                        # normalised, e.g. "tiny:latest"
    source: str                      # as configured: a folder or a hub id
    path: Path | None                # the local folder (None: a hub id not downloaded yet)
    hub_id: str | None = None
    dtype: str | None = None
    compression: str | None = None
    context_length: int | None = None
    shards_dir: Path | None = None
    layer_cache: str | None = None   # off | auto | on; None = the server's AIRLLM_LAYER_CACHE
    trust_remote_code: bool = False  # the operator allows the folder's own Python code to run
    info: CheckpointInfo | None = None

    @property
    def max_context(self) -> int | None:
        """The operator's context length, else the model's own."""
        if self.context_length:
            return self.context_length
        return self.info.context_length if self.info else None

    def refresh(self) -> CheckpointInfo:
        """Re-inspect the folder (the weights may have changed since start) and return the fresh info."""
        if self.path is None:
            raise CheckpointError(f"hub model {self.hub_id} is not downloaded yet")
        self.info = checkpoint.inspect(self.path)
        return self.info


@dataclass(frozen=True)
class BrokenEntry:
    """A configured model that cannot be served, and why."""

    name: str
    source: str
    error: str


class Registry:
    """The validated models, looked up by Ollama-style name."""

    def __init__(self, entries: list[ModelEntry], broken: list[BrokenEntry]):
        self.entries = {e.name: e for e in entries}
        self.broken = list(broken)

    def get(self, name: str) -> ModelEntry | None:
        """The entry for a requested name (case-insensitive, tag defaults to latest)."""
        return self.entries.get(normalize_name(name))

    def broken_entry(self, name: str) -> BrokenEntry | None:
        """The broken entry under that name, if the operator configured one."""
        wanted = normalize_name(name)
        return next((b for b in self.broken if b.name == wanted), None)

    def __iter__(self):
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)


def parse_models_env(value: str) -> tuple[dict[str, dict], list[BrokenEntry]]:
    """Parse ``name=path,name2=path2`` into raw option dicts."""
    raw: dict[str, dict] = {}
    broken = []
    for item in re.split(r"[,\n]", value or ""):
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            broken.append(BrokenEntry(item, item, "AIRLLM_MODELS entries must look like name=/path/to/model"))
            continue
        raw[name.strip()] = {"path": path.strip()}
    return raw, broken


def parse_models_file(path: Path) -> dict[str, dict]:
    """Read the registry file (JSON or TOML, by extension) into raw option dicts."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".toml":
        data = tomllib.loads(text)
    else:
        data = json.loads(text)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ValueError('expected a top-level "models" table mapping names to options')
    raw = {}
    for name, options in models.items():
        raw[str(name)] = {"path": options} if isinstance(options, str) else options
    return raw


def _resolve_hub(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, or None when it is not in the local cache."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def build_entry(name: str, options: dict, shards_root: Path) -> ModelEntry:
    """Validate one raw entry and inspect its folder; raise ValueError/CheckpointError with the cause."""
    if not NAME.match(name):
        raise ValueError(f"invalid model name {name!r}")
    if not isinstance(options, dict):
        raise ValueError("options must be a table/object or a path string")
    unknown = set(options) - OPTION_KEYS
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(OPTION_KEYS))}")
    source = options.get("path")
    if not isinstance(source, str) or not source.strip():
        raise ValueError("missing path")
    source = source.strip()
    dtype = options.get("dtype")
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    compression = options.get("compression")
    if compression is not None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be 4bit or 8bit, got {compression!r}")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ValueError(f"compression {compression!r} needs bitsandbytes, which is not installed")
    context = options.get("context_length")
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 16):
        raise ValueError(f"context_length must be an integer of at least 16, got {context!r}")
    shards = options.get("shards_dir")
    if shards is not None and (not isinstance(shards, str) or not shards.strip()):
        raise ValueError("shards_dir must be a folder path")
    layer_cache = options.get("layer_cache")
    if layer_cache is not None:
        layer_cache = parse_mode(layer_cache, "layer_cache")
    trust = options.get("trust_remote_code", False)
    if not isinstance(trust, bool):
        raise ValueError(f"trust_remote_code must be true or false, got {trust!r}")
    entry = ModelEntry(name=normalize_name(name), source=source, path=None, dtype=dtype, compression=compression,
                       context_length=context, shards_dir=Path(shards).expanduser() if shards else shards_root,
                       layer_cache=layer_cache, trust_remote_code=trust)
    local = Path(source).expanduser()
    if local.exists() or not HUB_ID.match(source):
        entry.path = local.resolve() if local.exists() else local
        entry.refresh()
        return entry
    entry.hub_id = source
    entry.path = _resolve_hub(source)
    if entry.path is not None:
        entry.refresh()
    elif hub_is_offline():
        raise CheckpointError(f"hub model {source} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
                              f"(or the local folder {source} does not exist)")
    return entry


def remote_code_refusal(entry: ModelEntry) -> str | None:
    """Why the folder may not be loaded: it ships Python code (``auto_map``) its registry entry does not trust.

    transformers (and airllm, which passes ``trust_remote_code=True``) run such code on load; without an
    ``auto_map`` there is no code to run.
    """
    if entry.trust_remote_code or entry.path is None:
        return None
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((Path(entry.path) / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            return (f"model '{entry.name}' ships its own Python code ({name} has auto_map); set "
                    "trust_remote_code = true in its registry entry to allow it to run")
    return None


def load_registry(models_env: str, models_file: str, shards_root: Path) -> Registry:
    """Build the registry from both sources, logging and keeping every broken entry."""
    raw, broken = parse_models_env(models_env)
    if models_file:
        try:
            from_file = parse_models_file(Path(models_file).expanduser())
        except (OSError, ValueError, tomllib.TOMLDecodeError) as exc:
            broken.append(BrokenEntry(models_file, models_file, f"cannot read AIRLLM_MODELS_FILE: {exc}"))
        else:
            for name in set(raw) & set(from_file):
                log.warning("model %s is in both AIRLLM_MODELS and AIRLLM_MODELS_FILE; using the file's entry", name)
            raw.update(from_file)
    entries = []
    for name, options in raw.items():
        try:
            entry = build_entry(name, options, shards_root)
        except (ValueError, CheckpointError, OSError) as exc:
            source = options.get("path", "") if isinstance(options, dict) else str(options)
            broken.append(BrokenEntry(normalize_name(name) if NAME.match(name) else name, str(source), str(exc)))
            continue
        if entry.name in {e.name for e in entries}:
            broken.append(BrokenEntry(entry.name, entry.source, "duplicate model name"))
            continue
        entries.append(entry)
    for item in broken:
        log.error("model %s left out: %s", item.name, item.error)
    for entry in entries:
        log.info("serving %s from %s", entry.name, entry.path or entry.hub_id)
    return Registry(entries, broken)
