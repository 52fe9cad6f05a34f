"""Registry parsing and validation, checkpoint inspection and shard folders (in-process, no server)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from app.airllm_server import checkpoint, shards
from app.airllm_server.registry import load_registry, normalize_name, parse_models_env


def test_names_are_normalised_like_ollama():
    assert normalize_name("Tiny") == "tiny:latest"
    assert normalize_name("llama3.1:70b") == "llama3.1:70b"
    assert normalize_name("library/m") == "library/m:latest"


def test_env_form_parses_and_reports_malformed_items():
    raw, broken = parse_models_env("a=/x, b=/y ,,oops")
    assert raw == {"a": {"path": "/x"}, "b": {"path": "/y"}}
    assert [b.name for b in broken] == ["oops"]


def test_file_entries_with_options_and_broken_ones(tmp_path, model_dir):
    cfg = tmp_path / "models.json"
    cfg.write_text(json.dumps({"models": {
        "big:70b": {"path": str(model_dir), "dtype": "bfloat16", "context_length": 128},
        "short": str(model_dir),
        "typo": {"path": str(model_dir), "contxt": 5},
        "q": {"path": str(model_dir), "compression": "2bit"},
    }}), encoding="utf-8")
    registry = load_registry(f"env={model_dir}", str(cfg), tmp_path / "shards")
    assert {e.name for e in registry} == {"big:70b", "short:latest", "env:latest"}
    big = registry.get("BIG:70b")
    assert big.dtype == "bfloat16" and big.max_context == 128 and big.info.family == "llama"
    broken = {b.name: b.error for b in registry.broken}
    assert "unknown option(s) contxt" in broken["typo:latest"]
    assert "compression must be 4bit or 8bit" in broken["q:latest"]


def test_unreadable_registry_file_is_reported_and_env_models_still_served(tmp_path, model_dir):
    cfg = tmp_path / "models.toml"
    cfg.write_text("[models\nbroken", encoding="utf-8")
    registry = load_registry(f"tiny={model_dir}", str(cfg), tmp_path)
    assert registry.get("tiny") is not None
    assert "cannot read AIRLLM_MODELS_FILE" in registry.broken[0].error


def test_compression_needs_bitsandbytes(tmp_path, model_dir):
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[models.c]\npath = "{model_dir}"\ncompression = "4bit"\n', encoding="utf-8")
    registry = load_registry("", str(cfg), tmp_path)
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        assert "needs bitsandbytes" in registry.broken[0].error
    else:
        assert registry.get("c").compression == "4bit"


def test_missing_hub_model_is_broken_when_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry = load_registry("hub=someorg/not-cached-model", "", tmp_path)
    assert "not in the local Hugging Face cache" in registry.broken[0].error


def test_inspect_reports_each_problem(tmp_path, model_dir):
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    os.remove(folder / "tokenizer.json")
    os.remove(folder / "tokenizer_config.json")
    with pytest.raises(checkpoint.CheckpointError, match="no tokenizer files"):
        checkpoint.inspect(folder)
    os.remove(folder / "model.safetensors")
    with pytest.raises(checkpoint.CheckpointError, match="no weight files"):
        checkpoint.inspect(folder)
    (folder / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(checkpoint.CheckpointError, match="no model_type"):
        checkpoint.inspect(folder)


def test_parameter_count_from_config_is_exact_for_llama(model_dir):
    from transformers import AutoModelForCausalLM

    info = checkpoint.inspect(model_dir)
    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(model_dir)).parameters())
    assert info.parameter_count == real
    assert checkpoint.format_parameter_size(7_240_000_000) == "7.2B"
    assert checkpoint.format_parameter_size(91_000_000) == "91M"


def test_shard_folder_is_unique_per_model_and_changes_with_the_weights(tmp_path, model_dir):
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    before = checkpoint.inspect(folder)
    a = shards.shard_folder(tmp_path / "s", "m:latest", before, None)
    assert a != shards.shard_folder(tmp_path / "s", "n:latest", before, None)
    assert a != shards.shard_folder(tmp_path / "s", "m:latest", before, "4bit")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data)                     # same bytes, new mtime: the shards must be re-split
    os.utime(weights, ns=(int(before.modified_at.timestamp() * 1e9) + 5 * 10**9,) * 2)
    after = checkpoint.inspect(folder)
    b = shards.shard_folder(tmp_path / "s", "m:latest", after, None)
    assert a != b
    shards.mark(a, "m:latest", before, None)
    shards.mark(b, "m:latest", after, None)
    assert shards.remove_stale(tmp_path / "s", "m:latest", keep=b) == [a]
    assert b.is_dir() and not a.exists()
