"""Notice that a client hung up, without writing to it: peek at the request's socket for EOF.

A streamed reply finds out about a disconnect only when a write fails, which may be a token or two late, and a
waiting or non-streamed request writes nothing at all. gunicorn (``gunicorn.socket``) and Werkzeug's dev server
(``werkzeug.socket``) both put the connection in the WSGI environ.

``recv(MSG_PEEK | MSG_DONTWAIT)`` works on any descriptor; ``select.select`` fails on descriptors >= 1024, which a
busy server reaches, and would make every such client look gone.
"""

from __future__ import annotations

import socket
from typing import Callable


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has closed its side: a non-blocking peek reads EOF (b"") or the socket is broken."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False            # nothing to read: the client is still there
    except (OSError, ValueError):
        return True             # reset, or the socket was closed under us


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    """Return a cheap, thread-safe check that is True once the peer has closed the connection."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False
    state = {"gone": False}

    def gone() -> bool:
        # Data waiting (a pipelined request) reads as "still there", like the select-then-peek check did.
        if not state["gone"]:
            state["gone"] = peer_closed(sock)
        return state["gone"]

    return gone
