"""Shared fixtures: a fake Ollama upstream (a real HTTP server) and the real proxy under gunicorn + gevent."""
from __future__ import annotations

import time

import pytest
import requests

from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess


CONFIG_POLL_SECONDS = 0.1


def wait_for_config_propagation(server=None, timeout: float = 20.0) -> None:
    """Wait until every worker of `server` (default: the session proxy) uses the latest config version.

    Each worker polls the version on its own; /health says which one it uses and which worker (pid) answered.
    Fresh connections land on whichever worker accepts first, so keep asking until every worker was heard from
    with the latest version.
    """
    server = server or _SESSION["proxy"]
    latest = requests.get(f"{server.dashboard_url}/config/airllm", timeout=5).json()["version"]
    deadline = time.monotonic() + timeout
    versions: dict[int, int] = {}
    while len(versions) < server.workers or min(versions.values()) < latest:
        if time.monotonic() > deadline:
            raise AssertionError(f"workers' config versions {versions}, latest is {latest}")
        with requests.Session() as fresh:
            proxy = fresh.get(f"{server.proxy_url}/health", timeout=5).json()["proxy"]
        versions[proxy["pid"]] = proxy["config_version"]
        if proxy["config_version"] < latest:
            time.sleep(CONFIG_POLL_SECONDS / 2)


_SESSION: dict = {}


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
    _SESSION["proxy"] = server
    yield server
    server.stop()


@pytest.fixture
def reset_routing(proxy, fake_ollama, fake_airllm):
    """Put the routing config back to its seed after a test that changed it (every flag it set, too)."""
    yield
    url = proxy.dashboard_url
    changes = [("/config/ollama", {"host": "127.0.0.1", "port": fake_ollama.port}),
               ("/config/airllm/service", {"enabled": False, "host": "127.0.0.1", "port": fake_airllm.port,
                                           "use_airllm_default": False})]
    flags = requests.get(f"{url}/config/airllm", timeout=5).json()["model_config"]
    changes += [("/config/model/airllm", {"model_name": name, "enabled": False}) for name, on in flags.items() if on]
    for path, body in changes:
        response = requests.post(f"{url}{path}", json=body, timeout=5)
        assert response.status_code == 200, (path, response.text)
    wait_for_config_propagation(proxy)
