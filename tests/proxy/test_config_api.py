"""The config JSON API: validation, propagation to every worker without restart, persistence across restarts."""
from __future__ import annotations

import time

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess


def _config(url):
    return requests.get(f"{url}/config/airllm", timeout=5).json()


@pytest.mark.parametrize("path,body,field", [
    ("/config/ollama", {"host": "http://evil.example", "port": 11434}, "host"),
    ("/config/ollama", {"host": "bad host", "port": 11434}, "host"),
    ("/config/ollama", {"host": "ok.local/path", "port": 11434}, "host"),
    ("/config/ollama", {"host": "ok\x00.local", "port": 11434}, "host"),
    ("/config/ollama", {"host": "169.254.169.254", "port": 80}, "host"),
    ("/config/ollama", {"host": "[fd00:ec2::254]", "port": 80}, "host"),
    ("/config/airllm/service", {"host": "metadata.google.internal"}, "host"),
    ("/config/ollama", {"host": "localhost", "port": 0}, "port"),
    ("/config/ollama", {"host": "localhost", "port": 70000}, "port"),
    ("/config/ollama", {"host": "localhost", "port": "eleven"}, "port"),
    ("/config/ollama", {"host": "localhost", "port": True}, "port"),
    ("/config/airllm/service", {"enabled": "maybe", "host": "gpu", "port": 8000}, "enabled"),
    ("/config/airllm/service", {"enabled": True, "host": "gpu", "port": -1}, "port"),
    ("/config/model/airllm", {"model_name": "", "enabled": True}, "model_name"),
    ("/config/model/airllm", {"model_name": "x" * 257, "enabled": True}, "model_name"),
    ("/config/model/airllm", {"model_name": "llama3 <script>", "enabled": True}, "model_name"),
    ("/config/model/airllm", {"model_name": "llama3", "enabled": "yes please"}, "enabled"),
    ("/config/model/airllm", {"enabled": True}, "model_name"),
])
def test_bad_config_gets_400_naming_the_field_and_changes_nothing(proxy, path, body, field):
    before = _config(proxy.dashboard_url)
    response = requests.post(f"{proxy.dashboard_url}{path}", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["field"] == field and response.json()["error"].startswith(field)
    assert _config(proxy.dashboard_url) == before


def test_non_json_config_body_is_rejected(proxy):
    response = requests.post(f"{proxy.dashboard_url}/config/ollama", data="host=x", timeout=5)
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


def test_ipv6_and_hostnames_are_accepted(proxy, reset_routing):
    for host in ("::1", "[::1]", "gpu-box.internal", "10.0.0.7", "ollama_service"):
        response = requests.post(f"{proxy.dashboard_url}/config/ollama", json={"host": host, "port": 11434},
                                 timeout=5)
        assert response.status_code == 200, (host, response.text)
    assert _config(proxy.dashboard_url)["ollama_host"] == "ollama_service"


def test_change_reaches_every_worker_within_a_second_and_survives_restart(tmp_path, fake_ollama):
    second = FakeOllama("second").start()
    server = ProxyProcess(tmp_path / "p.db", env={"OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}"}, workers=2)
    try:
        server.start()
        changed = requests.post(f"{server.dashboard_url}/config/ollama",
                                json={"host": "127.0.0.1", "port": second.port}, timeout=5)
        assert changed.status_code == 200 and changed.json()["ollama_port"] == second.port
        started = time.monotonic()
        wait_for_config_propagation(server, timeout=10)
        # Each worker polls every CONFIG_POLL_SECONDS (0.5 s by default); a generous bound for a busy machine.
        assert time.monotonic() - started < 3.0
        pids, versions = set(), set()
        for _ in range(40):  # a new connection each time, so both workers answer some of them
            with requests.Session() as session:
                health = session.get(f"{server.proxy_url}/health", timeout=5).json()
                pids.add(health["proxy"]["pid"])
                versions.add(health["proxy"]["config_version"])
                version = session.get(f"{server.proxy_url}/api/version", timeout=5).json()["version"]
                assert version == "0.12.0-second"
        assert len(pids) == 2, "both workers should have answered"
        assert len(versions) == 1

        server.restart()  # the environment still names the first fake: the database wins after the first start
        assert _config(server.dashboard_url)["ollama_port"] == second.port
        assert requests.get(f"{server.proxy_url}/api/version", timeout=5).json()["version"] == "0.12.0-second"
    finally:
        server.stop()
        second.stop()
