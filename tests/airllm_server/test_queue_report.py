"""/api/queue's facts in process: the running batch, waiting positions, and ETAs that hold on a slowed engine.

The engine is slowed deterministically (every sweep takes a fixed period, far longer than the tiny model's compute),
so sweep times are steady even on a loaded machine, as on a big model where moving the layers dominates.
"""

from __future__ import annotations

import threading
import time

import pytest

from app.airllm_server.errors import ApiError
from app.airllm_server.registry import build_entry, remote_code_refusal
from app.airllm_server.tokenizers import TokenizerCache
from tests.airllm_server.test_batching import admit, make_engine
from tests.support.tiny_model import chat_prompt_ids
from tests.support.waiting import wait_for

SWEEP_PERIOD_S = 0.25


def slow_down(engine, period: float) -> None:
    """Make every sweep of the resident model take exactly ``period`` seconds (its compute included)."""
    sweeper = engine.resident.sweeper
    run = sweeper.run

    def slowed(slots, before_module=None):
        started = time.perf_counter()
        out = run(slots, before_module)
        time.sleep(max(0.0, started + period - time.perf_counter()))
        return out

    sweeper.run = slowed


def test_eta_after_three_tokens_is_within_30_percent_of_the_actual_start(tmp_path, model_dir):
    engine = make_engine(tmp_path, model_dir, "off", max_batch=1)
    try:
        ids = chat_prompt_ids(model_dir, [{"role": "user", "content": "Hello world"}])
        admit(engine, ids, {"temperature": 0, "num_predict": 1}).collect()       # loads the model
        slow_down(engine, SWEEP_PERIOD_S)
        engine.batcher.samples.clear()
        first = admit(engine, ids, {"temperature": 0, "num_predict": 14})
        second = admit(engine, ids, {"temperature": 0, "num_predict": 4})
        third = admit(engine, ids, {"temperature": 0, "num_predict": 4})
        wait_for(lambda: len(first.sequence.generated) >= 3, "three tokens of the work ahead")
        report = engine.queue_report()
        asked = time.monotonic()
        running = report["batch"][0]
        assert running["id"] == first.id and running["tokens"] >= 3 and running["s_per_token"] >= SWEEP_PERIOD_S * 0.9
        assert [(r["id"], r["position"]) for r in report["waiting"]] == [(second.id, 1), (third.id, 2)]
        assert report["sweep"]["steps_per_s"] and report["sweep"]["modules"] == engine.resident.sweeper.module_count
        etas = {r["id"]: r["eta_s"] for r in report["waiting"]}
        for handle in (first, second, third):
            handle.collect()
        for handle in (second, third):
            actual = handle.started_at - asked
            assert actual > 0
            assert abs(etas[handle.id] - actual) <= 0.3 * actual, (etas[handle.id], actual)
        summary = engine.health()["queue"]
        assert summary["running"] is None and summary["depth"] == 0
    finally:
        engine.shutdown()
        engine.unload()


def test_concurrent_first_requests_load_the_tokenizer_once_and_count_as_waiting(tmp_path, model_dir):
    engine = make_engine(tmp_path, model_dir, "off", max_batch=1, max_queue=1)
    release = threading.Event()
    loads = []
    original = TokenizerCache._load

    def gated_load(entry):
        loads.append(entry.name)
        release.wait(30)
        return original(entry)

    engine.tokenizers._load = gated_load
    try:
        entry = engine.registry.get("tiny")
        results, errors = [], []

        def first_request():
            try:
                results.append(engine.tokenizer(entry))
            except ApiError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=first_request) for _ in range(2)]
        for t in threads:
            t.start()
        wait_for(lambda: engine.batcher.snapshot()["loading"] == 2, "two requests holding places")
        with pytest.raises(ApiError) as busy:           # the batch place and the one waiting place are taken
            engine.tokenizer(entry)
        assert busy.value.status == 503 and int(busy.value.headers["Retry-After"]) >= 1
        assert engine.queue_report()["loading_tokenizers"] == 2
        release.set()
        for t in threads:
            t.join(30)
        assert not errors and len(results) == 2 and results[0][0] is results[1][0]
        assert loads == ["tiny:latest"]                  # the second waited on the model's lock, then reused it
        assert engine.batcher.snapshot()["loading"] == 0
    finally:
        release.set()
        engine.shutdown()


def test_remote_code_needs_the_registry_entry_to_trust_it(tmp_path, model_dir):
    import json
    import shutil

    folder = tmp_path / "with-code"
    shutil.copytree(model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "configuration_evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    untrusted = build_entry("evil", {"path": str(folder)}, tmp_path)
    assert "trust_remote_code = true" in remote_code_refusal(untrusted)
    with pytest.raises(ApiError) as err:
        TokenizerCache(lambda: _nothing())._load(untrusted)
    assert err.value.status == 500 and "ships its own Python code" in err.value.message
    trusted = build_entry("evil", {"path": str(folder), "trust_remote_code": True}, tmp_path)
    assert remote_code_refusal(trusted) is None
    assert remote_code_refusal(build_entry("plain", {"path": str(model_dir)}, tmp_path)) is None
    with pytest.raises(ValueError, match="trust_remote_code"):
        build_entry("evil", {"path": str(folder), "trust_remote_code": "yes"}, tmp_path)


def _nothing():
    from contextlib import nullcontext

    return nullcontext()
