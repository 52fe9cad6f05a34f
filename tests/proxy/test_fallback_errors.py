"""Errors met while deciding whether to fall back, and 404s that name no model (issue: a route 404 is not
"model not found")."""
from __future__ import annotations

import socket
import threading

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.waiting import wait_until

pytestmark = pytest.mark.usefixtures("reset_routing")


class BrokenReplies:
    """Answers every request with a 404 head announcing 100 bytes, sends 9, and hangs up."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.paths: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                             b"\r\n{\"error\":")
                self.paths.append(data.split(b" ", 2)[1].decode() if b" " in data else "")

    def close(self):
        self.sock.close()


@pytest.fixture
def broken():
    server = BrokenReplies()
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
