"""A loopback TCP server that answers each HTTP request with scripted raw bytes: replies no real server sends
(cut short, malformed, silent), for the tests of the proxy's HTTP client and its error paths."""
from __future__ import annotations

import socket
import threading
import time

SILENT = object()  # script step: say nothing, just watch for the peer closing


class RawServer:
    """Accepts connections and answers each request with scripted raw bytes (a list of (delay, bytes))."""

    def __init__(self, script_for):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.script_for = script_for
        self.connections = 0
        self.closed_by_peer = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            while True:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        self.closed_by_peer.set()
                        return
                    data += chunk
                for delay, piece in self.script_for(data):
                    if piece is SILENT:
                        conn.settimeout(delay)
                        try:
                            if conn.recv(1) == b"":
                                self.closed_by_peer.set()
                        except OSError:
                            pass
                        return
                    time.sleep(delay)
                    if piece is None:
                        return
                    conn.sendall(piece)

    def close(self):
        self.sock.close()
