"""The rule-based classifier on the labelled set, request shapes, and the optional model refinement."""
from __future__ import annotations

import json
import time

import pytest

from app.intelli.classifier import (ModelRefiner, RequestFeatures, classify, classify_rules, detect_language,
                                    extract_features)
from app.proxy.upstream import UpstreamClient
from app.routing import Backend
from tests.intelli.labelled_prompts import HELD_OUT, LABELLED, PIXEL
from tests.support.fake_ollama import FakeOllama, _Handler

# What the rules reached on the labelled set when this test was written (82 prompts, 7 categories, 5 languages).
MIN_ACCURACY = 0.97
# Prompts written after the rules were settled and never used to tune them (30 prompts): 27 right.
MIN_HELD_OUT_ACCURACY = 0.9


def _path(body: dict) -> str:
    return "/api/generate" if "prompt" in body else "/api/chat"


def test_labelled_set_is_big_and_varied():
    labels = {label for label, _ in LABELLED}
    assert len(LABELLED) >= 60
    assert {"code", "math", "reasoning", "creative", "translation", "vision", "general"} <= labels
    german = [b for _, b in LABELLED if detect_language(extract_features(_path(b), b).text) == "de"]
    assert len(german) >= 10


def test_accuracy_on_the_labelled_set():
    wrong = []
    for label, body in LABELLED:
        got = classify_rules(extract_features(_path(body), body))
        if got.category != label:
            wrong.append((label, got.category, extract_features(_path(body), body).text[:60]))
    accuracy = 1 - len(wrong) / len(LABELLED)
    print(f"\nclassifier accuracy {accuracy:.1%} ({len(LABELLED) - len(wrong)}/{len(LABELLED)}); misses: {wrong}")
    assert accuracy >= MIN_ACCURACY, wrong


def test_accuracy_on_prompts_the_rules_never_saw():
    right = sum(classify_rules(extract_features(_path(b), b)).category == label for label, b in HELD_OUT)
    print(f"\nheld-out accuracy {right / len(HELD_OUT):.1%} ({right}/{len(HELD_OUT)})")
    assert right / len(HELD_OUT) >= MIN_HELD_OUT_ACCURACY


def test_long_prompts_are_classified():
    """(How fast: scripts/bench_classifier.py; a benchmark, not a timed assertion.)"""
    text = "Please review this module for thread-safety issues.\n" + ("x = compute(y) + 1;\n" * 5000)
    result = classify_rules(RequestFeatures(text=text))
    assert result.category == "code" and result.complexity >= 6


def test_complexity_grows_with_the_task():
    easy = classify_rules(RequestFeatures(text="hi"))
    medium = classify_rules(RequestFeatures(text="Write a Python function that reverses a list."))
    hard = classify_rules(RequestFeatures(text=(
        "Design a distributed, thread-safe rate limiter in Go for a production-ready API gateway. Explain the "
        "architecture step by step, cover the edge cases and race conditions, and optimise for latency.\n"
        "1. token bucket\n2. sliding window\n3. Redis-backed variant")))
    assert easy.complexity == 1
    assert easy.complexity < medium.complexity < hard.complexity
    assert hard.complexity >= 8


def test_openai_anthropic_and_responses_shapes():
    openai_vision = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "data:,"}}]}]}
    assert extract_features("/v1/chat/completions", openai_vision).images == 1
    anthropic = {"system": [{"type": "text", "text": "You are a poet."}],
                 "messages": [{"role": "user", "content": [{"type": "text", "text": "Write a sonnet"}]}]}
    f = extract_features("/v1/messages", anthropic)
    assert f.system == "You are a poet." and classify_rules(f).category == "creative"
    responses = {"input": "Solve 3x + 5 = 20", "instructions": "be brief"}
    f = extract_features("/v1/responses", responses)
    assert f.text == "Solve 3x + 5 = 20" and classify_rules(f).category == "math"
    tools = {"messages": [{"role": "user", "content": "weather in Berlin?"}], "tools": [{"type": "function"}]}
    assert extract_features("/api/chat", tools).requirements == {"completion", "tools"}
    assert extract_features("/api/embed", {"input": ["a", "b"]}).requirements == {"embedding"}
    assert extract_features("/api/generate", {"prompt": "x", "images": [PIXEL]}).requirements == \
        {"completion", "vision"}


