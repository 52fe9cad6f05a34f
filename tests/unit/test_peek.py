"""The client and pooled-connection probes on descriptors above select()'s FD_SETSIZE (1024)."""
from __future__ import annotations

import fcntl
import resource
import socket

import pytest

from app.proxy.inbound import client_alive_probe
from app.proxy.peek import CLOSED, IDLE, READABLE, peek
from app.proxy.upstream import Connection

HIGH_FD = 1500


@pytest.fixture
def high_pair():
    """A connected pair whose first socket sits on a descriptor >= HIGH_FD (soft RLIMIT_NOFILE raised for it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.skip(f"the hard descriptor limit {hard} is too low for this test")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 64), hard))
    low, peer = socket.socketpair()
    fd = fcntl.fcntl(low.fileno(), fcntl.F_DUPFD, HIGH_FD)
    low.close()
    high = socket.socket(fileno=fd)
    assert high.fileno() >= 1024
    yield high, peer
    high.close()
    peer.close()
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("timeout", [None, 0.0, 5.0])
def test_peek_tells_idle_readable_and_closed_apart_without_waiting(high_pair, timeout):
    high, peer = high_pair
    high.settimeout(timeout)
    assert peek(high) == IDLE
    peer.sendall(b"x")
    assert peek(high) == READABLE and high.recv(1) == b"x"  # peeking consumed nothing
    peer.shutdown(socket.SHUT_WR)
    assert peek(high) == CLOSED
    assert high.gettimeout() == timeout


def test_an_idle_pooled_connection_on_a_high_descriptor_is_alive(high_pair):
    high, peer = high_pair
    conn = Connection(high, ("127.0.0.1", 1))
    assert not conn.looks_dead()
    peer.close()
    assert conn.looks_dead()


def test_a_client_on_a_high_descriptor_is_alive_until_it_closes(high_pair):
    high, peer = high_pair
    alive = client_alive_probe({"gunicorn.sock": high})
    assert alive()
    peer.sendall(b"GET / HTTP/1.1\r\n")  # a pipelined request: still there
    assert alive() and high.recv(64)
    peer.close()
    assert not alive()


def test_a_reset_connection_is_closed():
    left, right = socket.socketpair()
    right.close()
    left.close()
    assert peek(left) == CLOSED
