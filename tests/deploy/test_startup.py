"""What the real product (gunicorn, gunicorn.conf.py, two gevent workers) tells the person who starts it: where to
click, whether Ollama answered, and which environment values the stored config does not use (with the dashboard's
one-click "use the environment's value")."""
from __future__ import annotations

import html
import re
import time

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess, free_port

DRIFT = ("The environment (OLLAMA_HOST) names the Ollama target 127.0.0.1:{new}, but the stored 127.0.0.1:{old} is "
         "in use: the environment only seeds an empty database.")


@pytest.fixture(scope="module")
def ollamas():
    """Two fake Ollama servers: the first start's target, and the one the environment names after a restart."""
    servers = [FakeOllama(name).start() for name in ("ollama-a", "ollama-b")]
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def ollama_a(ollamas):
    return ollamas[0]


@pytest.fixture(scope="module")
def ollama_b(ollamas):
    return ollamas[1]


def wait_for_log(process: ProxyProcess, text: str, since: int = 0, timeout: float = 10.0) -> str:
    """The log from byte `since` on, once it contains `text`."""
    deadline = time.monotonic() + timeout
    while True:
        log = process.log_path.read_bytes()[since:].decode(errors="replace")
        if text in log:
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the log:\n{log[-3000:]}")
        time.sleep(0.05)


def test_start_prints_where_to_click_and_that_ollama_answered(tmp_path, ollama_a):
    process = ProxyProcess(tmp_path / "urls.db", env={"OLLAMA_HOST": f"127.0.0.1:{ollama_a.port}"}).start()
    try:
        log = wait_for_log(process, "Ollama answered at")
        assert f"Dashboard: {process.dashboard_url} · Proxy: {process.proxy_url}\n" in log
        assert re.search(rf"Ollama answered at http://127\.0\.0\.1:{ollama_a.port} \(version 0\.12\.0-ollama-a, "
                         r"[\d.]+ ms\)", log)
    finally:
        process.stop()


def test_start_says_when_ollama_did_not_answer_and_still_serves(tmp_path):
    dead = free_port()
    process = ProxyProcess(tmp_path / "dead.db", env={"OLLAMA_HOST": f"127.0.0.1:{dead}"}).start()
    try:
        log = wait_for_log(process, "Ollama did not answer")
        assert (f"Ollama did not answer: cannot connect to http://127.0.0.1:{dead}: connection refused (the proxy "
                "runs anyway; /health shows when it answers)") in log
        assert requests.get(f"{process.proxy_url}/health", timeout=5).json()["ollama"]["error"] == (
            f"cannot connect to http://127.0.0.1:{dead}: connection refused")  # the same words as /health
    finally:
        process.stop()


def generate(proxy_url: str) -> requests.Response:
    return requests.post(f"{proxy_url}/api/generate", json={"model": "llama3.2:1b", "prompt": "hi", "stream": False},
                         timeout=10)


def csrf_of(page_html: str) -> str:
    return html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1))


def test_restart_with_another_ollama_host_is_logged_and_offered_on_the_dashboard(tmp_path, ollama_a, ollama_b):
    process = ProxyProcess(tmp_path / "drift.db", env={"OLLAMA_HOST": f"127.0.0.1:{ollama_a.port}"}).start()
    try:
        first = wait_for_log(process, "Ollama answered at")
        assert "The environment (" not in first  # a first start seeds; nothing to report

        since = process.log_path.stat().st_size
        process.extra_env["OLLAMA_HOST"] = f"127.0.0.1:{ollama_b.port}"
        process.restart()
        log = wait_for_log(process, DRIFT.format(new=ollama_b.port, old=ollama_a.port), since)
        assert log.count("The environment (") == 1  # one line per start (app.startup), not one per migration run
        with requests.Session() as browser:
            page = browser.get(f"{process.dashboard_url}/connections", timeout=5).text
            assert "The environment names other settings" in page
            assert (f"<code>OLLAMA_HOST</code> names <code>127.0.0.1:{ollama_b.port}</code>; in use: "
                    f"<code>127.0.0.1:{ollama_a.port}</code>") in page
            # Still the stored target until someone presses the button (generate: nothing else sends it, unlike
            # the model lists that background probes read).
            assert generate(process.proxy_url).status_code == 200
            assert (len(ollama_a.requests_to("/api/generate")), ollama_b.requests_to("/api/generate")) == (1, [])

            answer = browser.post(f"{process.dashboard_url}/connections/use-environment", timeout=5,
                                  data={"target": "ollama", "next": "dashboard.connections", "csrf_token": csrf_of(page)})
            assert answer.status_code == 200 and answer.url == f"{process.dashboard_url}/connections"  # after the 303
            assert "The environment names other settings" not in answer.text
        config = requests.get(f"{process.dashboard_url}/config/airllm", timeout=5).json()
        assert (config["ollama_host"], config["ollama_port"]) == ("127.0.0.1", ollama_b.port)
        wait_for_config_propagation(process)
        for _ in range(4):  # fresh connections: both workers
            assert generate(process.proxy_url).status_code == 200
        assert (len(ollama_a.requests_to("/api/generate")), len(ollama_b.requests_to("/api/generate"))) == (1, 4)

        since = process.log_path.stat().st_size
        process.restart()  # environment and database agree now
        assert "The environment (" not in wait_for_log(process, "Ollama answered at", since)
    finally:
        process.stop()
