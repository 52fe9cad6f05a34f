"""Errors met while deciding whether to fall back, and 404s that name no model (issue: a route 404 is not
"model not found")."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.raw_server import RawServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("reset_routing")


BROKEN_404 = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"error\":"


@pytest.fixture
def broken():
    """Answers every request with a 404 head announcing 100 bytes, sends 9, and hangs up."""
    paths: list[str] = []

    def script(request: bytes):
        paths.append(request.split(b" ", 2)[1].decode())
        return [(0, BROKEN_404), (0, None)]

    server = RawServer(script)
    server.paths = paths
    yield server
    server.close()


def _airllm(proxy, port, model):
    for path, body in (("/config/airllm/service", {"enabled": True, "host": "127.0.0.1", "port": port}),
                       ("/config/model/airllm", {"model_name": model, "enabled": True})):
        assert requests.post(f"{proxy.dashboard_url}{path}", json=body, timeout=5).status_code == 200
    wait_for_config_propagation()


def _logged(proxy, **match):
    def find():
        rows = requests.get(f"{proxy.dashboard_url}/requests", params={"limit": 20}, timeout=5).json()["requests"]
        return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)
    return wait_until(find, 10, f"a request-log row with {match}")


def test_a_reply_that_breaks_while_deciding_on_fallback_falls_back_and_is_recorded(proxy, broken):
    _airllm(proxy, broken.port, "llama3.2:1b")
    reply = requests.post(f"{proxy.proxy_url}/api/generate", timeout=10,
                          json={"model": "llama3.2:1b", "prompt": "hi", "stream": False})
    assert reply.status_code == 200 and reply.headers["X-IntelliProxy-Backend"] == "ollama-fallback"
    assert "/api/generate" in broken.paths  # it was asked, and its broken 404 did not end the request
    row = _logged(proxy, model="llama3.2:1b", backend="ollama-fallback")
    assert "falling back" in row["note"]


def test_a_route_the_airllm_server_lacks_is_a_clear_501_not_model_not_found(proxy, fake_airllm):
    _airllm(proxy, fake_airllm.port, "llama3.2:1b")  # the fake has no /v1/completions: gin's text 404
    reply = requests.post(f"{proxy.proxy_url}/v1/completions", timeout=10,
                          json={"model": "llama3.2:1b", "prompt": "hi"})
    assert reply.status_code == 501
    error = reply.json()["error"]
    assert "the AirLLM server does not serve /v1/completions" in error["message"] and "switch" in error["message"]
    assert _logged(proxy, endpoint="/v1/completions", status=501)
