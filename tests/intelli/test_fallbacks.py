"""Fallback chains through the real relay: 500, 404, silence and refused connections move on to the next model,
stream or not, native or OpenAI; nothing moves once a byte reached the client; loops are refused."""
from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from app.intelli.fallbacks import expand_chain, find_loop, validate_chains
from app.models import RequestLog
from app.validation import ValidationError
from tests.intelli.conftest import set_faults
from tests.support.proxy_process import free_port

CODER, BIG, SMALL = "qwen2.5-coder:7b", "llama3.1:8b", "llama3.2:3b"


@pytest.fixture(scope="module", autouse=True)
def chains(app_in_process):
    r = app_in_process.dash_post("/config/fallbacks", json={
        "fallbacks": {CODER: [BIG], "ghost:7b": SMALL}, "timeout": 0.5})
    assert r.status_code == 200, r.get_data(as_text=True)
    yield


@pytest.fixture(autouse=True)
def clean_faults(app_in_process, realistic_ollama):
    yield
    app_in_process.flush()  # the test's records reach the health tracker now, not during the next test
    for model in (CODER, BIG, SMALL):
        set_faults(realistic_ollama, model)
        app_in_process.resolver.catalog.health.succeeded(model)  # forget the failures this test caused


def native(app, model: str, stream: bool):
    return app.post("/api/chat", json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                                       "stream": stream, "options": {"num_predict": 3}})


