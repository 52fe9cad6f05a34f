"""How registry entries look in /api/tags, /api/show, /api/ps and /v1/models (pure code, no torch)."""

from __future__ import annotations

from datetime import datetime, timezone

from .checkpoint import format_parameter_size, quantization_level
from .registry import ModelEntry

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def details(entry: ModelEntry) -> dict:
    """Ollama's ``details`` object, from the checkpoint's config and files."""
    info = entry.info
    if info is None:
        return {"parent_model": "", "format": "safetensors", "family": "", "families": [], "parameter_size": "",
                "quantization_level": ""}
    fmt = "safetensors" if all(p.suffix == ".safetensors" for p in info.weight_files) else "pytorch"
    return {"parent_model": "", "format": fmt, "family": info.family, "families": [info.family],
            "parameter_size": format_parameter_size(info.parameter_count),
            "quantization_level": quantization_level(info, entry.dtype, entry.compression)}


def tag(entry: ModelEntry) -> dict:
    """One /api/tags row: real size of the weight files, their newest mtime, an identity digest."""
    info = entry.info
    return {"name": entry.name, "model": entry.name,
            "modified_at": _iso(info.modified_at if info else EPOCH),
            "size": info.size if info else 0, "digest": info.digest if info else "",
            "details": details(entry), "capabilities": capabilities(entry)}


def capabilities(entry: ModelEntry) -> list[str]:
    """What the model can do here: text completion only (no tools, vision, thinking or insert)."""
    return ["completion"]


def model_info(entry: ModelEntry) -> dict:
    """GGUF-style keys Ollama clients read from /api/show, computed from config.json."""
    info = entry.info
    if info is None:
        return {}
    cfg = info.text_config
    arch = info.family
    out = {"general.architecture": arch, "general.basename": entry.name.split(":")[0],
           "general.parameter_count": info.parameter_count, "general.file_type": details(entry)["quantization_level"]}
    fields = {"context_length": entry.max_context, "embedding_length": cfg.get("hidden_size"),
              "block_count": cfg.get("num_hidden_layers"), "feed_forward_length": cfg.get("intermediate_size"),
              "attention.head_count": cfg.get("num_attention_heads"),
              "attention.head_count_kv": cfg.get("num_key_value_heads") or cfg.get("num_attention_heads"),
              "attention.layer_norm_rms_epsilon": cfg.get("rms_norm_eps"), "rope.freq_base": cfg.get("rope_theta"),
              "vocab_size": cfg.get("vocab_size")}
    out.update({f"{arch}.{key}": value for key, value in fields.items() if value is not None})
    out["airllm.compression"] = entry.compression
    out["airllm.layer_streaming"] = True
    return out


def show(entry: ModelEntry, default_ctx: int) -> dict:
    """The /api/show reply."""
    info = entry.info
    ctx = min(default_ctx, entry.max_context or default_ctx)
    return {"modelfile": f"# Served layer by layer by the AirLLM server\nFROM {entry.name}\nPARAMETER num_ctx {ctx}\n",
            "parameters": f"num_ctx {ctx}", "template": (info.chat_template if info else None) or "{{ .Prompt }}",
            "system": "", "license": "", "details": details(entry), "model_info": model_info(entry),
            "capabilities": capabilities(entry),
            "modified_at": _iso(info.modified_at if info else EPOCH)}


def openai_model(entry: ModelEntry) -> dict:
    """One /v1/models entry."""
    info = entry.info
    return {"id": entry.name, "object": "model", "created": int((info.modified_at if info else EPOCH).timestamp()),
            "owned_by": "library"}