def test_system_prompt_and_history_count_less_than_the_question():
    body = {"messages": [{"role": "system", "content": "You are a helpful coding assistant."},
                         {"role": "user", "content": "Write a poem about the sea."}]}
    assert classify_rules(extract_features("/api/chat", body)).category == "creative"
    follow_up = {"messages": [{"role": "user", "content": "def add(a, b): return a + b  -- add type hints"},
                              {"role": "assistant", "content": "Here you go"},
                              {"role": "user", "content": "and now make it async"}]}
    assert classify_rules(extract_features("/api/chat", follow_up)).category == "code"


# -- the optional classifier model ------------------------------------------------------------------------

class _ClassifierHandler(_Handler):
    """Answers the classification prompt the way a small model with `format` does: JSON in `response`."""

    def _inference(self, body, chat):
        req = json.loads(body)
        if req.get("model") != "tiny-classifier:1b":
            return super()._inference(body, chat)
        delay = (req.get("options") or {}).get("fake_delay_ms") or self.state.__dict__.get("delay_ms", 0)
        if delay:
            time.sleep(delay / 1000)
        text = req["prompt"].rsplit("Request:\n", 1)[-1]
        answer = {"category": "reasoning" if "hmm" in text else "general", "complexity": 7}
        self.state.received.append(("classified", text))
        self._json(200, {"model": req["model"], "response": json.dumps(answer), "done": True})


@pytest.fixture
def classifier_server():
    fake = FakeOllama("cls", models=[{"name": "tiny-classifier:1b", "family": "llama", "parameter_size": "1B",
                                      "capabilities": ["completion"]}])
    fake.server.RequestHandlerClass = type("ClsHandler", (_ClassifierHandler,), {"state": fake.state})
    fake.start()
    yield fake
    fake.stop()


def test_model_refines_and_caches(classifier_server):
    refiner = ModelRefiner("tiny-classifier:1b", UpstreamClient(), timeout=2.0)
    backend = Backend("ollama", "127.0.0.1", classifier_server.port)
    features = RequestFeatures(text="hmm, tell me about the weather")
    first = classify(features, refiner, backend)
    assert first.category == "reasoning" and first.complexity == 7 and first.source == "model"
    assert any("rules said general" in r for r in first.reasons)
    second = classify(features, refiner, backend)
    assert second.source == "model-cache" and second.category == "reasoning"
    asked = [r for r in classifier_server.state.received if isinstance(r, tuple)]
    assert len(asked) == 1


def test_slow_or_missing_classifier_falls_back_to_rules(classifier_server):
    classifier_server.state.delay_ms = 1500
    refiner = ModelRefiner("tiny-classifier:1b", UpstreamClient(), timeout=0.3, cooldown=60)
    backend = Backend("ollama", "127.0.0.1", classifier_server.port)
    started = time.perf_counter()
    result = classify(RequestFeatures(text="Write a haiku about rain"), refiner, backend)
    assert time.perf_counter() - started < 1.2
    assert result.category == "creative" and result.source == "rules"
    assert any("classifier model failed" in r for r in result.reasons)
    # In the cool-down the model is not asked again: the rules answer at once.
    asked_before = len(classifier_server.state.received)
    again = classify(RequestFeatures(text="Solve x^2 = 4"), refiner, backend)
    assert again.category == "math" and again.source == "rules"
    assert len(classifier_server.state.received) == asked_before
    down = ModelRefiner("tiny-classifier:1b", UpstreamClient(connect_timeout=0.5), timeout=0.5)
    from tests.support.proxy_process import free_port
    result = classify(RequestFeatures(text="hi"), down, Backend("ollama", "127.0.0.1", free_port()))
    assert result.category == "general" and result.source == "rules"