def openai(app, model: str, stream: bool):
    return app.post("/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                                                  "stream": stream, "max_tokens": 3})


def answered_by(response, stream: bool, api: str) -> set:
    """The `model` field of every JSON object in the reply."""
    text = response.get_data(as_text=True)
    if not stream:
        return {json.loads(text)["model"]}
    if api == "native":
        return {json.loads(line)["model"] for line in text.splitlines() if line.strip()}
    frames = [line[6:] for line in text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]
    assert text.rstrip().endswith("data: [DONE]")
    return {json.loads(f)["model"] for f in frames}


CASES = [(api, stream) for api in ("native", "openai") for stream in (False, True)]


@pytest.mark.parametrize("api, stream", CASES)
def test_5xx_moves_to_the_next_model(app_in_process, realistic_ollama, api, stream):
    set_faults(realistic_ollama, CODER, status=500)
    response = (native if api == "native" else openai)(app_in_process, CODER, stream)
    assert response.status_code == 200
    assert response.headers["X-IntelliProxy-Model"] == BIG
    assert answered_by(response, stream, api) == {BIG}


@pytest.mark.parametrize("api, stream", CASES)
def test_model_not_found_moves_to_the_next_model(app_in_process, api, stream):
    response = (native if api == "native" else openai)(app_in_process, "ghost:7b", stream)
    assert response.status_code == 200
    assert response.headers["X-IntelliProxy-Model"] == SMALL
    assert answered_by(response, stream, api) == {SMALL}


@pytest.mark.parametrize("api, stream", CASES)
def test_silence_past_the_timeout_moves_to_the_next_model(app_in_process, realistic_ollama, api, stream):
    set_faults(realistic_ollama, CODER, delay_ms=3000)
    started = time.monotonic()
    response = (native if api == "native" else openai)(app_in_process, CODER, stream)
    assert response.status_code == 200 and answered_by(response, stream, api) == {BIG}
    assert time.monotonic() - started < 2.5  # 0.5 s timeout (1 s polling granularity at most), not 3 s


def test_a_slow_but_streaming_first_model_keeps_its_stream(app_in_process):
    """The first-byte timeout ends with the first byte: later gaps get the normal budget."""
    response = app_in_process.post("/api/generate", json={"model": CODER, "prompt": "x", "options": {
        "num_predict": 3, "fake_delay_ms": 700}})
    lines = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert {line["model"] for line in lines} == {CODER} and lines[-1]["done"] is True


@pytest.mark.parametrize("api, stream", CASES)
def test_refused_connection_moves_to_the_next_model(app_in_process, second_ollama, api, stream):
    app = app_in_process
    dead = free_port()
    try:
        assert app.dash_post("/config/airllm/service", json={"enabled": True, "host": "127.0.0.1",
                                                             "port": second_ollama.port}).status_code == 200
        assert app.dash_post("/config/model/airllm", json={"model_name": "llama3.1:70b",
                                                           "enabled": True}).status_code == 200
        assert app.dash_post("/config/fallbacks", json={"fallbacks": {CODER: "llama3.1:70b"}}).status_code == 200
        assert app.dash_post("/config/ollama", json={"host": "127.0.0.1", "port": dead}).status_code == 200
        response = (native if api == "native" else openai)(app, CODER, stream)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers["X-IntelliProxy-Model"] == "llama3.1:70b"
        assert response.headers["X-IntelliProxy-Backend"] == "airllm"
        assert answered_by(response, stream, api) == {"llama3.1:70b"}
    finally:
        app.dash_post("/config/ollama", json={"host": "127.0.0.1", "port": app_in_process.services.settings[
            "SEED_OLLAMA_PORT"]})
        app.dash_post("/config/model/airllm", json={"model_name": "llama3.1:70b", "enabled": False})
        app.dash_post("/config/airllm/service", json={"enabled": False})
        app.dash_post("/config/fallbacks", json={"fallbacks": {CODER: [BIG], "ghost:7b": SMALL}, "timeout": 0.5})


@pytest.mark.parametrize("api", ["native", "openai"])
def test_no_fallback_once_bytes_reached_the_client(app_in_process, realistic_ollama, api):
    set_faults(realistic_ollama, CODER, break_after=2)
    realistic_ollama.reset()
    response = (native if api == "native" else openai)(app_in_process, CODER, True)
    text = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["X-IntelliProxy-Model"] == CODER
    assert "ollama-0" in text and "ollama-1" in text and "upstream stream interrupted" in text
    assert BIG not in text
    asked = [json.loads(r.body).get("model") for r in realistic_ollama.state.received if r.method == "POST"]
    assert asked == [CODER]


def test_last_model_failing_is_the_answer(app_in_process, realistic_ollama):
    set_faults(realistic_ollama, CODER, status=500)
    set_faults(realistic_ollama, BIG, status=503)
    response = native(app_in_process, CODER, False)
    assert response.status_code == 503 and response.headers["X-IntelliProxy-Model"] == BIG


def test_models_without_a_chain_are_untouched(app_in_process, realistic_ollama):
    set_faults(realistic_ollama, SMALL, status=500)
    response = native(app_in_process, SMALL, False)
    assert response.status_code == 500


def test_fallback_is_logged_with_the_requested_model(app_in_process, realistic_ollama):
    set_faults(realistic_ollama, CODER, status=500)
    native(app_in_process, CODER, False)
    app_in_process.flush()
    with app_in_process.services.session_factory() as session:
        row = session.scalars(select(RequestLog).order_by(RequestLog.id.desc()).limit(1)).one()
    assert row.model == BIG and row.requested_model == CODER
    assert "fallback chain: qwen2.5-coder:7b -> llama3.1:8b" in row.note and "answered 500" in row.note


def test_virtual_model_falls_back_when_its_choice_fails(app_in_process, realistic_ollama):
    set_faults(realistic_ollama, CODER, status=500)
    body = {"model": "IntelliProxyLLM", "stream": False,
            "messages": [{"role": "user", "content": "Write a Python function that reverses a string."}]}
    response = app_in_process.post("/api/chat", json=body)
    assert response.status_code == 200
    assert response.headers["X-IntelliProxy-Model"] == BIG == response.get_json()["model"]
    app_in_process.flush()
    with app_in_process.services.session_factory() as session:
        row = session.scalars(select(RequestLog).order_by(RequestLog.id.desc()).limit(1)).one()
    assert (row.requested_model, row.category, row.model) == ("IntelliProxyLLM", "code", BIG)
    assert "chose qwen2.5-coder:7b for code" in row.note and "answered 500; falling back" in row.note


# -- the JSON API and the rules for chains -----------------------------------------------------------------

def test_get_returns_the_original_shape(app_in_process):
    body = app_in_process.dash_get("/config/fallbacks").get_json()
    assert body == {"fallbacks": {"ghost:7b": SMALL, CODER: BIG}, "timeout": 0.5}


def test_post_replaces_the_whole_map_and_keeps_lists(app_in_process):
    try:
        r = app_in_process.dash_post("/config/fallbacks", json={"fallbacks": {"mistral": ["llama3.1:8b", "phi3"]}})
        assert r.status_code == 200
        body = app_in_process.dash_get("/config/fallbacks").get_json()
        assert body == {"fallbacks": {"mistral:latest": ["llama3.1:8b", "phi3"]}, "timeout": 0.5}
    finally:
        app_in_process.dash_post("/config/fallbacks", json={"fallbacks": {CODER: [BIG], "ghost:7b": SMALL}})


@pytest.mark.parametrize("fallbacks, words", [
    ({"a": "b", "b": "a"}, "loop: a:latest -> b:latest -> a:latest"),
    ({"a": ["b", "c"], "c": ["d"], "d": "a"}, "loop"),
    ({"a": "a"}, "falls back to itself"),
    ({"a": ["b", "b"]}, "twice"),
    ({"IntelliProxyLLM": "a"}, "cannot have a chain"),
    ({"a": "IntelliProxyLLM"}, "cannot be a fallback"),
    ({"a": "bad name!"}, "fallbacks.a"),
    ({"a": 3}, "must be a model name or a list"),
    (["a"], "must be an object"),
])
def test_bad_maps_are_rejected_with_400_and_nothing_changes(app_in_process, fallbacks, words):
    before = app_in_process.dash_get("/config/fallbacks").get_json()
    r = app_in_process.dash_post("/config/fallbacks", json={"fallbacks": fallbacks})
    assert r.status_code == 400 and words in r.get_json()["error"], r.get_json()
    assert app_in_process.dash_get("/config/fallbacks").get_json() == before


def test_bad_timeout_is_rejected(app_in_process):
    for value in (0, -1, "soon", True, 10000):
        r = app_in_process.dash_post("/config/fallbacks", json={"fallbacks": {}, "timeout": value})
        assert r.status_code == 400 and r.get_json()["field"] == "timeout"


def test_chains_expand_transitively_once_each():
    chains = validate_chains({"a": ["b", "c"], "b": ["d"], "c": ["d", "e"]}, "IntelliProxyLLM")
    assert expand_chain("a", {k: tuple(v) for k, v in chains.items()}) == ["a", "b", "d", "c", "e"]
    assert find_loop({"x:latest": ["y"], "y:latest": ["z"]}) is None
    with pytest.raises(ValidationError):
        validate_chains({"a": [f"m{i}" for i in range(9)]}, "IntelliProxyLLM")


def test_virtual_model_says_why_when_no_model_fits(app_in_process):
    from tests.intelli.labelled_prompts import PIXEL

    r = app_in_process.post("/api/generate", json={"model": "IntelliProxyLLM", "prompt": "x", "images": [PIXEL],
                                                   "tools": [{"type": "function"}]})
    assert r.status_code == 400 and "needs completion, tools, vision" in r.get_json()["error"]
    r = app_in_process.post("/v1/chat/completions", json={"model": "IntelliProxyLLM", "tools": [{"type": "function"}],
                                                          "messages": [{"role": "user", "content": [
                                                              {"type": "text", "text": "x"},
                                                              {"type": "image_url", "image_url": {"url": "data:,"}}]}]})
    assert r.status_code == 400 and r.get_json()["error"]["type"] == "invalid_request_error"
