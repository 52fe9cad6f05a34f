"""The optional layer cache: the rule that turns it on, same greedy tokens with and without it, freed on unload."""

from __future__ import annotations

import gc
import weakref

import ollama
import pytest

from app.airllm_server.config import Settings
from app.airllm_server.layer_cache import decide, parse_mode
from app.airllm_server.registry import build_entry, load_registry
from tests.support.airllm_process import AirLLMProcess
from tests.support.tiny_model import chat_prompt_ids, greedy_reference

GIB = 2 ** 30
GREEDY = {"temperature": 0, "num_predict": 12}


# ---- the rule ---------------------------------------------------------------------------------------

def test_auto_needs_the_shards_within_half_of_available_ram():
    assert decide("auto", 4 * GIB, 10 * GIB, None).enabled
    off = decide("auto", 6 * GIB, 10 * GIB, None)
    assert not off.enabled and "50%" in off.reason
    assert not decide("auto", 1, None, None).enabled            # RAM unknown: auto stays off
    assert decide("auto", 1, None, 2 * GIB).enabled             # ... unless the operator set a cap


def test_on_forces_it_while_it_fits_and_off_and_compression_never():
    assert decide("on", 9 * GIB, 10 * GIB, None).enabled
    too_big = decide("on", 11 * GIB, 10 * GIB, None)
    assert not too_big.enabled and "do not fit" in too_big.reason
    assert not decide("off", 1, 10 * GIB, None).enabled
    assert "compression" in decide("on", 1, 10 * GIB, None, compression="4bit").reason
    capped = decide("on", 3 * GIB, 100 * GIB, 2 * GIB)
    assert not capped.enabled and "AIRLLM_LAYER_CACHE_MAX_GB" in capped.reason


def test_settings_and_registry_validate_the_option(tmp_path, model_dir):
    assert Settings.from_env({}).layer_cache == "auto"
    settings = Settings.from_env({"AIRLLM_LAYER_CACHE": "ON", "AIRLLM_LAYER_CACHE_MAX_GB": "1.5"})
    assert (settings.layer_cache, settings.layer_cache_max_gb) == ("on", 1.5)
    with pytest.raises(ValueError, match="AIRLLM_LAYER_CACHE"):
        Settings.from_env({"AIRLLM_LAYER_CACHE": "sometimes"})
    with pytest.raises(ValueError, match="AIRLLM_LAYER_CACHE_MAX_GB"):
        Settings.from_env({"AIRLLM_LAYER_CACHE_MAX_GB": "lots"})
    assert build_entry("a", {"path": str(model_dir), "layer_cache": "off"}, tmp_path).layer_cache == "off"
    assert build_entry("a", {"path": str(model_dir), "layer_cache": True}, tmp_path).layer_cache == "on"
    assert build_entry("a", {"path": str(model_dir)}, tmp_path).layer_cache is None
    with pytest.raises(ValueError, match="layer_cache"):
        build_entry("a", {"path": str(model_dir), "layer_cache": "always"}, tmp_path)
    assert parse_mode("0", "x") == "off"


# ---- in process: the engine keeps the layers, answers the same, frees them on unload --------------------

def test_engine_cache_gives_the_same_tokens_and_is_freed_on_unload(tmp_path, model_dir):
    import torch

    from app.airllm_server.engine import Engine

    settings = Settings(shards_dir=tmp_path / "shards", device="cpu", layer_cache="on")
    engine = Engine(settings, load_registry(f"tiny={model_dir}", "", settings.shards_dir))
    try:
        entry = engine.registry.get("tiny")
        engine.load_if_needed(entry)
        resident = engine.resident
        cache, model = resident.cache, resident.model
        assert cache is not None and resident.cache_decision.enabled
        prompt_ids = chat_prompt_ids(model_dir, [{"role": "user", "content": "Hello world"}])
        expected, _ = greedy_reference(model_dir, prompt_ids, 10)
        ids = torch.tensor([prompt_ids])
        for _ in range(2):      # the first run fills the cache, the second is served from it alone
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=10,
                                 pad_token_id=resident.tokenizer.pad_token_id)
            assert out[0, len(prompt_ids):].tolist() == expected
        streamed = len(model.layer_names)           # embed, 3 decoder layers, norm, lm_head
        snap = cache.snapshot()
        assert snap["layers"] == streamed and snap["misses"] == streamed     # each shard file read once
        assert snap["hits"] == 2 * 10 * streamed - streamed
        assert snap["bytes"] == sum(v.numel() * v.element_size() for d in cache._layers.values() for v in d.values())
        assert not snap["pinned"] and snap["pinned_bytes"] == 0              # CPU: plain RAM
        health = engine.health()["model"]["layer_cache"]
        assert health["enabled"] and health["bytes"] == snap["bytes"] > 0

        kept = weakref.ref(next(iter(next(iter(cache._layers.values())).values())))
        engine.unload()
        gc.collect()
        assert kept() is None                                # the tensor's memory is gone
        assert cache.snapshot()["bytes"] == 0 and cache.layers == 0
        assert "load_layer_to_cpu" not in model.__dict__     # the wrapper is off the model object
        assert engine.health()["model"] is None
    finally:
        engine.unload()
        engine.shutdown()


