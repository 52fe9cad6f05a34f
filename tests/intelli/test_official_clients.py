"""The virtual model and fallback chains through the official `ollama` and `openai` clients, against the real
product under gunicorn + gevent; and the performance test, which needs the real proxy port."""
from __future__ import annotations

import time

import ollama
import openai
import pytest
import requests

from tests.intelli.conftest import set_faults
from tests.intelli.labelled_prompts import PIXEL
from tests.support.proxy_process import ProxyProcess
from tests.support.waiting import wait_until

CODE_PROMPT = [{"role": "user", "content": "Write a Python function that checks if a number is prime."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, realistic_ollama):
    tmp = tmp_path_factory.mktemp("intelli-gunicorn")
    proc = ProxyProcess(tmp / "proxy.db", env={"OLLAMA_HOST": f"127.0.0.1:{realistic_ollama.port}",
                                               "CATALOG_POLL_SECONDS": "0.5"}).start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # both workers have listed the models once
        ok = sum(requests.post(f"{proc.dashboard_url}/classify", json={"prompt": "hi"}, timeout=5)
                 .json()["chosen"] == "llama3.2:3b" for _ in range(4))
        if ok == 4:
            break
    yield proc
    proc.stop()


@pytest.fixture
def client(server):
    return ollama.Client(host=server.proxy_url)


@pytest.fixture
def oai(server):
    return openai.OpenAI(base_url=f"{server.proxy_url}/v1", api_key="ollama", max_retries=0)


def test_virtual_model_is_listed(client, oai):
    assert "IntelliProxyLLM:latest" in [m.model for m in client.list().models]
    assert "IntelliProxyLLM:latest" in [m.id for m in oai.models.list().data]
    assert oai.models.retrieve("IntelliProxyLLM").id == "IntelliProxyLLM:latest"
    shown = client.show("IntelliProxyLLM")
    assert shown.modelinfo is not None and {"completion", "vision", "tools"} <= set(shown.capabilities)


def test_ollama_client_chat_and_generate(client):
    reply = client.chat(model="IntelliProxyLLM", messages=CODE_PROMPT, options={"num_predict": 3})
    assert reply.model == "qwen2.5-coder:7b" and reply.message.content == "ollama-0 ollama-1 ollama-2 "
    parts = list(client.chat(model="IntelliProxyLLM", messages=CODE_PROMPT, stream=True, options={"num_predict": 3}))
    assert {p.model for p in parts} == {"qwen2.5-coder:7b"} and parts[-1].done
    assert client.generate(model="IntelliProxyLLM", prompt="hello!").model == "llama3.2:3b"
    seen = client.generate(model="IntelliProxyLLM", prompt="What is on this picture?", images=[PIXEL])
    assert seen.model == "llava:7b"
    assert client.embed(model="IntelliProxyLLM", input=["a", "b"]).model == "nomic-embed-text:latest"


def test_openai_client_chat_stream_and_header(oai):
    raw = oai.chat.completions.with_raw_response.create(model="IntelliProxyLLM", messages=CODE_PROMPT,
                                                        max_tokens=3)
    assert raw.headers["X-IntelliProxy-Model"] == "qwen2.5-coder:7b"
    completion = raw.parse()
    assert completion.model == "qwen2.5-coder:7b" and completion.choices[0].message.content
    chunks = list(oai.chat.completions.create(model="IntelliProxyLLM", stream=True, max_tokens=3,
                                              messages=[{"role": "user", "content": "Prove that 17 is prime."}]))
    assert {c.model for c in chunks} == {"deepseek-r1:14b"}


def config_versions(server, tries: int = 12) -> dict:
    """pid -> config version, from /health over fresh connections (each may land on another worker)."""
    seen = {}
    for _ in range(tries):
        proxy = requests.get(f"{server.proxy_url}/health", timeout=5, headers={"Connection": "close"}).json()["proxy"]
        seen[proxy["pid"]] = proxy["config_version"]
    return seen


def wait_until_every_worker_has(server, version: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        seen = config_versions(server)
        if len(seen) == server.workers and min(seen.values()) >= version:
            return
    raise AssertionError(f"workers did not reach config version {version}: {seen}")


def test_fallback_through_official_clients(server, realistic_ollama, client, oai):
    before = max(config_versions(server).values())
    r = requests.post(f"{server.dashboard_url}/config/fallbacks",
                      json={"fallbacks": {"qwen2.5-coder:7b": ["llama3.1:8b"]}, "timeout": 1}, timeout=5)
    assert r.status_code == 200
    wait_until_every_worker_has(server, before + 1)
    set_faults(realistic_ollama, "qwen2.5-coder:7b", status=500)
    try:
        for _ in range(3):
            assert client.chat(model="qwen2.5-coder:7b", messages=CODE_PROMPT).model == "llama3.1:8b"
        stream = list(oai.chat.completions.create(model="qwen2.5-coder:7b", messages=CODE_PROMPT, stream=True,
                                                  max_tokens=2))
        assert {c.model for c in stream} == {"llama3.1:8b"}
    finally:
        set_faults(realistic_ollama, "qwen2.5-coder:7b")
        requests.post(f"{server.dashboard_url}/config/fallbacks", json={"fallbacks": {}}, timeout=5)


def test_classify_endpoint(server, client, realistic_ollama):
    german_math = {"messages": [{"role": "user", "content": "Berechne das Integral von x^2 * e^x und beweise Schritt "
                                                            "für Schritt, dass es stimmt."}]}
    # "Already loaded" is part of the score, and earlier tests loaded llama3.1:8b (the fallback) but not
    # deepseek-r1:14b (the fake marks only native calls). Load it, as `ollama run` would, and wait until every
    # worker's catalog has polled /api/ps since: the ranking then no longer depends on which worker answers.
    client.generate(model="deepseek-r1:14b")
    loaded_at = time.time()
    # Answers in a row can all come from one worker. Every worker's catalog polls /api/ps on the same period
    # (CATALOG_POLL_SECONDS=0.5 above): once the fake has answered three polls per worker since the load, each
    # worker has seen the model loaded, and the loop below confirms it.
    wait_until(lambda: sum(r.at > loaded_at for r in realistic_ollama.requests_to("/api/ps")) >= 3 * server.workers,
               15, "three /api/ps polls per worker after the load")
    deadline, in_a_row = time.monotonic() + 10, 0
    while in_a_row < 6 and time.monotonic() < deadline:
        ranked = requests.post(f"{server.dashboard_url}/classify", json=german_math, timeout=5).json()["candidates"]
        seen = next(c for c in ranked if c["model"] == "deepseek-r1:14b")
        in_a_row = in_a_row + 1 if "already loaded (+8)" in seen["reasons"] else 0
    r = requests.post(f"{server.dashboard_url}/classify", json=german_math, timeout=5)
    body = r.json()
    assert r.status_code == 200 and body["category"] == "math" and body["chosen"] == "deepseek-r1:14b"
    assert body["classification"]["language"] == "de" and body["scores"]["deepseek-r1:14b"] > 0
    assert requests.post(f"{server.dashboard_url}/classify", json={}, timeout=5).status_code == 400


def test_performance_test_all_routes(server):
    r = requests.post(f"{server.dashboard_url}/performance-test",
                      json={"prompt": "Write a haiku about coffee", "mode": "all", "max_tokens": 4}, timeout=60)
    assert r.status_code == 200, r.text
    results = {x["target"]: x for x in r.json()["results"]}
    assert set(results) == {"direct", "proxy", "airllm", "intelli"}
    for target in ("direct", "proxy", "intelli"):
        assert results[target]["status"] == "ok", results[target]
        assert results[target]["tokens"] == 4 and results[target]["ttft_ms"] <= results[target]["duration_ms"]
        assert results[target]["tokens_per_s"] > 0
    # Without a model, every route tests the one IntelliProxyLLM picks for the prompt.
    assert results["direct"]["model"] == results["proxy"]["model"] == results["intelli"]["model"]
    assert results["intelli"]["model"] in {"llama3.2:3b", "llama3.1:8b"}
    assert results["airllm"]["status"] == "unavailable" and "disabled" in results["airllm"]["error"]
    listed = requests.get(f"{server.dashboard_url}/performance-test", timeout=5).json()["runs"]
    assert listed[0]["run_id"] == r.json()["run_id"] and len(listed[0]["results"]) == 4
    bad = requests.post(f"{server.dashboard_url}/performance-test", json={"prompt": "x", "mode": "warp"}, timeout=5)
    assert bad.status_code == 400 and bad.json()["field"] == "mode"


def test_performance_test_reports_a_dead_ollama_as_unavailable(server, realistic_ollama):
    url = server.dashboard_url
    from tests.support.proxy_process import free_port

    requests.post(f"{url}/config/ollama", json={"host": "127.0.0.1", "port": free_port()}, timeout=5)
    try:
        r = requests.post(f"{url}/performance-test", json={"prompt": "hi", "mode": "direct",
                                                           "model": "llama3.2:3b"}, timeout=30)
        result = r.json()["results"][0]
        assert r.status_code == 200 and result["status"] == "unavailable" and "cannot reach" in result["error"]
    finally:
        requests.post(f"{url}/config/ollama", json={"host": "127.0.0.1", "port": realistic_ollama.port}, timeout=5)
