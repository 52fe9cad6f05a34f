"""Per-model routing to the AirLLM server, fallback to Ollama, merged model lists."""
from __future__ import annotations

import ollama
import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.proxy_process import free_port

pytestmark = pytest.mark.usefixtures("reset_routing")


def _configure(proxy, **service):
    response = requests.post(f"{proxy.dashboard_url}/config/airllm/service", json=service, timeout=5)
    assert response.status_code == 200, response.text
    wait_for_config_propagation()


def _flag(proxy, model, enabled=True):
    response = requests.post(f"{proxy.dashboard_url}/config/model/airllm",
                             json={"model_name": model, "enabled": enabled}, timeout=5)
    assert response.status_code == 200, response.text
    wait_for_config_propagation()


def _generate(proxy, model, **extra):
    return requests.post(f"{proxy.proxy_url}/api/generate", timeout=10,
                         json={"model": model, "prompt": "hi", "stream": False, **extra})


def test_flagged_model_goes_to_the_airllm_server(proxy, fake_airllm):
    _configure(proxy, enabled=True, host="127.0.0.1", port=fake_airllm.port)
    _flag(proxy, "llama3.1:70b")
    response = _generate(proxy, "llama3.1:70b")
    assert response.headers["X-IntelliProxy-Backend"] == "airllm"
    assert response.json()["response"].startswith("airllm-0")


def test_names_are_normalised(proxy, fake_airllm):
    _configure(proxy, enabled=True, host="127.0.0.1", port=fake_airllm.port)
    _flag(proxy, "llama3.2:1b")
    assert requests.get(f"{proxy.dashboard_url}/config/airllm", timeout=5).json()["model_config"]["llama3.2:1b"]
    _flag(proxy, "Tiny")  # stored as tiny:latest
    assert "tiny:latest" in requests.get(f"{proxy.dashboard_url}/config/airllm", timeout=5).json()["model_config"]
    assert _generate(proxy, "LLAMA3.2:1b").headers["X-IntelliProxy-Backend"] == "airllm"


def test_unflagged_model_and_disabled_service_stay_on_ollama(proxy, fake_airllm):
    _configure(proxy, enabled=False, host="127.0.0.1", port=fake_airllm.port)
    _flag(proxy, "llama3.2:1b")
    response = _generate(proxy, "llama3.2:1b")
    assert response.headers["X-IntelliProxy-Backend"] == "ollama" and response.json()["response"].startswith("ollama")


def test_airllm_down_falls_back_to_ollama(proxy):
    _configure(proxy, enabled=True, host="127.0.0.1", port=free_port())
    _flag(proxy, "llama3.2:1b")
    response = _generate(proxy, "llama3.2:1b")
    assert response.status_code == 200 and response.headers["X-IntelliProxy-Backend"] == "ollama-fallback"
    streamed = requests.post(f"{proxy.proxy_url}/api/chat", timeout=10, json={
        "model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]})
    assert streamed.headers["X-IntelliProxy-Backend"] == "ollama-fallback" and streamed.text.count("\n") == 6


def test_model_the_airllm_server_does_not_know_falls_back(proxy, fake_airllm):
    _configure(proxy, enabled=True, host="127.0.0.1", port=fake_airllm.port)
    _flag(proxy, "qwen2.5-coder:7b")  # only Ollama has it: the AirLLM server answers 404 model not found
    response = _generate(proxy, "qwen2.5-coder:7b")
    assert response.headers["X-IntelliProxy-Backend"] == "ollama-fallback" and response.status_code == 200


def test_other_airllm_errors_pass_through_unchanged(proxy, fake_airllm):
    _configure(proxy, enabled=True, host="127.0.0.1", port=fake_airllm.port)
    _flag(proxy, "llama3.1:70b")
    response = _generate(proxy, "llama3.1:70b", options={"fake_status": 503})
    assert response.status_code == 503 and response.json() == {"error": "fake failure from airllm"}
    assert response.headers["X-IntelliProxy-Backend"] == "airllm"


def test_lists_merge_both_backends_each_model_once(proxy, fake_airllm):
    _configure(proxy, enabled=True, host="127.0.0.1", port=fake_airllm.port)
    client = ollama.Client(host=proxy.proxy_url)
    names = [m.model for m in client.list().models]
    assert names.count("llama3.2:1b") == 1 and "llama3.1:70b" in names and "qwen2.5-coder:7b" in names
    v1 = requests.get(f"{proxy.proxy_url}/v1/models", timeout=5).json()
    assert {"llama3.1:70b", "llama3.2:1b"} <= {m["id"] for m in v1["data"]}


def test_lists_survive_the_airllm_server_being_down(proxy):
    _configure(proxy, enabled=True, host="127.0.0.1", port=free_port())
    names = [m.model for m in ollama.Client(host=proxy.proxy_url).list().models]
    assert "llama3.2:1b" in names and "llama3.1:70b" not in names


def test_ollama_unreachable_gives_502_naming_the_target(proxy):
    port = free_port()
    requests.post(f"{proxy.dashboard_url}/config/ollama", json={"host": "127.0.0.1", "port": port}, timeout=5)
    wait_for_config_propagation()
    response = _generate(proxy, "llama3.2:1b")
    assert response.status_code == 502
    assert response.json()["error"] == f"cannot reach Ollama at http://127.0.0.1:{port}: connection refused"
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=proxy.proxy_url).chat("llama3.2:1b", messages=[{"role": "user", "content": "x"}])
    assert err.value.status_code == 502


def test_health_answers_within_dockers_check_when_both_backends_hang(proxy):
    """Backends that accept connections but never answer are reported, and /health still answers quickly
    enough for the Dockerfile's 4 s HEALTHCHECK (both are probed at once, 1.5 s each)."""
    import socket
    import time

    silent = [socket.socket() for _ in range(2)]
    try:
        for sock in silent:
            sock.bind(("127.0.0.1", 0))
            sock.listen(16)  # never accepted, never answered
        ollama_port, airllm_port = (sock.getsockname()[1] for sock in silent)
        assert requests.post(f"{proxy.dashboard_url}/config/ollama", json={"host": "127.0.0.1", "port": ollama_port},
                             timeout=5).ok
        _configure(proxy, enabled=True, host="127.0.0.1", port=airllm_port)
        started = time.monotonic()
        report = requests.get(f"{proxy.proxy_url}/health", timeout=10).json()
        assert time.monotonic() - started < 4.0
        assert report["status"] == "degraded"
        assert not report["ollama"]["reachable"] and "no data from upstream" in report["ollama"]["error"]
        assert not report["airllm"]["reachable"] and report["airllm"]["error"]
    finally:
        for sock in silent:
            sock.close()
