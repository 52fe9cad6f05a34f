"""A small pooled HTTP/1.1 client for relaying to Ollama-compatible upstreams.

Why not `requests`/urllib3 on this path: they hand out a chunked body one HTTP chunk at a time (one NDJSON line
each), and a proxy that writes one line per socket send tops out at a small fraction of the upstream's rate
(README, Performance: the Flask + requests proxy). Here `iter_body()` decodes the chunked framing itself and yields
*everything that has arrived* in one piece: nothing is held back waiting for more, yet a burst of lines costs
one send. It also keeps headers and bodies as raw bytes (no decoding, no re-encoding), pools keep-alive
connections per upstream, and checks while it waits whether the client is still there.

Sockets come from the stdlib, so under gunicorn's gevent worker (monkey-patched) every wait is cooperative.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import socket
from typing import Callable, Iterable, Iterator

from .peek import IDLE, peek

log = logging.getLogger(__name__)

RECV_SIZE = 65536
MAX_HEAD_BYTES = 65536
POLL_SECONDS = 1.0  # how often a silent wait looks at the client and the silence budget
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})


class UpstreamError(Exception):
    """The upstream could not be used. `kind`: connect (nothing was sent), timeout, protocol, closed."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class ClientGone(Exception):
    """The client closed its connection while we were waiting for the upstream."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed ({exc.strerror or exc})"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "connection timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc) or exc.__class__.__name__


def _literal_family(host: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        return 0


class Connection:
    """One keep-alive TCP connection to an upstream, with its read buffer."""

    __slots__ = ("sock", "key", "buf")

    def __init__(self, sock: socket.socket, key: tuple[str, int]):
        self.sock = sock
        self.key = key
        self.buf = bytearray()

    def looks_dead(self) -> bool:
        """An idle keep-alive socket that is readable has been closed by the server (or is out of sync)."""
        return peek(self.sock) != IDLE

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class ConnectionPool:
    """Idle keep-alive connections per (host, port). Only touched between I/O calls, so greenlet-safe."""

    def __init__(self, connect_timeout: float = 5.0, max_idle_per_host: int = 64):
        self.connect_timeout = connect_timeout
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._families: dict[str, int] = {}  # host -> AF_INET/AF_INET6 for IP literals, 0 for names

    def acquire(self, host: str, port: int, connect_timeout: float | None = None) -> tuple[Connection, bool]:
        """Return (connection, reused). Raises UpstreamError('connect') if a new one cannot be opened."""
        key = (host, port)
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.looks_dead():
                return conn, True
            conn.close()
        try:
            sock = self._connect(host, port, connect_timeout or self.connect_timeout)
        except OSError as exc:
            raise UpstreamError("connect", _describe(exc)) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(POLL_SECONDS)
        return Connection(sock, key), False

    def _connect(self, host: str, port: int, timeout: float) -> socket.socket:
        """Connect; an IP literal skips getaddrinfo, which under gevent is a round trip through a thread pool."""
        family = self._families.get(host)
        if family is None:
            family = self._families[host] = _literal_family(host)
        if not family:
            return socket.create_connection((host, port), timeout=timeout)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def release(self, conn: Connection) -> None:
        idle = self._idle.setdefault(conn.key, [])
        if len(idle) < self.max_idle_per_host and not conn.buf:
            idle.append(conn)
        else:
            conn.close()

    def close_all(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


class UpstreamResponse:
    """Status line and headers of an upstream reply; the body is read lazily by iter_body()/read()."""

    def __init__(self, pool: ConnectionPool, conn: Connection, status: int, reason: str,
                 headers: list[tuple[str, str]], keep_alive: bool, method: str,
                 wait: Callable[[Connection], bytes]):
        self._pool = pool
        self._conn: Connection | None = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._keep_alive = keep_alive
        self._wait = wait
        self._complete = False
        self._replay: bytes | None = None
        lower = {name.lower(): value for name, value in headers}
        self.content_type = lower.get("content-type", "")
        self._chunked = "chunked" in lower.get("transfer-encoding", "").lower()
        length = lower.get("content-length")
        self._length = int(length) if length and length.strip().isdecimal() else None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._length = 0
            self._chunked = False

    @property
    def finished(self) -> bool:
        """True once the whole body was read (or there was none); False while open or cut short."""
        return self._complete

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    @property
    def status_line(self) -> str:
        return f"{self.status} {self.reason}".strip()

    def iter_body(self) -> Iterator[bytes]:
        """Yield the body as it arrives: each piece is all the payload that was available, never less."""
        if self._replay is not None:
            body, self._replay = self._replay, None
            if body:
                yield body
            return
        conn = self._conn
        if conn is None:
            return
        if self._chunked:
            yield from self._iter_chunked(conn)
        elif self._length is not None:
            yield from self._iter_length(conn, self._length)
        else:
            yield from self._iter_until_close(conn)
        self._complete = True
        self.close()

    def replay(self, body: bytes) -> None:
        """Serve `body` (already read with read()) once more from iter_body()."""
        self._replay = body

    def read(self) -> bytes:
        """The whole body (for small replies such as model lists)."""
        return b"".join(self.iter_body())

    def close(self) -> None:
        """Give a fully read connection back to the pool; close anything else (so Ollama stops generating)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._complete and self._keep_alive:
            self._pool.release(conn)
        else:
            conn.close()

    def _iter_length(self, conn: Connection, remaining: int) -> Iterator[bytes]:
        if conn.buf:
            piece = bytes(conn.buf[:remaining])
            del conn.buf[:remaining]
            remaining -= len(piece)
            yield piece
        while remaining > 0:
            data = self._wait(conn)
            if not data:
                raise UpstreamError("closed", f"connection closed with {remaining} bytes of the body missing")
            if len(data) > remaining:  # the server sent more than it announced: never reuse this socket
                data = data[:remaining]
                self._keep_alive = False
            remaining -= len(data)
            yield data

    def _iter_until_close(self, conn: Connection) -> Iterator[bytes]:
        self._keep_alive = False
        if conn.buf:
            yield bytes(conn.buf)
            conn.buf.clear()
        while data := self._wait(conn):
            yield data

    def _iter_chunked(self, conn: Connection) -> Iterator[bytes]:
        buf = conn.buf
        chunk_left = 0  # payload bytes still expected in the current chunk
        need_crlf = False  # the CRLF that ends a chunk's payload
        while True:
            out = []
            pos = 0
            end = len(buf)
            finished = False
            while True:
                if chunk_left:
                    take = min(chunk_left, end - pos)
                    if not take:
                        break
                    out.append(bytes(buf[pos:pos + take]))
                    pos += take
                    chunk_left -= take
                    if chunk_left:
                        break
                    need_crlf = True
                if need_crlf:
                    if end - pos < 2:
                        break
                    if buf[pos:pos + 2] != b"\r\n":
                        raise UpstreamError("protocol", "malformed chunked encoding from upstream")
                    pos += 2
                    need_crlf = False
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    if end - pos > 1024:
                        raise UpstreamError("protocol", "malformed chunk size line from upstream")
                    break
                try:
                    size = int(bytes(buf[pos:line_end]).split(b";", 1)[0], 16)
                except ValueError:
                    raise UpstreamError("protocol", "malformed chunk size from upstream") from None
                if size == 0:  # last chunk: skip optional trailers up to the blank line
                    trailer_end = buf.find(b"\r\n\r\n", line_end)
                    if trailer_end >= 0:
                        pos = trailer_end + 4
                        finished = True
                    break
                pos = line_end + 2
                chunk_left = size
            if pos:
                del buf[:pos]
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
            if finished:
                return
            data = self._wait(conn)
            if not data:
                raise UpstreamError("closed", "upstream closed the connection in the middle of the reply")
            buf += data


