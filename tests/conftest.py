"""Shared fixtures: a fake Ollama upstream (a real HTTP server) and the real proxy under gunicorn + gevent."""
from __future__ import annotations

import time

import pytest
import requests

from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess


CONFIG_POLL_SECONDS = 0.1


def wait_for_config_propagation() -> None:
    """Every worker polls the config version; after this long all of them have the latest snapshot."""
    time.sleep(CONFIG_POLL_SECONDS * 3)


@pytest.fixture(scope="session")
def fake_ollama():
    server = FakeOllama("ollama").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_airllm():
    """A second fake standing in for the AirLLM server (its own model list, its name in every token)."""
    server = FakeOllama("airllm", models=[
        {"name": "llama3.1:70b", "family": "llama", "parameter_size": "70.6B", "capabilities": ["completion"]},
        {"name": "llama3.2:1b", "family": "llama", "parameter_size": "1.2B", "capabilities": ["completion"]},
    ]).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def proxy(tmp_path_factory, fake_ollama, fake_airllm):
    """The product under gunicorn (2 gevent workers) pointed at the fakes; the AirLLM service starts disabled."""
    tmp = tmp_path_factory.mktemp("proxy")
    server = ProxyProcess(tmp / "proxy.db", env={
        "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}",
        "AIRLLM_HOST": "127.0.0.1", "AIRLLM_PORT": str(fake_airllm.port),
        "MAX_REQUEST_MB": "1", "CONFIG_POLL_SECONDS": str(CONFIG_POLL_SECONDS),
    }).start()
    yield server
    server.stop()


@pytest.fixture
def reset_routing(proxy, fake_ollama, fake_airllm):
    """Put the routing config back to its seed after a test that changed it."""
    yield
    url = proxy.dashboard_url
    requests.post(f"{url}/config/ollama", json={"host": "127.0.0.1", "port": fake_ollama.port}, timeout=5)
    requests.post(f"{url}/config/airllm/service", json={"enabled": False, "host": "127.0.0.1",
                                                        "port": fake_airllm.port}, timeout=5)
    for name in ("llama3.1:70b", "llama3.2:1b", "ghost-model", "qwen2.5-coder:7b"):
        requests.post(f"{url}/config/model/airllm", json={"model_name": name, "enabled": False}, timeout=5)
    wait_for_config_propagation()
