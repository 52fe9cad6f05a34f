"""gunicorn's gevent_pywsgi worker with client timeouts (the rules are in app/proxy/timeouts.py).

gevent's pywsgi waits for a request's headers, its body and the next keep-alive request without any limit, so
slow or silent clients held connection slots forever. This handler bounds each wait and, when a worker runs out
of slots, gives up on the connection that has waited longest on its client. Both ports use it.
"""
from __future__ import annotations

import json
import socket
import time

import gevent
from gevent import Timeout
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from ..config import load_settings
from .errors import error_payload, status_line
from .timeouts import body_read_budget, next_check_in, pick_victim

_waiting: dict = {}  # handler -> (server, since): connections blocked on their client right now
_rechecks: set = set()  # servers with a slot check scheduled


class ClientTimeout(TimeoutError):
    """The client sent its request too slowly (inbound answers 408)."""


class _HeadCut(BaseException):
    """An eviction ended the head early: what was parsed must not reach the application (BaseException, so
    pywsgi's handlers of bad input do not take it)."""


def _relieve(server) -> None:
    """If `server` has no free slot, give up on its longest waiter (or look again once one qualifies)."""
    pool = server.pool
    if pool is None or pool.free_count() > 0:
        return
    now = time.monotonic()
    victim = pick_victim(_waiting, server, now)
    if victim is not None:
        victim.evict()
        return
    delay = next_check_in(_waiting, server, now)
    if delay is not None and server not in _rechecks:
        _rechecks.add(server)
        gevent.spawn_later(delay, _recheck, server)


def _recheck(server) -> None:
    _rechecks.discard(server)
    _relieve(server)


