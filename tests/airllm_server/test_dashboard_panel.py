"""The dashboard's AirLLM page, live, fed by the real AirLLM server's /api/queue through the real proxy.

The AirLLM server runs one sequence at a time here, so a long generation runs while a second request waits: the
page (Debian's Chromium through Playwright, and a plain HTTP fetch of its fragment) must show the resident model,
the running request with its tokens, and the waiting one with its position and an ETA, and update by itself.
"""

from __future__ import annotations

import http.client
import json
import threading
from pathlib import Path

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.airllm_process import AirLLMProcess
from tests.support.waiting import wait_for
from tests.support.tiny_model import build_tiny_model

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def panel_server(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("models") / "panel", seed=0, max_position_embeddings=4096)
    env = {"AIRLLM_MAX_BATCH": "1", "AIRLLM_MAX_QUEUE": "2"}
    with AirLLMProcess({"tiny": folder}, shards_dir=tmp_path_factory.mktemp("panel-shards"), env=env) as proc:
        yield proc


@pytest.fixture
def routed(proxy, panel_server, reset_routing):
    assert requests.post(f"{proxy.dashboard_url}/config/airllm/service", json={
        "enabled": True, "host": "127.0.0.1", "port": panel_server.port}, timeout=5).ok
    wait_for_config_propagation()
    return proxy


def _long_stream(server, prompt: str) -> http.client.HTTPConnection:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/api/generate", json.dumps({"model": "tiny", "prompt": prompt, "options": {
        "temperature": 0, "num_predict": 4000}}), {"Content-Type": "application/json"})
    return conn


def test_panel_is_off_while_the_service_is_disabled(proxy):
    page = requests.get(f"{proxy.dashboard_url}/airllm", timeout=10)
    assert page.status_code == 200 and 'id="airllm-off"' in page.text
    assert 'href="/airllm"' in page.text                     # the nav links the page


def test_panel_shows_the_batch_and_the_waiting_line_live(routed, panel_server):
    running = _long_stream(panel_server, "Numbers")
    assert running.getresponse().status == 200
    wait_for(lambda: panel_server.health()["queue"]["batch_size"] == 1, "the running generation")
    waiting = _long_stream(panel_server, "Hello")
    threading.Thread(target=lambda: waiting.getresponse(), daemon=True).start()
    try:
        wait_for(lambda: panel_server.health()["queue"]["depth"] == 1, "the waiting request")
        fragment = requests.get(f"{routed.dashboard_url}/airllm", headers={"HX-Request": "true"}, timeout=10).text
        assert fragment.startswith('<div id="airllm-queue"') and "<html" not in fragment
        assert 'hx-trigger="every 2s"' in fragment and "tiny:latest" in fragment
        if not Path(CHROMIUM).exists():
            pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
        playwright_api = pytest.importorskip("playwright.sync_api")
        with playwright_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox",
                                                                                        "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            problems = []
            page.on("pageerror", lambda exc: problems.append(f"JS error: {exc}"))
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(f"{routed.dashboard_url}/airllm")
            expect = playwright_api.expect
            expect(page.locator("#airllm-resident")).to_have_text("tiny:latest")
            batch = page.locator("#airllm-batch tbody tr")
            expect(batch).to_have_count(1)
            expect(batch.first).to_contain_text("generate")
            line = page.locator("#airllm-waiting tbody tr")
            expect(line).to_have_count(1)
            expect(line.first.locator("td").first).to_have_text("1")
            expect(line.first).to_contain_text("~")                          # an ETA in seconds
            first_tokens = int(batch.first.locator("td").nth(3).inner_text().split("/")[0])
            # The fragment refreshes by itself: the running request's token count grows without a reload.
            page.wait_for_function(
                "n => parseInt(document.querySelector('#airllm-batch tbody tr td:nth-child(4)')"
                ".textContent) > n", arg=first_tokens, timeout=15000)
            expect(page.locator("#airllm-rate")).to_contain_text("steps/s")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "airllm-panel.png"), full_page=True)
            browser.close()
        assert problems == []
    finally:
        for conn in (running, waiting):
            conn.sock.close()
            conn.close()
        wait_for(lambda: panel_server.health()["queue"]["batch_size"] == 0, "the device to be free")