class UpstreamClient:
    """Sends one request to an upstream and returns its response head; the body streams on demand."""

    def __init__(self, connect_timeout: float = 5.0, read_timeout: float = 900.0):
        self.pool = ConnectionPool(connect_timeout=connect_timeout)
        self.read_timeout = read_timeout

    def request(self, method: str, host: str, port: int, target: str, headers: list[tuple[str, str]],
                body: bytes | Iterable[bytes] | None = None, body_length: int | None = None,
                client_alive: Callable[[], bool] | None = None, read_timeout: float | None = None,
                connect_timeout: float | None = None, head_timeout: float | None = None) -> UpstreamResponse:
        """Send the request and wait for the status line and headers.

        `headers` must not contain Host, Content-Length or Transfer-Encoding: they are set here.
        `head_timeout` limits the wait for the status line (a fallback's first-byte limit); after it, silence
        between body pieces may last `read_timeout`.
        A bytes body may be replayed once on a fresh connection if a pooled one turns out stale;
        an iterable body (a blob upload) is sent once, with its length or chunked.
        """
        host_header = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        head = [f"{method} {target} HTTP/1.1\r\nHost: {host_header}\r\n"]
        head.extend(f"{name}: {value}\r\n" for name, value in headers)
        replayable = body is None or isinstance(body, (bytes, bytearray))
        if isinstance(body, (bytes, bytearray)):
            head.append(f"Content-Length: {len(body)}\r\n")
        elif body is not None:
            head.append(f"Content-Length: {body_length}\r\n" if body_length is not None
                        else "Transfer-Encoding: chunked\r\n")
        elif method in ("POST", "PUT", "PATCH", "DELETE"):
            head.append("Content-Length: 0\r\n")
        head.append("\r\n")
        head_bytes = "".join(head).encode("latin-1")
        read_timeout = read_timeout or self.read_timeout
        head_timeout = head_timeout or read_timeout
        shortest = min(read_timeout, head_timeout)
        poll = shortest / math.ceil(shortest / POLL_SECONDS)  # whole polls add up to the timeout exactly
        head_wait = self._waiter(client_alive, head_timeout)
        wait = head_wait if head_timeout == read_timeout else self._waiter(client_alive, read_timeout)

        for attempt in (1, 2):
            conn, reused = self.pool.acquire(host, port, connect_timeout)
            try:
                conn.sock.settimeout(poll)
                if replayable:
                    conn.sock.sendall(head_bytes + body if body else head_bytes)
                else:
                    conn.sock.sendall(head_bytes)
                    self._send_stream(conn.sock, body, chunked=body_length is None)
                return self._read_head(conn, method, head_wait, wait)
            except _StaleConnection:
                conn.close()
                if reused and replayable and attempt == 1:
                    continue  # the server closed an idle keep-alive socket just as we used it
                raise UpstreamError("closed", "upstream closed the connection before answering") from None
            except UpstreamError as exc:
                conn.close()
                if exc.kind == "closed" and reused and replayable and attempt == 1 and not conn.buf:
                    continue  # reset before any answer: the same race as above, seen as ECONNRESET
                raise
            except OSError as exc:
                conn.close()
                if reused and replayable and attempt == 1:
                    continue
                raise UpstreamError("closed", f"connection to upstream failed: {_describe(exc)}") from None
            except BaseException:  # ClientGone, or an uploaded body that failed on the client's side
                conn.close()
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _send_stream(sock: socket.socket, body: Iterable[bytes], chunked: bool) -> None:
        for piece in body:
            if not piece:
                continue
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")

    @staticmethod
    def _waiter(client_alive: Callable[[], bool] | None, read_timeout: float) -> Callable[[Connection], bytes]:
        """recv() that tolerates REQUEST_TIMEOUT of silence but notices a departed client within a second."""

        def wait(conn: Connection) -> bytes:
            silent = 0.0
            while True:
                try:
                    return conn.sock.recv(RECV_SIZE)
                except (socket.timeout, TimeoutError):
                    silent += conn.sock.gettimeout() or POLL_SECONDS
                    if client_alive is not None and not client_alive():
                        raise ClientGone() from None
                    if silent >= read_timeout:
                        raise UpstreamError("timeout", f"no data from upstream for {read_timeout:g} s") from None
                except OSError as exc:
                    raise UpstreamError("closed", f"connection to upstream failed: {_describe(exc)}") from None

        return wait

    def _read_head(self, conn: Connection, method: str, wait, body_wait) -> UpstreamResponse:
        buf = conn.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEAD_BYTES:
                raise UpstreamError("protocol", "upstream response headers too large")
            data = wait(conn)
            if not data:
                if not buf:
                    raise _StaleConnection()
                raise UpstreamError("protocol", "upstream closed the connection inside the response headers")
            buf += data
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[:end + 4]
        version, _, rest = lines[0].partition(" ")
        code, _, reason = rest.partition(" ")
        if not version.startswith("HTTP/") or not code.isdecimal():
            raise UpstreamError("protocol", f"not an HTTP response from upstream: {lines[0][:80]!r}")
        headers = []
        connection_tokens: set[str] = set()
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                continue
            name, value = name.strip(), value.strip()
            if name.lower() == "connection":
                connection_tokens.update(t.strip().lower() for t in value.split(","))
            headers.append((name, value))
        if version == "HTTP/1.0":
            keep_alive = "keep-alive" in connection_tokens
        else:
            keep_alive = "close" not in connection_tokens
        status = int(code)
        if status == 100:  # "100 Continue": the real answer follows
            return self._read_head(conn, method, wait, body_wait)
        return UpstreamResponse(self.pool, conn, status, reason, headers, keep_alive, method, body_wait)


class _StaleConnection(Exception):
    """A pooled connection was closed by the server before it answered anything."""