def test_engine_respects_off_and_the_entry_override(tmp_path, model_dir):
    from app.airllm_server.engine import Engine

    settings = Settings(shards_dir=tmp_path / "shards", device="cpu", layer_cache="on")
    registry_file = tmp_path / "models.toml"
    registry_file.write_text(f'[models.plain]\npath = "{model_dir}"\nlayer_cache = "off"\n', encoding="utf-8")
    engine = Engine(settings, load_registry("", str(registry_file), settings.shards_dir))
    try:
        engine.load_if_needed(engine.registry.get("plain"))
        assert engine.resident.cache is None
        assert "load_layer_to_cpu" not in engine.resident.model.__dict__
        report = engine.health()["model"]["layer_cache"]
        assert report == {"enabled": False, "mode": "off", "reason": "off by configuration", "bytes": 0,
                          "layers": 0, "pinned": False}
    finally:
        engine.unload()
        engine.shutdown()


# ---- the real server: per-model option, same greedy tokens, dropped on switch and keep_alive 0 ------------

@pytest.fixture(scope="module")
def cache_server(tmp_path_factory, model_dir):
    """The server with the cache off by default and on for one model; both names serve the same folder."""
    registry = tmp_path_factory.mktemp("cache-cfg") / "models.toml"
    registry.write_text(f'[models.cached]\npath = "{model_dir}"\nlayer_cache = "on"\n'
                        f'[models.plain]\npath = "{model_dir}"\n', encoding="utf-8")
    with AirLLMProcess(models_file=registry, shards_dir=tmp_path_factory.mktemp("cache-shards"),
                       env={"AIRLLM_LAYER_CACHE": "off"}) as proc:
        yield proc


def test_server_greedy_tokens_equal_with_and_without_cache_and_transformers(cache_server, model_dir):
    client = ollama.Client(host=cache_server.url)
    prompt_ids = chat_prompt_ids(model_dir, [{"role": "user", "content": "Hello world"}])
    expected, _ = greedy_reference(model_dir, prompt_ids, 12)

    first = client.generate("cached", "Hello world", options=GREEDY)       # fills the cache
    second = client.generate("cached", "Hello world", options=GREEDY)      # served from it
    report = cache_server.health()["model"]["layer_cache"]
    assert report["enabled"] and report["mode"] == "on" and report["bytes"] > 0 and report["layers"] == 6
    assert report["misses"] == 6 and report["hits"] > 0

    plain = client.generate("plain", "Hello world", options=GREEDY)        # switch: the cache goes with the model
    health = cache_server.health()
    assert health["resident_model"] == "plain:latest"
    assert health["model"]["layer_cache"]["enabled"] is False and health["model"]["layer_cache"]["bytes"] == 0

    for reply in (first, second, plain):
        assert reply.context[len(prompt_ids):] == expected
    assert first.response == second.response == plain.response


def test_server_drops_the_cache_on_keep_alive_zero(cache_server):
    client = ollama.Client(host=cache_server.url)
    client.generate("cached", "Numbers", options={"temperature": 0, "num_predict": 3})
    assert cache_server.health()["model"]["layer_cache"]["bytes"] > 0
    client.generate("cached", "", keep_alive=0)
    health = cache_server.health()
    assert health["resident_model"] is None and health["model"] is None
    assert "layer cache for cached:latest: on" in cache_server.log_text()
    assert "layer cache for plain:latest: off (off by configuration)" in cache_server.log_text()
