"""Inspect a checkpoint folder without torch: config, weight files, sizes, parameter count, identity.

Everything here reads small files (config.json, safetensors headers), so /api/tags and start-up validation
stay cheap and never import torch or transformers.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
WEIGHT_SINGLES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "max_seq_len")
DTYPE_LEVELS = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}


class CheckpointError(Exception):
    """A checkpoint folder that cannot be served; the message names the cause."""


@dataclass
class CheckpointInfo:
    """What the API reports about a checkpoint folder."""

    path: Path
    config: dict
    weight_files: list[Path]
    size: int
    modified_at: datetime
    digest: str                       # sha256 over path + each weight file's name, size and mtime
    family: str
    parameter_count: int
    context_length: int | None
    stored_dtype: str | None
    chat_template: str | None
    quantization: str | None = None   # a pre-quantized checkpoint's method, e.g. "fp8"
    extra: dict = field(default_factory=dict)

    @property
    def text_config(self) -> dict:
        """The decoder's config (nested under text_config for multimodal wrappers)."""
        nested = self.config.get("text_config")
        return nested if isinstance(nested, dict) else self.config


def read_config(folder: Path) -> dict:
    """Parse config.json or raise CheckpointError naming what is wrong with it."""
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {folder}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"config.json in {folder} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"config.json in {folder} is not a JSON object")
    if not config.get("model_type"):
        raise CheckpointError(f"config.json in {folder} has no model_type")
    return config


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint's weight files, checking that every file its index names exists."""
    for index_name in WEIGHT_INDEXES:
        index_path = folder / index_name
        if index_path.is_file():
            try:
                weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{index_name} in {folder} is unreadable: {exc}") from None
            files = sorted({folder / name for name in weight_map.values()})
            missing = [f.name for f in files if not f.is_file()]
            if missing:
                raise CheckpointError(f"weight files listed in {index_name} are missing: {', '.join(missing[:5])}")
            return files
    for single in WEIGHT_SINGLES:
        if (folder / single).is_file():
            return [folder / single]
    raise CheckpointError(f"no weight files in {folder} (expected model.safetensors, an index, or pytorch_model.bin)")


def safetensors_header(path: Path) -> dict:
    """Read and check one safetensors header; raise CheckpointError if the file is truncated or corrupt."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"weights file {path.name} is truncated ({size} bytes)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8 or header_len > 100 * 1024 * 1024:
            raise CheckpointError(f"weights file {path.name} is truncated or corrupt: header of {header_len} bytes "
                                  f"in a {size}-byte file")
        try:
            header = json.loads(fh.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointError(f"weights file {path.name} has a corrupt header") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"weights file {path.name} has a corrupt header")
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    needed = 8 + header_len + end
    if size < needed:
        raise CheckpointError(f"weights file {path.name} is truncated: {size} bytes on disk, "
                              f"its header needs {needed}")
    return header


def _dtype_of(config: dict) -> str | None:
    for cfg in (config, config.get("text_config") or {}):
        value = cfg.get("torch_dtype") or cfg.get("dtype")
        if isinstance(value, str):
            return value.removeprefix("torch.")
    return None


def _context_length(config: dict) -> int | None:
    for cfg in (config.get("text_config") or {}, config):
        for key in CONTEXT_KEYS:
            value = cfg.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


def _chat_template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("tokenizer_config.json", "chat_template.json"):
        path = folder / name
        if path.is_file():
            try:
                template = json.loads(path.read_text(encoding="utf-8")).get("chat_template")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(template, str):
                return template
            if isinstance(template, list):   # named templates: take "default"
                for item in template:
                    if isinstance(item, dict) and item.get("name") == "default":
                        return item.get("template")
    return None


def parameter_count_from_config(config: dict) -> int | None:
    """Parameters of a standard decoder-only transformer, computed from its config (None if fields are missing)."""
    cfg = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    try:
        hidden = int(cfg["hidden_size"])
        vocab = int(cfg["vocab_size"])
        layers = int(cfg["num_hidden_layers"])
        heads = int(cfg["num_attention_heads"])
        inter = int(cfg.get("intermediate_size") or 4 * hidden)
    except (KeyError, TypeError, ValueError):
        return None
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    model_type = str(cfg.get("model_type", ""))
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    if cfg.get("attention_bias"):
        attn += heads * head_dim + 2 * kv_heads * head_dim + hidden
    elif model_type.startswith("qwen2"):         # Qwen2 always has q/k/v biases
        attn += heads * head_dim + 2 * kv_heads * head_dim
    if model_type.startswith("qwen3"):           # per-head q/k RMSNorm
        attn += 2 * head_dim
    experts = int(cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0)
    if experts:
        expert_inter = int(cfg.get("moe_intermediate_size") or inter)
        mlp = experts * 3 * hidden * expert_inter + experts * hidden
        shared = int(cfg.get("n_shared_experts") or 0)
        mlp += shared * 3 * hidden * expert_inter
    else:
        mlp = 3 * hidden * inter
    per_layer = attn + mlp + 2 * hidden
    embed = vocab * hidden
    tied = bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", False)))
    return embed + layers * per_layer + hidden + (0 if tied else embed)


def _parameter_count_from_headers(files: list[Path]) -> int:
    total = 0
    for path in files:
        if path.suffix != ".safetensors":
            continue
        for key, tensor in safetensors_header(path).items():
            if key == "__metadata__":
                continue
            count = 1
            for dim in tensor["shape"]:
                count *= dim
            total += count
    return total


def format_parameter_size(count: int) -> str:
    """Ollama's style: 8.0B, 137M, 171K."""
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{unit}" if unit == "B" or value < 10 else f"{value:.0f}{unit}"
    return str(count)


