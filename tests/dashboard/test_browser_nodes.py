"""The Nodes page in Debian's Chromium (Playwright): against the real server (gunicorn, two gevent workers) seeded
with OLLAMA_HOSTS, and once against the dashboard app in-process with a live fleet status, to see the VRAM bars.

Screenshots go to test-artifacts/screenshots/nodes*.png; a JavaScript error or a Content-Security-Policy
violation fails the test (the `page` fixture of test_browser.py).
"""
from __future__ import annotations

import threading

import pytest
import requests
from werkzeug.serving import make_server

from tests.dashboard.conftest import FleetStatus, close_app, make_app, record, submit
from tests.dashboard.test_browser import browser, page, shot  # noqa: F401  (the browser and page fixtures)
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess, free_port

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fleet():
    nodes = [FakeOllama(name).start() for name in ("gpu-a", "gpu-b", "gpu-c")]
    yield nodes
    for node in nodes:
        node.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, fleet):
    a, b, _c = fleet
    hosts = f"http://127.0.0.1:{a.port}?name=gpu-a&vram_gb=24&num_parallel=2,127.0.0.1:{b.port}?name=gpu-b"
    process = ProxyProcess(tmp_path_factory.mktemp("nodes") / "nodes.db", env={
        "OLLAMA_HOSTS": hosts, "AIRLLM_HOST": "127.0.0.1", "AIRLLM_PORT": str(free_port()),
        "CONFIG_POLL_SECONDS": "0.1"}).start()
    yield process
    process.stop()


def snapshot(page, name: str) -> None:
    """A screenshot, then a reload: Playwright's full-page capture leaves `style=""` on form controls, which htmx's
    settling would copy onto the next swapped-in form (an inline style the CSP refuses)."""
    shot(page, name)
    page.reload()


def _api_nodes(server) -> list[dict]:
    return requests.get(f"{server.dashboard_url}/config/nodes", timeout=5).json()["nodes"]


def test_add_test_invalid_port_disable_and_remove_a_node(page, server, fleet):
    c = fleet[2]
    page.goto(f"{server.dashboard_url}/nodes")
    rows = page.locator("#node-rows tr")
    expect(rows).to_have_count(2)  # seeded from OLLAMA_HOSTS
    expect(page.locator('tr[data-node="gpu-a"]')).to_contain_text("24 GB")

    page.get_by_label("Node host").fill("127.0.0.1")
    page.get_by_label("Node port").fill("70000")
    page.get_by_role("button", name="Add node").click()
    expect(page.locator("#node-port-error")).to_have_text("Node port must be an integer between 1 and 65535")
    expect(page.get_by_label("Node port")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#node-form")).to_contain_text("Not saved")
    snapshot(page, "nodes-invalid-port")
    assert len(_api_nodes(server)) == 2
    page.get_by_label("Node host").fill("127.0.0.1")

    page.get_by_label("Node port").fill(str(c.port))
    page.get_by_label("Node name").fill("gpu-c")
    page.get_by_label("VRAM (GB)").fill("48")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator("#node-test")).to_contain_text("version 0.12.0-gpu-c")
    page.get_by_role("button", name="Add node").click()
    expect(page.locator("#node-form .saved")).to_contain_text(f"Added 127.0.0.1:{c.port}.")
    expect(rows).to_have_count(3)
    expect(page.get_by_label("Node port")).to_have_value("11434")  # a fresh form for the next node
    snapshot(page, "nodes-added")

    page.get_by_role("button", name="Disable gpu-c").click()
    expect(page.locator('tr[data-node="gpu-c"] .badge')).to_have_text("disabled")
    assert [n["enabled"] for n in _api_nodes(server)] == [True, True, False]
    page.get_by_role("button", name="Edit gpu-b").click()
    expect(page.locator("#node-form-title")).to_have_text("Edit node gpu-b")
    page.get_by_label("Parallel requests").fill("4")
    page.get_by_role("button", name="Save node").click()
    expect(page.locator('tr[data-node="gpu-b"]')).to_contain_text("parallel 4")

    page.get_by_role("button", name="Remove gpu-c").click()  # the page fixture accepts the confirmation
    expect(rows).to_have_count(2)
    assert [n["name"] for n in _api_nodes(server)] == ["gpu-a", "gpu-b"]
    shot(page, "nodes")


@pytest.fixture
def live_dashboard(tmp_path):
    """The real dashboard app in-process (werkzeug on loopback) with a routing engine's status to show."""
    dispatcher, app = make_app(tmp_path, SEED_OLLAMA_HOST="gpu-a.lan")
    services = dispatcher.services
    client = app.test_client()
    client.patch("/config/nodes/1", json={"name": "gpu-a", "vram_gb": 24, "num_parallel": 2})
    client.post("/config/nodes", json={"name": "gpu-b", "host": "gpu-b.lan", "port": 11434, "vram_gb": 12})
    client.post("/config/nodes", json={"name": "gpu-c", "host": "gpu-c.lan", "port": 11434})
    engine = services.extras.get("fleet")  # put back before closing the app
    services.extras["fleet"] = FleetStatus({
        1: {"state": "up", "probe_ms": 1.8, "models": ["qwen3:8b", "llama3.1:8b"], "in_flight": 2, "waiting": 3,
            "loaded": [{"name": "qwen3:8b", "size_vram": 6_200_000_000},
                       {"name": "llama3.1:8b", "size_vram": 9_800_000_000}], "loads_observed": 2},
        2: {"state": "up", "probe_ms": 2.4, "models": ["qwen3:8b"], "in_flight": 0, "waiting": 0,
            "loaded": [], "loads_observed": 0},
        3: {"state": "down", "probe_ms": None, "last_error": "connection refused", "models": [], "loaded": [],
            "in_flight": 0, "waiting": 0}})
    failed = record(status=502, error="upstream closed the connection")
    failed.node = "gpu-b"
    answered = [record() for _ in range(4)]
    for r in answered:
        r.node = "gpu-a"
    submit(services, failed, *answered)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    services.extras["fleet"] = engine
    close_app(dispatcher)


def test_live_state_and_vram_bars(page, live_dashboard):
    page.goto(f"{live_dashboard}/nodes")
    gpu_a = page.locator('tr[data-node="gpu-a"]')
    expect(gpu_a.locator(".badge")).to_have_text("up")
    expect(gpu_a.get_by_label("qwen3:8b: 6.2 GB")).to_have_attribute("value", "6.2")
    expect(gpu_a.get_by_label("gpu-a: 16.0 of 24.0 GB used")).to_have_attribute("max", "24.0")
    expect(page.locator('tr[data-node="gpu-c"]')).to_contain_text("connection refused")
    expect(page.locator('tr[data-node="gpu-b"]')).to_contain_text("upstream closed the connection")
    shot(page, "nodes-live")
