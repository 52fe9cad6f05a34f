"""Selection over a realistic model set listed by a fake Ollama: sensible picks, capabilities respected."""
from __future__ import annotations

import pytest

from app.intelli.attributes import derive_profile, parse_parameter_size
from tests.intelli.labelled_prompts import PIXEL


def decide(app, body: dict, path: str = "/api/chat"):
    return app.resolver.decide(path, body, app.services.watcher.table)


def chat(text: str, **extra) -> dict:
    return {"model": "IntelliProxyLLM", "messages": [{"role": "user", "content": text}], **extra}


def test_catalog_lists_the_installed_models_with_derived_attributes(app_in_process):
    models = app_in_process.resolver.catalog.snapshot.models
    assert set(models) == {"qwen2.5-coder:7b", "deepseek-r1:14b", "llava:7b", "llama3.2:3b", "llama3.1:8b",
                           "nomic-embed-text:latest"}
    assert models["qwen2.5-coder:7b"].categories[0] == "code"
    assert models["llava:7b"].categories[0] == "vision"
    assert models["deepseek-r1:14b"].categories[:2] == ("reasoning", "math")
    assert models["nomic-embed-text:latest"].capabilities == {"embedding"}
    assert models["llama3.2:3b"].speed > models["llama3.1:8b"].speed > models["deepseek-r1:14b"].speed
    assert models["deepseek-r1:14b"].complexity > models["llama3.2:3b"].complexity


@pytest.mark.parametrize("body, expected", [
    (chat("Write a Python function that merges two sorted lists."), "qwen2.5-coder:7b"),
    (chat("Fix this: TypeError: unsupported operand type(s) for +: 'int' and 'str'"), "qwen2.5-coder:7b"),
    (chat("Prove that there are infinitely many primes."), "deepseek-r1:14b"),
    (chat("Knights always tell the truth and knaves always lie. A says B is a knave; B says they are both "
          "knights. Who is what? Explain your reasoning step by step."), "deepseek-r1:14b"),
    (chat("hi"), "llama3.2:3b"),
    (chat("What is the capital of Portugal?"), "llama3.2:3b"),
    (chat("Write a short story about a lighthouse keeper who finds a message in a bottle."), "llama3.2:3b"),
    (chat("Write a detailed, thorough outline for a fantasy novel: the world, five characters with backstories, "
          "and a plot with two twists, chapter by chapter, in depth."), "llama3.1:8b"),
    (chat("Übersetze bitte ins Englische: 'Wir sehen uns morgen früh am Bahnhof.'"), "llama3.2:3b"),
    ({"model": "IntelliProxyLLM", "messages": [{"role": "user", "content": "what is this?", "images": [PIXEL]}]},
     "llava:7b"),
])
def test_each_category_lands_on_a_sensible_model(app_in_process, body, expected):
    decision = decide(app_in_process, body)
    assert decision.chosen.name == expected, decision.summary()


def test_embedding_is_never_chosen_for_chat_and_only_for_embeddings(app_in_process):
    for text in ("embed this sentence", "vector embeddings of text", "hi"):
        decision = decide(app_in_process, chat(text))
        assert "nomic-embed-text:latest" not in [c.name for c in decision.ranked]
        assert any(c.name == "nomic-embed-text:latest" and "embedding" in c.excluded for c in decision.excluded)
    decision = decide(app_in_process, {"model": "IntelliProxyLLM", "input": ["a", "b"]}, "/api/embed")
    assert [c.name for c in decision.ranked] == ["nomic-embed-text:latest"]


def test_vision_only_to_vision_models_and_tools_only_to_tools_models(app_in_process):
    vision = decide(app_in_process, {"model": "IntelliProxyLLM", "prompt": "Write Python code for this chart",
                                     "images": [PIXEL]}, "/api/generate")
    assert [c.name for c in vision.ranked] == ["llava:7b"]
    tools = decide(app_in_process, chat("Write a haiku about the weather in Berlin and look it up first",
                                        tools=[{"type": "function", "function": {"name": "weather"}}]))
    names = {c.name for c in tools.ranked}
    assert names == {"qwen2.5-coder:7b", "llama3.2:3b", "llama3.1:8b"}
    assert tools.chosen.name in {"llama3.2:3b", "llama3.1:8b"}
    both = decide(app_in_process, {"model": "IntelliProxyLLM", "prompt": "x", "images": [PIXEL],
                                   "tools": [{"type": "function"}]}, "/api/generate")
    assert both.chosen is None and all("lacks" in c.excluded or "embedding" in c.excluded for c in both.excluded)