def identity(folder: Path, files: list[Path], salt: str = "") -> str:
    """A sha256 over the folder and each weight file's name, size and mtime: changes when the weights do."""
    digest = hashlib.sha256(str(folder.resolve()).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"|{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(salt.encode())
    return digest.hexdigest()


def inspect(folder: Path) -> CheckpointInfo:
    """Check a checkpoint folder and describe it; raise CheckpointError naming the first problem found."""
    folder = Path(folder)
    if not folder.exists():
        raise CheckpointError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise CheckpointError(f"model path {folder} is not a folder")
    config = read_config(folder)
    files = weight_files(folder)
    for path in files:
        if path.suffix == ".safetensors":
            safetensors_header(path)
        elif path.stat().st_size == 0:
            raise CheckpointError(f"weights file {path.name} is empty")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"no tokenizer files in {folder} (expected tokenizer.json or tokenizer.model)")
    stats = [p.stat() for p in files]
    count = parameter_count_from_config(config) or _parameter_count_from_headers(files)
    quant = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    quant_method = None
    if isinstance(quant, dict):
        quant_method = str(quant.get("quant_method") or "quantized")
        if quant.get("bits"):
            quant_method += f"-{quant['bits']}bit"
    return CheckpointInfo(
        path=folder,
        config=config,
        weight_files=files,
        size=sum(s.st_size for s in stats),
        modified_at=datetime.fromtimestamp(max(s.st_mtime for s in stats), tz=timezone.utc),
        digest=identity(folder, files),
        family=str(config.get("model_type")),
        parameter_count=count,
        context_length=_context_length(config),
        stored_dtype=_dtype_of(config),
        chat_template=_chat_template(folder),
        quantization=quant_method,
    )


def quantization_level(info: CheckpointInfo, dtype: str | None, compression: str | None) -> str:
    """Ollama-style quantization label for /api/tags: what the weights are streamed as."""
    if compression:
        return {"4bit": "Q4_NF4", "8bit": "Q8_0"}[compression]
    if info.quantization:
        return info.quantization.upper()
    name = dtype if dtype and dtype != "auto" else info.stored_dtype
    return DTYPE_LEVELS.get(name or "", (name or "unknown").upper())
