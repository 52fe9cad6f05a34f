"""The relay's HTTP client against raw sockets: framing edge cases, pooling, silence and departed clients."""
from __future__ import annotations

import socket
import time

import pytest

from app.proxy.upstream import ClientGone, UpstreamClient, UpstreamError
from tests.support.raw_server import SILENT, RawServer


def fetch(client, port, path="/"):
    response = client.request("GET", "127.0.0.1", port, path, [])
    return response, list(response.iter_body())


def test_chunked_body_split_anywhere_is_reassembled():
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b'{"a":1}\n', b'{"b":2}\n', b"x" * 70000]) + b"0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-ndjson\r\n\r\n"
    wire = head + body
    server = RawServer(lambda _req: [(0, wire[i:i + 3]) for i in range(0, len(wire), 3)])
    client = UpstreamClient()
    response, pieces = fetch(client, server.port)
    assert response.status == 200 and response.content_type == "application/x-ndjson"
    assert b"".join(pieces) == b'{"a":1}\n{"b":2}\n' + b"x" * 70000
    server.close()


def test_chunks_that_arrived_together_are_yielded_together():
    lines = [b'{"i":%d}\n' % i for i in range(50)]
    wire = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines) + b"0\r\n\r\n")
    server = RawServer(lambda _req: [(0, wire)])
    response, pieces = fetch(UpstreamClient(), server.port)
    assert b"".join(pieces) == b"".join(lines) and len(pieces) < 5
    server.close()


def test_trailers_and_chunk_extensions_are_handled():
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
    server = RawServer(lambda _req: [(0, wire)])
    assert b"".join(fetch(UpstreamClient(), server.port)[1]) == b"hello"
    server.close()


def test_keep_alive_connections_are_reused_and_stale_ones_replaced():
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer(lambda _req: [(0, reply)])
    client = UpstreamClient()
    for _ in range(3):
        assert b"".join(fetch(client, server.port)[1]) == b"ok"
    assert server.connections == 1

    closing = RawServer(lambda _req: [(0, reply), (0, None)])  # answers once, then closes the socket
    for _ in range(3):
        assert b"".join(fetch(client, closing.port)[1]) == b"ok"
    assert closing.connections == 3
    server.close()
    closing.close()


def test_connection_refused_is_a_connect_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UpstreamError) as err:
        UpstreamClient().request("GET", "127.0.0.1", port, "/", [])
    assert err.value.kind == "connect" and err.value.message == "connection refused"


def test_body_cut_short_is_reported():
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
    server = RawServer(lambda _req: [(0, wire), (0, None)])
    response = UpstreamClient().request("GET", "127.0.0.1", server.port, "/", [])
    pieces = []
    with pytest.raises(UpstreamError) as err:
        for piece in response.iter_body():
            pieces.append(piece)
    assert pieces == [b"hello"] and err.value.kind == "closed"
    server.close()


def test_silence_past_the_read_timeout_is_a_timeout():
    server = RawServer(lambda _req: [(5, SILENT)])
    with pytest.raises(UpstreamError) as err:
        UpstreamClient(read_timeout=0.3).request("GET", "127.0.0.1", server.port, "/", [])
    assert err.value.kind == "timeout"
    server.close()


def test_a_departed_client_ends_a_silent_wait_and_closes_the_upstream_socket():
    server = RawServer(lambda _req: [(10, SILENT)])
    started = time.monotonic()
    with pytest.raises(ClientGone):
        UpstreamClient().request("GET", "127.0.0.1", server.port, "/", [], client_alive=lambda: False)
    assert time.monotonic() - started < 2.5
    assert server.closed_by_peer.wait(2)
    server.close()