class TimedHandler(PyWSGIHandler):
    """Bounds the wait for a request's head (CLIENT_HEADER_TIMEOUT_S), its body (CLIENT_BODY_TIMEOUT_S) and
    the next request on a keep-alive connection (KEEPALIVE_SECONDS)."""

    header_timeout = 60.0
    body_timeout = 60.0
    idle_timeout = 75.0
    _head_timer: Timeout | None = None
    _buffered_body = 0

    def handle(self):
        self._accepted = time.monotonic()
        self._first = True
        self.evicted = False
        _relieve(self.server)  # this connection may have taken the last slot
        try:
            super().handle()
        finally:
            _waiting.pop(self, None)

    def evict(self) -> None:
        """Wake this connection's wait with end of file (its reply can still be written)."""
        self.evicted = True
        try:
            self.socket.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def wait_for_client(self, seconds: float, read, *args):
        """(True, read(*args)), or (False, None) once `seconds` passed; evictable meanwhile."""
        timer = Timeout(seconds)
        _waiting[self] = (self.server, time.monotonic())
        timer.start()
        try:
            return True, read(*args)
        except Timeout as exc:
            if exc is not timer:
                raise
            return False, None
        finally:
            timer.close()
            _waiting.pop(self, None)

    def read_requestline(self):
        self.command = self.path = self.request_version = None  # a 408 must not show the previous request's
        if self._first:
            idle = self.header_timeout
        else:
            idle = self.idle_timeout
        arrived, data = self.wait_for_client(idle, self.rfile.peek, 1)  # peek: everything buffered so far
        if not arrived or not data or self.evicted:
            return ""  # nothing was asked: close quietly, as nginx does with idle connections
        first, self._first = self._first, False
        end = data.find(b"\r\n\r\n")
        if end >= 0:  # the whole head is buffered (the usual case): parsing it cannot wait on the client
            self._buffered_body = len(data) - end - 4
        else:
            self._buffered_body = 0
            budget = self.header_timeout - (time.monotonic() - self._accepted) if first else self.header_timeout
            self._head_timer = Timeout(max(budget, 0.001))
            _waiting[self] = (self.server, time.monotonic())
            self._head_timer.start()
        return super().read_requestline()

    def _end_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.close()
            self._head_timer = None
            _waiting.pop(self, None)

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        except _HeadCut:
            return "408", self._head_timeout_reply()
        except Timeout as exc:
            if exc is not self._head_timer:
                raise
            return "408", self._head_timeout_reply()
        finally:
            self._end_head()
        if self.evicted and isinstance(result, tuple):
            return "408", self._head_timeout_reply()  # a request line cut short reads as a bad request
        return result

    def _head_timeout_reply(self) -> bytes:
        address = self.client_address
        self.environ = {  # what gunicorn's access log reads; the request never got an environ of its own
            "REMOTE_ADDR": address[0] if isinstance(address, tuple) else str(address or "-"),
            "REQUEST_METHOD": self.command or "-", "RAW_URI": self.path or "-",
            "SERVER_PROTOCOL": self.request_version or "-"}
        if self.evicted:
            message = "request headers stalled while the server was out of connection slots"
        else:
            message = f"request headers not received within {self.header_timeout:g} s (CLIENT_HEADER_TIMEOUT_S)"
        path = (self.path or "/").split("?", 1)[0] if self.command else "/"
        body = json.dumps(error_payload(path, 408, message)).encode()
        self.response_headers, self.response_length = [], len(body)
        return (f"HTTP/1.1 {status_line(408)}\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body

    def get_environ(self):
        self._end_head()
        if self.evicted:
            raise _HeadCut()
        env = super().get_environ()
        self.wsgi_input = TimedInput(self.wsgi_input, self, self._buffered_body)
        if env["wsgi.input"] is not self.rfile:  # an Upgrade request reads the raw stream
            env["wsgi.input"] = self.wsgi_input
        return env

    def start_response(self, status, headers, exc_info=None):
        if self.wsgi_input.failed:  # the rest of the body is unread: this connection cannot be reused
            headers = [*headers, ("Connection", "close")]
        return super().start_response(status, headers, exc_info)


class TimedInput:
    """wsgi.input whose reads wait at most what body_read_budget() allows."""

    __slots__ = ("_raw", "_handler", "_started", "_received", "_buffered", "failed")

    def __init__(self, raw, handler: TimedHandler, buffered: int):
        self._raw = raw
        self._handler = handler
        self._started = time.monotonic()
        self._received = 0
        self._buffered = buffered  # body bytes known to sit in the server's read buffer already
        self.failed = False

    def read(self, size: int | None = None) -> bytes:
        raw = self._raw
        if size is None or size < 0:
            return b"".join(iter(lambda: self._timed(raw.read, 65536), b""))
        if not raw.chunked_input:
            wanted = min(size, (raw.content_length or 0) - raw.position)
            if wanted <= self._buffered:  # a small body that came with its head: no wait, no timer
                self._buffered -= max(wanted, 0)
                return raw.read(size)
        return self._timed(raw.read, size)

    def readline(self, size: int | None = None) -> bytes:
        return self._timed(self._raw.readline, size)

    def readlines(self, hint=None) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self):
        return iter(self.readline, b"")

    def _timed(self, read, size) -> bytes:
        handler = self._handler
        timeout = handler.body_timeout
        budget = body_read_budget(time.monotonic() - self._started, self._received, timeout)
        too_slow = f"request body arrived too slowly (under 1 MiB per {timeout:g} s, CLIENT_BODY_TIMEOUT_S)"
        if budget <= 0:
            self._fail(too_slow)
        try:
            arrived, data = handler.wait_for_client(budget, read, size)
        except OSError:
            if handler.evicted:
                self._fail("request body stalled while the server was out of connection slots")
            raise
        if not arrived:
            self._fail(f"no request body data for {timeout:g} s (CLIENT_BODY_TIMEOUT_S)" if budget >= timeout
                       else too_slow)
        self._received += len(data)
        return data

    def _fail(self, message: str):
        self.failed = True
        self._handler.close_connection = True
        raise ClientTimeout(message)

    def _discard(self) -> None:
        """What pywsgi calls after the reply to skip an unread body: bounded too, or the connection is closed."""
        raw = self._raw
        if self.failed or (not raw.chunked_input and raw.position >= (raw.content_length or 0)):
            return
        raw.send_100_continue_enabled = False  # no "100 Continue" for a body nobody wants
        try:
            while self.read(16384):
                pass
        except OSError:  # ClientTimeout too
            self._handler.close_connection = True


class ProxyWorker(GeventPyWSGIWorker):
    """gunicorn.conf.py's worker_class: gevent_pywsgi with TimedHandler."""

    wsgi_handler = TimedHandler

    def init_process(self):
        settings = load_settings()
        TimedHandler.header_timeout = settings["CLIENT_HEADER_TIMEOUT_S"]
        TimedHandler.body_timeout = settings["CLIENT_BODY_TIMEOUT_S"]
        TimedHandler.idle_timeout = float(self.cfg.keepalive)
        super().init_process()
