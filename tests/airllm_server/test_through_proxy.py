"""The real AirLLM server behind the real proxy: a flagged model is served end to end by airllm."""
from __future__ import annotations

import ollama
import pytest
import requests

from tests.conftest import wait_for_config_propagation


@pytest.fixture
def routed_to_airllm(proxy, server, reset_routing):
    dashboard = proxy.dashboard_url
    port = int(server.url.rsplit(":", 1)[1])
    assert requests.post(f"{dashboard}/config/airllm/service", json={"enabled": True, "host": "127.0.0.1",
                                                                     "port": port}, timeout=5).ok
    assert requests.post(f"{dashboard}/config/model/airllm", json={"model_name": "tiny", "enabled": True},
                         timeout=5).ok
    wait_for_config_propagation()
    yield proxy


def test_flagged_model_is_generated_by_the_airllm_server(routed_to_airllm, server):
    body = {"model": "tiny", "prompt": "Hello", "stream": False, "options": {"temperature": 0, "num_predict": 5}}
    through_proxy = requests.post(f"{routed_to_airllm.proxy_url}/api/generate", json=body, timeout=120)
    direct = requests.post(f"{server.url}/api/generate", json=body, timeout=120)
    assert through_proxy.status_code == 200, through_proxy.text
    assert through_proxy.headers["X-IntelliProxy-Backend"] == "airllm"
    assert through_proxy.json()["response"] == direct.json()["response"]
    assert through_proxy.json()["eval_count"] == direct.json()["eval_count"]


def test_streamed_chat_through_the_proxy_with_the_official_client(routed_to_airllm):
    client = ollama.Client(host=routed_to_airllm.proxy_url)
    parts = list(client.chat("tiny", messages=[{"role": "user", "content": "Hi"}], stream=True,
                             options={"temperature": 0, "num_predict": 4}))
    assert parts[-1].done and parts[-1].done_reason in ("stop", "length")
    assert 1 <= parts[-1].eval_count <= 4
    assert all(p.message.role == "assistant" for p in parts)


def test_airllm_models_are_merged_into_the_proxy_lists(routed_to_airllm):
    names = [m.model for m in ollama.Client(host=routed_to_airllm.proxy_url).list().models]
    assert "tiny:latest" in names or "tiny" in names
    assert "llama3.2:1b" in names  # the Ollama target's models are still there
