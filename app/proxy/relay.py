"""The response side of the relay: upstream bytes to the client, unchanged, as they arrive."""
from __future__ import annotations

import logging
import time

from ..telemetry.records import RequestRecord
from .errors import stream_error_bytes
from .upstream import HOP_BY_HOP, ClientGone, UpstreamError, UpstreamResponse

log = logging.getLogger(__name__)
TAIL_BYTES = 4096
_STREAM_TYPES = ("application/x-ndjson", "text/event-stream")


def response_headers(upstream: UpstreamResponse, backend_label: str) -> list[tuple[str, str]]:
    """Upstream headers minus hop-by-hop ones (and those its Connection header names), plus our own."""
    named = {t.strip().lower() for t in (upstream.header("connection") or "").split(",") if t.strip()}
    headers = [(k, v) for k, v in upstream.headers if k.lower() not in HOP_BY_HOP and k.lower() not in named]
    headers.append(("X-IntelliProxy-Backend", backend_label))
    if upstream.content_type.startswith(_STREAM_TYPES):
        headers.append(("X-Accel-Buffering", "no"))  # tells nginx in front not to buffer the stream
    return headers


class RelayBody:
    """The WSGI iterable for a relayed reply.

    The server calls close() at the normal end *and* when the client disconnects, even if iteration never
    started: that is where the upstream socket is closed (so Ollama stops generating) and the record is filed.
    """

    __slots__ = ("_upstream", "_record", "_recorder", "_path", "_last", "_before_last", "_closed", "_on_close")

    def __init__(self, upstream: UpstreamResponse, record: RequestRecord, recorder, path: str, on_close=None):
        self._upstream = upstream
        self._on_close = on_close  # e.g. free the node's slot: called with True when the reply ended well
        self._record = record
        self._recorder = recorder
        self._path = path
        self._last = self._before_last = b""  # the final counters may straddle two pieces
        self._closed = False

    def __iter__(self):
        record = self._record
        try:
            for piece in self._upstream.iter_body():
                if record.first_byte is None:
                    record.first_byte = time.perf_counter()
                self._before_last, self._last = self._last, piece
                yield piece
        except ClientGone:
            record.error = "client disconnected"
        except UpstreamError as exc:
            record.error = f"upstream stream interrupted: {exc.message}"
            log.warning("%s %s: %s", record.method, self._path, record.error)
            yield stream_error_bytes(self._upstream.content_type, self._path, record.error,
                                     after_partial_line=bool(self._last) and not self._last.endswith(b"\n"))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        upstream = self._upstream
        if not upstream.finished and self._record.error is None:
            self._record.error = "client disconnected"
        upstream.close()
        record = self._record
        if self._on_close is not None:
            self._on_close(upstream.finished and record.error is None and record.status < 400)
        record.finished = time.perf_counter()
        record.tail = (self._before_last[-TAIL_BYTES:] + self._last[-TAIL_BYTES:])[-TAIL_BYTES:]
        self._recorder.submit(record)
