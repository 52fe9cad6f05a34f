"""The client-gone probe works on descriptors above 1023 (where select.select raises) and tells EOF from data."""

from __future__ import annotations

import fcntl
import os
import resource
import socket

import pytest

from app.airllm_server.disconnect import client_gone_probe, peer_closed

HIGH_FD = 1500


@pytest.fixture
def high_fd_pair():
    """A connected socket pair whose server side sits on a descriptor >= 1024 (the soft limit raised for it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= HIGH_FD:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) does not allow a descriptor >= {HIGH_FD}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, HIGH_FD + 100), hard))
    server_side, client_side = socket.socketpair()
    high = fcntl.fcntl(server_side.fileno(), fcntl.F_DUPFD, HIGH_FD)
    server_high = socket.socket(fileno=high)
    server_side.close()
    try:
        assert server_high.fileno() >= 1024
        yield server_high, client_side
    finally:
        server_high.close()
        client_side.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_connected_client_on_a_high_descriptor_is_not_gone(high_fd_pair):
    server_side, _client = high_fd_pair
    gone = client_gone_probe({"gunicorn.socket": server_side})
    assert gone() is False
    assert gone() is False


def test_pending_data_is_not_eof_and_is_left_unread(high_fd_pair):
    server_side, client = high_fd_pair
    client.sendall(b"GET / HTTP/1.1\r\n")
    gone = client_gone_probe({"werkzeug.socket": server_side})
    assert gone() is False
    assert server_side.recv(3) == b"GET"         # the peek consumed nothing


def test_a_closed_client_on_a_high_descriptor_is_gone_and_stays_gone(high_fd_pair):
    server_side, client = high_fd_pair
    gone = client_gone_probe({"gunicorn.socket": server_side})
    client.close()
    assert gone() is True
    assert gone() is True


def test_no_socket_in_the_environ_means_never_gone():
    assert client_gone_probe({})() is False


def test_a_socket_closed_under_the_probe_reads_as_gone():
    a, b = socket.socketpair()
    b.close()
    a.close()
    assert peer_closed(a) is True
    assert os.name == "posix"
