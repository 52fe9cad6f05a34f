"""Continuous batching: sequences share each layer load, yet every sequence's tokens are its own.

In process, on the real engine (airllm + torch on the tiny random Llama): requests with prompts of different lengths
join a running batch at different steps, leave at different steps, one is abandoned by its client, and each one's
greedy tokens equal the same request run alone and plain transformers' — with the layer cache off and on.
"""

from __future__ import annotations

import time

import pytest

from app.airllm_server.config import Settings
from app.airllm_server.engine import Engine
from app.airllm_server.options import parse_options
from app.airllm_server.registry import load_registry
from tests.support.tiny_model import chat_prompt_ids, greedy_reference
from tests.support.waiting import wait_for

PROMPTS = {"Hello": 24, "Quick brown foxes jump over lazy dogs while the system answers the user": 10,
           "Numbers like 0 1 2 3": 16}


def make_engine(tmp_path, model_dir, cache: str, **settings) -> Engine:
    config = Settings(shards_dir=tmp_path / f"shards-{cache}", device="cpu", layer_cache=cache, **settings)
    return Engine(config, load_registry(f"tiny={model_dir}", "", config.shards_dir))


def admit(engine: Engine, prompt_ids: list[int], options: dict, gone=lambda: False):
    entry = engine.registry.get("tiny")
    sampling = parse_options(options, 4096, entry.max_context)
    return engine.admit(entry, prompt_ids, sampling, 300.0, gone, "generate", time.perf_counter())


@pytest.fixture(scope="module")
def references(model_dir):
    """Plain transformers' greedy tokens for each prompt."""
    out = {}
    for prompt, n in PROMPTS.items():
        ids = chat_prompt_ids(model_dir, [{"role": "user", "content": prompt}])
        out[prompt] = (ids, greedy_reference(model_dir, ids, n)[0])
    return out


@pytest.mark.parametrize("cache", ["off", "on"])
def test_batched_greedy_tokens_equal_alone_and_transformers(tmp_path, model_dir, references, cache):
    engine = make_engine(tmp_path, model_dir, cache)
    try:
        alone = {}
        for prompt, n in PROMPTS.items():
            handle = admit(engine, references[prompt][0], {"temperature": 0, "num_predict": n})
            handle.collect()
            alone[prompt] = handle.outcome.output_ids
        steps_before = engine.batcher.progress["steps"]

        prompts = list(PROMPTS)
        handles = [admit(engine, references[prompts[0]][0], {"temperature": 0, "num_predict": PROMPTS[prompts[0]]})]
        wait_for(lambda: len(handles[0].sequence.generated) >= 3, "the first request's third token")
        handles.append(admit(engine, references[prompts[1]][0], {"temperature": 0, "num_predict": PROMPTS[prompts[1]]}))
        wait_for(lambda: len(handles[1].sequence.generated) >= 2, "the second request's second token")
        handles.append(admit(engine, references[prompts[2]][0], {"temperature": 0, "num_predict": PROMPTS[prompts[2]]}))
        # One more joins and is abandoned by its client after two tokens; the others must not notice.
        left = {"gone": False}
        dropped = admit(engine, references[prompts[2]][0], {"temperature": 0, "num_predict": 40},
                        gone=lambda: left["gone"])
        wait_for(lambda: len(dropped.sequence.generated) >= 2, "the abandoned request's second token")
        left["gone"] = True
        for handle in handles + [dropped]:
            handle.collect()

        for prompt, handle in zip(prompts, handles):
            assert handle.outcome.output_ids == alone[prompt] == references[prompt][1]
            assert handle.outcome.done_reason == "length"
        assert dropped.outcome.done_reason == "canceled" and len(dropped.outcome.output_ids) < 40
        # They really ran together: each joined before the one ahead of it finished ...
        assert handles[1].started_at < handles[0].finished_at and handles[2].started_at < handles[1].finished_at
        # ... and shared sweeps: fewer sweeps than tokens generated.
        steps = engine.batcher.progress["steps"] - steps_before
        tokens = sum(len(h.outcome.output_ids) for h in handles + [dropped])
        assert steps < tokens - 10
        resident = engine.resident
        if cache == "on":           # each sweep loaded each module exactly once, whatever the batch size
            snap = resident.cache.snapshot()
            assert snap["hits"] + snap["misses"] == engine.batcher.progress["steps"] * resident.sweeper.module_count
    finally:
        engine.shutdown()
        engine.unload()


def test_a_seeded_sample_is_the_same_alone_and_in_a_batch(tmp_path, model_dir, references):
    engine = make_engine(tmp_path, model_dir, "off")
    sampled = {"temperature": 1.0, "top_k": 50, "top_p": 0.95, "seed": 7, "num_predict": 14}
    try:
        ids = references["Hello"][0]
        alone = admit(engine, ids, sampled)
        alone.collect()
        other = admit(engine, references["Numbers like 0 1 2 3"][0], {"temperature": 0.9, "num_predict": 30})
        wait_for(lambda: len(other.sequence.generated) >= 2, "a running neighbour")
        together = admit(engine, ids, sampled)
        together.collect()
        other.collect()
        assert together.started_at < other.finished_at
        assert together.outcome.output_ids == alone.outcome.output_ids
    finally:
        engine.shutdown()
        engine.unload()


def test_max_batch_bounds_the_sweep_and_the_rest_wait(tmp_path, model_dir, references):
    engine = make_engine(tmp_path, model_dir, "off", max_batch=2)
    try:
        ids = references["Hello"][0]
        handles = [admit(engine, ids, {"temperature": 0, "num_predict": 12}) for _ in range(3)]
        wait_for(lambda: len(engine.batcher.snapshot()["active"]) == 2, "a full batch")
        report = engine.queue_report()
        assert len(report["batch"]) == 2 and [w["position"] for w in report["waiting"]] == [1]
        for handle in handles:
            handle.collect()
        assert all(h.outcome.output_ids == references["Hello"][1][:12] for h in handles)
        assert handles[2].started_at >= min(handles[0].finished_at, handles[1].finished_at)
    finally:
        engine.shutdown()
        engine.unload()
