"""A fake fleet: several fake Ollama servers (real HTTP servers on loopback) behind one real proxy."""
from __future__ import annotations

import time

import pytest
import requests

from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess, free_port

MODEL = {"family": "llama", "parameter_size": "1.2B", "capabilities": ["completion", "tools"]}


def models(*names):
    return [dict(MODEL, name=name) for name in names]


def wait_until(predicate, timeout: float = 15.0, what: str = "condition"):
    """Poll `predicate` until it returns something truthy, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


def nodes_view(proxy) -> dict:
    return {n["name"]: n for n in requests.get(f"{proxy.dashboard_url}/config/nodes", timeout=5).json()["nodes"]}


def every_worker_sees(proxy, check, what: str, timeout: float = 15.0):
    """Each worker keeps its own probes: ask /health (which names the worker) until `check(nodes)` held for every
    worker, each `nodes` being {name: {"state", ...}} as that worker sees them."""
    verdicts: dict[int, bool] = {}

    def held():
        with requests.Session() as fresh:  # a fresh connection may land on any worker
            report = fresh.get(f"{proxy.proxy_url}/health", timeout=5).json()
        verdicts[report["proxy"]["pid"]] = bool(check({n["name"]: n for n in report["nodes"]}))
        return len(verdicts) >= proxy.workers and all(verdicts.values())

    wait_until(held, timeout, what)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Nodes a and b answer; c is a port where nothing listens (refused). a has the coder model loaded, b the
    small one; both list the small model."""
    a = FakeOllama("node-a", models("llama3.2:1b", "qwen2.5-coder:7b")).start()
    b = FakeOllama("node-b", models("llama3.2:1b", "nomic-embed-text:latest")).start()
    a.state.loaded.add("qwen2.5-coder:7b")
    b.state.loaded.add("llama3.2:1b")
    c_port = free_port()
    hosts = (f"http://127.0.0.1:{a.port}?name=a&vram_gb=24&num_parallel=1,"
             f"127.0.0.1:{b.port}?name=b&vram_gb=24&num_parallel=1,"
             f"127.0.0.1:{c_port}?name=c&num_parallel=1")
    proxy = ProxyProcess(tmp_path_factory.mktemp("fleet") / "fleet.db", env={
        "OLLAMA_HOSTS": hosts, "CONFIG_POLL_SECONDS": "0.1", "PROXY_MAX_QUEUE": "2", "PROXY_QUEUE_TIMEOUT_S": "20",
        "LOG_RETENTION": "1000",
    }).start()
    every_worker_sees(proxy, lambda n: n["a"]["state"] == "up" and n["b"]["state"] == "up" and
                      n["c"]["state"] == "down" and "qwen2.5-coder:7b" in n["a"]["loaded"] and
                      "llama3.2:1b" in n["b"]["loaded"], "every worker to probe the fleet")
    yield {"a": a, "b": b, "c_port": c_port, "proxy": proxy}
    proxy.stop()
    a.stop()
    b.stop()


def records(proxy, **filters) -> list[dict]:
    """The request log's newest rows (the JSON twin), waiting for the flusher."""
    params = dict(limit=200, **filters)
    return requests.get(f"{proxy.dashboard_url}/requests", params=params, timeout=5).json()["requests"]
