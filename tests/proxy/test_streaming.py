"""Streams pass through as they are produced, and a departed client closes the upstream connection."""
from __future__ import annotations

import json
import socket
import time

import requests

from tests.support.waiting import wait_until


def test_chunks_arrive_as_the_upstream_sends_them(proxy):
    lines = 8
    response = requests.post(f"{proxy.proxy_url}/api/generate", stream=True, timeout=30, json={
        "model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": lines, "fake_delay_ms": 150}})
    assert response.headers["Content-Type"] == "application/x-ndjson"
    arrivals = []
    for line in response.iter_lines():
        arrivals.append((time.time(), json.loads(line)))
    emitted = [chunk["emitted_at"] for _, chunk in arrivals if "emitted_at" in chunk]
    assert len(emitted) == lines
    # No buffering: the first line is in the client's hands before the upstream even wrote the last one,
    # and every line arrives shortly after the upstream wrote it (a generous bound: not a speed test).
    assert arrivals[0][0] < emitted[-1]
    assert all(arrived - chunk["emitted_at"] < 0.5 for arrived, chunk in arrivals if "emitted_at" in chunk)


def test_sse_stream_is_relayed_unchanged(proxy):
    response = requests.post(f"{proxy.proxy_url}/v1/chat/completions", stream=True, timeout=30, json={
        "model": "llama3.2:1b", "stream": True, "max_tokens": 2, "messages": [{"role": "user", "content": "x"}]})
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    body = response.content
    assert body.endswith(b"data: [DONE]\n\n") and body.count(b"data: ") == 4


def test_client_disconnect_closes_the_upstream_connection(proxy, fake_ollama):
    fake_ollama.reset()
    request = json.dumps({"model": "llama3.2:1b", "prompt": "long", "options": {
        "num_predict": 100, "fake_delay_ms": 100}}).encode()
    with socket.create_connection(("127.0.0.1", proxy.proxy_port), timeout=10) as sock:
        sock.sendall(b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(request), request))
        received = sock.recv(4096)
        assert b"200 OK" in received
        while received.count(b'"response"') < 2:  # leave mid-stream, after some lines
            more = sock.recv(4096)
            assert more, "the stream ended before two lines"
            received += more
    left_at = time.time()
    wait_until(lambda: fake_ollama.state.abandoned, 5, "the upstream to see its connection closed")
    path, noticed_at = fake_ollama.state.abandoned[0]
    assert path == "/api/generate" and noticed_at - left_at < 2.0


def test_non_streaming_reply_keeps_status_and_content_type(proxy):
    response = requests.post(f"{proxy.proxy_url}/api/generate", timeout=10,
                             json={"model": "llama3.2:1b", "prompt": "hi", "stream": False})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["done"] is True
