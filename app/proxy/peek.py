"""Is the peer of a socket still there? One non-blocking peek, valid for any descriptor number.

select's fd_set cannot hold descriptors >= 1024 (FD_SETSIZE), and gevent's monkey-patching removes poll, so the check is a recv(1, MSG_PEEK | MSG_DONTWAIT): nothing waiting means open and idle, b"" means
the peer closed (or half-closed) its sending side, a byte means data is waiting.
"""
from __future__ import annotations

import socket

IDLE, READABLE, CLOSED = "idle", "readable", "closed"
_FLAGS = socket.MSG_PEEK | socket.MSG_DONTWAIT


def peek(sock) -> str:
    """IDLE, READABLE or CLOSED (also for a reset or an unusable socket); never waits."""
    raw = getattr(sock, "_sock", sock)  # gevent's socket wraps a non-blocking stdlib one, which never waits
    try:
        if raw.gettimeout() == 0.0:
            data = raw.recv(1, _FLAGS)
        else:
            # CPython polls a socket with a timeout before recv(), so peek in non-blocking mode.
            previous = raw.gettimeout()
            raw.settimeout(0.0)
            try:
                data = raw.recv(1, _FLAGS)
            finally:
                raw.settimeout(previous)
    except (BlockingIOError, InterruptedError):
        return IDLE
    except (OSError, ValueError):
        return CLOSED
    return READABLE if data else CLOSED
