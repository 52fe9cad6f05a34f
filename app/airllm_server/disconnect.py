"""Notice that a client hung up, without writing to it: peek at the request's socket for EOF.

A streamed reply finds out about a disconnect only when a write fails, which may be a token or two late, and a
waiting or non-streamed request writes nothing at all. gunicorn (``gunicorn.socket``) and Werkzeug's dev server
(``werkzeug.socket``) both put the connection in the WSGI environ.
"""

from __future__ import annotations

import select
import socket
from typing import Callable


def client_gone_probe(environ: dict) -> Callable[[], bool]:
    """Return a cheap, thread-safe check that is True once the peer has closed the connection."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    if not isinstance(sock, socket.socket):
        return lambda: False
    state = {"gone": False}

    def gone() -> bool:
        if state["gone"]:
            return True
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            # Readable with nothing to read means EOF. Data (a pipelined request) means the client is still there.
            state["gone"] = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except (OSError, ValueError):
            state["gone"] = True
        return state["gone"]

    return gone
