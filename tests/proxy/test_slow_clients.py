"""Slow and silent clients get 408 in the API's shape and cannot hold connection slots (app/proxy/server.py)."""
from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from tests.support.proxy_process import ProxyProcess

SLOTS = 50


def slow_proxy(tmp_path, fake_ollama, name: str, **env) -> ProxyProcess:
    """One worker with SLOTS connection slots, so a flood of a few more clients fills it."""
    return ProxyProcess(tmp_path / f"{name}.db", workers=1, env={
        "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}", "WORKER_CONNECTIONS": str(SLOTS), **env}).start()


@pytest.fixture(scope="module")
def short_timeouts(tmp_path_factory, fake_ollama):
    server = slow_proxy(tmp_path_factory.mktemp("short"), fake_ollama, "short",
                        CLIENT_BODY_TIMEOUT_S="1", CLIENT_HEADER_TIMEOUT_S="1", KEEPALIVE_SECONDS="1",
                        ACCESS_LOG="-")  # the access log must cope with requests that never completed
    yield server
    server.stop()


@pytest.fixture(scope="module")
def default_timeouts(tmp_path_factory, fake_ollama):
    server = slow_proxy(tmp_path_factory.mktemp("default"), fake_ollama, "default")
    yield server
    server.stop()


def send(server: ProxyProcess, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.proxy_port), timeout=15)
    sock.sendall(data)
    return sock


def slow_body(server: ProxyProcess, path: str) -> socket.socket:
    """Announces 100 bytes of body and sends 4."""
    return send(server, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                        f"Content-Length: 100\r\n\r\n{{\"mo".encode())


def reply(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of the answer, read until the server closes the connection."""
    data = b""
    while piece := sock.recv(65536):
        data += piece
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def test_a_slow_body_gets_408_in_each_api_shape_and_is_logged(short_timeouts):
    started = time.monotonic()
    native, openai_style = slow_body(short_timeouts, "/api/generate"), slow_body(short_timeouts, "/v1/chat/completions")
    head, body = reply(native)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n") and b"Connection: close" in head
    assert json.loads(body) == {"error": "no request body data for 1 s (CLIENT_BODY_TIMEOUT_S)"}
    head, body = reply(openai_style)
    assert head.startswith(b"HTTP/1.1 408 ") and json.loads(body)["error"]["message"].startswith("no request body")
    assert 1 <= time.monotonic() - started < 5
    short_timeouts.wait_for_log(lambda r: r["endpoint"] == "/v1/chat/completions" and r["status"] == 408)


def test_a_stalled_blob_upload_gets_408_while_it_streams_to_ollama(short_timeouts):
    path = "/api/blobs/sha256:" + "ab" * 32
    head, body = reply(send(short_timeouts, f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                            f"Content-Length: 100\r\n\r\nabcd".encode()))
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert json.loads(body) == {"error": "no request body data for 1 s (CLIENT_BODY_TIMEOUT_S)"}
    short_timeouts.wait_for_log(lambda r: r["endpoint"] == path and r["status"] == 408)


def test_slow_headers_get_408_and_a_silent_connection_is_closed_quietly(short_timeouts):
    partial = send(short_timeouts, b"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
    silent = send(short_timeouts, b"")
    head, body = reply(partial)
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert json.loads(body) == {"error": "request headers not received within 1 s (CLIENT_HEADER_TIMEOUT_S)"}
    assert reply(silent) == (b"", b"")
    pipelined = send(short_timeouts, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /api/ta")
    head, body = reply(pipelined)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"HTTP/1.1 408 Request Timeout\r\n" in body
    assert "Traceback" not in short_timeouts.log_tail(200)


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_seconds(short_timeouts):
    sock = send(short_timeouts, b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    started = time.monotonic()
    head, body = reply(sock)  # answered, then closed by the proxy after KEEPALIVE_SECONDS (1 s here)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" not in head
    assert json.loads(body)["version"] and time.monotonic() - started < 4


def test_health_answers_during_a_slow_body_flood_and_the_408s_free_the_slots(default_timeouts):
    """CLIENT_BODY_TIMEOUT_S stays 60 s: what lets /health in is that a worker out of slots gives up on the
    connection that has waited longest on its client."""
    flood = [slow_body(default_timeouts, "/api/chat") for _ in range(SLOTS + 10)]
    started = time.monotonic()
    health = requests.get(f"{default_timeouts.proxy_url}/health", timeout=4)  # Docker's HEALTHCHECK allows 4 s
    assert health.status_code == 200 and time.monotonic() - started < 4
    evicted = 0
    for sock in flood[:10]:  # the oldest gave way to the newer ones and /health
        head, body = reply(sock)
        assert head.startswith(b"HTTP/1.1 408 ")
        assert json.loads(body) == {"error": "request body stalled while the server was out of connection slots"}
        evicted += 1
    assert evicted == 10
    for sock in flood[10:]:
        sock.close()
    assert requests.post(f"{default_timeouts.proxy_url}/api/generate", timeout=10, json={
        "model": "llama3.2:1b", "prompt": "hi", "stream": False}).status_code == 200