def test_the_same_request_and_state_give_the_same_answer(app_in_process):
    body = chat("Compare PostgreSQL and MySQL for a small web shop.")
    first = decide(app_in_process, body)
    for _ in range(20):
        again = decide(app_in_process, body)
        assert [(c.name, round(c.score, 6)) for c in again.ranked] == \
            [(c.name, round(c.score, 6)) for c in first.ranked]


def test_loaded_model_is_preferred_and_big_cold_model_avoided_for_small_prompts(app_in_process,
                                                                                 realistic_ollama):
    body = chat("Tell me a fun fact about otters.")
    cold = {c.name: c for c in decide(app_in_process, body).ranked}
    assert any("big model" in r for r in cold["deepseek-r1:14b"].reasons)
    realistic_ollama.state.loaded.add("llama3.1:8b")
    try:
        app_in_process.resolver.catalog.refresh_models()
        warm = {c.name: c for c in decide(app_in_process, body).ranked}
        assert warm["llama3.1:8b"].score == pytest.approx(cold["llama3.1:8b"].score + 8)
        assert "already loaded (+8)" in warm["llama3.1:8b"].reasons
    finally:
        realistic_ollama.state.loaded.discard("llama3.1:8b")
        app_in_process.resolver.catalog.refresh_models()


def test_recent_failures_lower_a_model_and_wear_off(app_in_process):
    catalog = app_in_process.resolver.catalog
    body = chat("Write a Rust function that parses a date.")
    assert decide(app_in_process, body).chosen.name == "qwen2.5-coder:7b"
    catalog.health.failed("qwen2.5-coder:7b", "answered 500")
    catalog.health.failed("qwen2.5-coder:7b", "answered 500")
    try:
        decision = decide(app_in_process, body)
        assert decision.chosen.name != "qwen2.5-coder:7b"
        coder = next(c for c in decision.ranked if c.name == "qwen2.5-coder:7b")
        assert any("failed recently" in r for r in coder.reasons)
        import time
        assert catalog.health.penalty("qwen2.5-coder:7b", time.monotonic() + 3600) < 0.01
    finally:
        catalog.health.succeeded("qwen2.5-coder:7b")


def test_new_model_is_picked_up_by_the_refresher(app_in_process, realistic_ollama):
    realistic_ollama.state.models.append({"name": "qwen2.5vl:7b", "family": "qwen25vl", "parameter_size": "8.3B",
                                          "capabilities": ["completion", "vision"]})
    try:
        app_in_process.resolver.catalog.refresh_models()
        profile = app_in_process.resolver.catalog.snapshot.models["qwen2.5vl:7b"]
        assert "vision" in profile.categories and "translation" in profile.categories
        assert profile.stored  # a row was written for the dashboard to edit
    finally:
        realistic_ollama.state.models.pop()
        app_in_process.resolver.catalog.refresh_models()


def test_derivation_from_names_when_show_is_missing():
    assert parse_parameter_size("137M") == pytest.approx(0.137)
    assert parse_parameter_size("8x7B") == 56
    coder = derive_profile("deepseek-coder-v2:16b")
    assert coder.categories == ("code",) and coder.parameter_b == 16
    moe = derive_profile("qwen3:30b-a3b", {"details": {"parameter_size": "30.5B"},
                                           "capabilities": ["completion", "tools", "thinking"]})
    assert moe.speed >= 8 and moe.complexity >= 9  # fast (3B active) yet big
    assert derive_profile("mxbai-embed-large").capabilities == {"embedding"}
    assert "vision" in derive_profile("llava-phi3:3.8b").capabilities
