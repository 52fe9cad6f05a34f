"""The AirLLM page when the AirLLM server cannot say anything: disabled, unreachable, or no /api/queue.

(The live page against the real AirLLM server is tests/airllm_server/test_dashboard_panel.py, which needs torch.)
"""
from __future__ import annotations

import requests

from tests.conftest import wait_for_config_propagation
from tests.support.proxy_process import free_port


def _point_airllm_at(proxy, port: int) -> None:
    assert requests.post(f"{proxy.dashboard_url}/config/airllm/service", json={
        "enabled": True, "host": "127.0.0.1", "port": port}, timeout=5).ok
    wait_for_config_propagation()


def test_a_server_without_api_queue_is_named_not_mistaken_for_an_empty_line(proxy, fake_airllm, reset_routing):
    _point_airllm_at(proxy, fake_airllm.port)
    fragment = requests.get(f"{proxy.dashboard_url}/airllm", headers={"HX-Request": "true"}, timeout=10).text
    assert 'id="airllm-error"' in fragment and "has no /api/queue" in fragment
    assert "airllm-batch" not in fragment


def test_an_unreachable_server_is_reported_in_the_page(proxy, reset_routing):
    _point_airllm_at(proxy, free_port())
    reply = requests.get(f"{proxy.dashboard_url}/airllm", timeout=10)
    assert reply.status_code == 200
    assert "cannot connect to http://127.0.0.1:" in reply.text
    assert "<nav" in reply.text and 'aria-current="page"' in reply.text
