"""The client side of a connection under stress: many descriptors, half-closed and departed clients."""
from __future__ import annotations

import json
import os
import resource
import socket
import time

import pytest
import requests

from tests.support.fake_ollama import FakeOllama
from tests.conftest import wait_for_config_propagation
from tests.support.proxy_process import ProxyProcess, free_port

OPEN_CONNECTIONS = 1100


@pytest.fixture
def many_descriptors():
    """Room for OPEN_CONNECTIONS sockets here and in the proxy (its processes inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * OPEN_CONNECTIONS
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard descriptor limit {hard} is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def lone_proxy(tmp_path, many_descriptors):
    """One worker (so every connection lands on it) and its own fake Ollama, which it is pointed at later."""
    upstream = FakeOllama("ollama").start()
    server = ProxyProcess(tmp_path / "io.db", workers=1, env={
        "OLLAMA_HOST": f"127.0.0.1:{free_port()}", "WORKER_CONNECTIONS": str(2 * OPEN_CONNECTIONS)}).start()
    yield server, upstream
    server.stop()
    upstream.stop()


def test_descriptors_beyond_1024_neither_abort_streams_nor_defeat_keep_alive(lone_proxy):
    server, upstream = lone_proxy
    idle = [socket.create_connection(("127.0.0.1", server.proxy_port)) for _ in range(OPEN_CONNECTIONS)]
    try:
        # The listen queue is FIFO: once a later connection is answered, the worker holds all the idle ones.
        worker = requests.get(f"{server.proxy_url}/health", timeout=10).json()["proxy"]["pid"]
        assert len(os.listdir(f"/proc/{worker}/fd")) > OPEN_CONNECTIONS
        # Only now the upstream: every pooled connection to it gets a descriptor > 1024 as well.
        assert requests.post(f"{server.dashboard_url}/config/ollama", timeout=10,
                             json={"host": "127.0.0.1", "port": upstream.port}).status_code == 200
        wait_for_config_propagation(server)
        # Silence before the first byte makes the relay check the client (on a descriptor > 1024) every second.
        started = time.monotonic()
        response = requests.post(f"{server.proxy_url}/api/generate", timeout=30, json={
            "model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": 3, "fake_first_byte_delay_ms": 2500}})
        assert response.status_code == 200, response.text
        lines = [json.loads(line) for line in response.text.splitlines()]
        assert len(lines) == 4 and lines[-1]["done"] is True and time.monotonic() - started >= 2.5

        before = upstream.state.connections
        for _ in range(5):
            assert requests.get(f"{server.proxy_url}/api/version", timeout=10).status_code == 200
        assert upstream.state.connections - before <= 1, "pooled upstream connections were all taken for dead"
    finally:
        for sock in idle:
            sock.close()


def test_a_half_closed_client_counts_as_gone_as_with_nginx_and_gets_499_client_closed_request(proxy):
    request = json.dumps({"model": "llama3.2:1b", "prompt": "half", "stream": False,
                          "options": {"fake_first_byte_delay_ms": 5000}}).encode()
    with socket.create_connection(("127.0.0.1", proxy.proxy_port), timeout=10) as sock:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(request), request))
        sock.shutdown(socket.SHUT_WR)  # done sending, still reading
        started = time.monotonic()
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            piece = sock.recv(4096)
            if not piece:
                break
            reply += piece
    # Well before the upstream's first byte (5 s): the relay's check saw end of file and gave up.
    assert time.monotonic() - started < 3
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 499 Client Closed Request\r\n")
    assert json.loads(body) == {"error": "client disconnected"}
    proxy.wait_for_log(lambda r: r["status"] == 499 and r["endpoint"] == "/api/generate")
