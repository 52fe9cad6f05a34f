"""The proxy's WSGI application: parse the model, pick the backend, relay the bytes.

It is plain WSGI rather than Flask on purpose: this path runs for every token stream, and Flask's request
dispatch alone costs ~64 µs per call on the target machine against a budget of 350 µs for the whole request
(../shared/bench targets). The dashboard, where that does not matter, is a Flask app.
"""
from __future__ import annotations

import hmac
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field

from ..auth_throttle import FailureThrottle
from ..routing import AIRLLM, OLLAMA_FALLBACK, Backend, choose_backends
from ..telemetry.records import RequestRecord
from .catalog import LISTS, decode_list, merge_model_lists
from .errors import error_response, json_response
from .inbound import (ROUTED_BY_BODY, BadRequest, client_address, client_alive_probe, content_length,
                      forward_headers, iter_body, model_from_body, parse_json_body, prompt_text, read_body)
from .relay import RelayBody, response_headers
from .upstream import ClientGone, UpstreamClient, UpstreamError

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/", "/health"})  # liveness probes stay open when PROXY_API_KEYS is set
BACKEND_NAMES = {"ollama": "Ollama", "airllm": "the AirLLM server"}


@dataclass
class Attempt:
    """One backend (and model) to try; `fallback_*` say which failures move on to the next attempt."""

    backend: Backend
    label: str
    model: str | None
    body: bytes | object | None
    fallback_on_connect: bool = False
    fallback_on_not_found: bool = False
    fallback_on_5xx: bool = False
    first_byte_timeout: float | None = None
    headers: list = field(default_factory=list)


@dataclass
class LocalReply:
    """A resolver's own answer (e.g. `/api/show` for the virtual model, or why no model can serve a request)."""

    status: int
    payload: dict | None = None  # sent as JSON when status < 400
    error: str | None = None  # sent in the API's error shape otherwise


class ProxyApp:
    def __init__(self, settings: dict, watcher, client: UpstreamClient, recorder, health, resolver=None):
        self.watcher = watcher
        self.client = client
        self.recorder = recorder
        self.health = health
        self.resolver = resolver  # the virtual model and fallback chains (app.intelli), if configured
        self.max_body = int(settings["MAX_REQUEST_MB"] * 1024 * 1024)
        self.api_keys = tuple(settings["PROXY_API_KEYS"])
        self.auth_failures = FailureThrottle()  # per worker: wrong API keys per client address
        self.store_prompts = settings["STORE_PROMPTS"]

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if self.api_keys and path not in OPEN_PATHS:
            refusal = self._authorized(environ)
            if refusal is not None:
                return error_response(start_response, path, *refusal)
        if path == "/health" and method in ("GET", "HEAD"):
            return json_response(start_response, 200, self.health.report())
        if method == "GET" and path in LISTS and self._needs_merge():
            return self._merged_list(environ, start_response, path)
        return self._relay(environ, start_response, method, path)

    def _authorized(self, environ) -> tuple[int, str, list] | None:
        """None for a valid API key; else the refusal's (status, message, headers): 401, or 429 once the client's
        address has failed too often (app.auth_throttle; a missing key is not counted as a guess)."""
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        unauthorized = (401, "unauthorized: missing or invalid API key",
                        [("WWW-Authenticate", 'Bearer realm="IntelliProxy"')])
        if scheme.lower() != "bearer" or not token:
            return unauthorized
        address = client_address(environ)
        wait = self.auth_failures.retry_after(address)
        if wait is not None:
            return 429, self.auth_failures.message(wait), [("Retry-After", str(wait))]
        token = token.strip().encode()
        if any(hmac.compare_digest(token, key.encode()) for key in self.api_keys):
            return None
        self.auth_failures.failed(address)
        return unauthorized

    def _needs_merge(self) -> bool:
        return self.watcher.table.airllm_enabled or (self.resolver is not None and self.resolver.lists_models)

    # -- the relay ------------------------------------------------------------------------------------------

    def _relay(self, environ, start_response, method: str, path: str):
        table = self.watcher.table
        record = RequestRecord(method=method, endpoint=path, client=client_address(environ))
        try:
            attempts = self._plan(environ, method, path, table, record)
        except BadRequest as exc:
            return self._fail(start_response, record, path, exc.status, exc.message)
        if isinstance(attempts, LocalReply):
            return self._local(start_response, record, path, attempts)
        query = environ.get("QUERY_STRING")
        target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")
        headers = forward_headers(environ, drop_authorization=bool(self.api_keys))
        probe = client_alive_probe(environ)
        body_length = content_length(environ) if path.startswith("/api/blobs/") else None

        for index, attempt in enumerate(attempts):
            last = index == len(attempts) - 1
            try:
                upstream = self.client.request(
                    method, attempt.backend.host, attempt.backend.port, target, headers + attempt.headers,
                    attempt.body, body_length, client_alive=probe,
                    head_timeout=None if last else attempt.first_byte_timeout)
            except ClientGone:
                return self._fail(start_response, record, path, 499, "client disconnected")
            except UpstreamError as exc:
                if not last and (attempt.fallback_on_connect and exc.kind in ("connect", "closed")
                                 or attempt.first_byte_timeout and exc.kind == "timeout"):
                    self._note_fallback(record, attempt, exc.message)
                    continue
                name = BACKEND_NAMES.get(attempt.backend.name, attempt.backend.name)
                if exc.kind == "connect":
                    message = f"cannot reach {name} at {attempt.backend.url}: {exc.message}"
                else:
                    message = f"{name} at {attempt.backend.url} failed: {exc.message}"
                record.backend, record.model = attempt.label, attempt.model
                return self._fail(start_response, record, path, 504 if exc.kind == "timeout" else 502, message)

            if not last and self._should_fall_back(attempt, upstream):
                upstream.close()
                self._note_fallback(record, attempt, f"answered {upstream.status}")
                continue
            record.backend, record.model, record.status = attempt.label, attempt.model, upstream.status
            record.streamed = upstream.content_type.startswith(("application/x-ndjson", "text/event-stream"))
            out_headers = response_headers(upstream, attempt.label)
            if attempt.model and self.resolver is not None:
                out_headers.append(("X-IntelliProxy-Model", attempt.model))
            start_response(upstream.status_line, out_headers)
            return RelayBody(upstream, record, self.recorder, path)
        raise AssertionError("no attempt left")  # the last attempt always returns

    def _plan(self, environ, method: str, path: str, table, record: RequestRecord) -> list[Attempt] | LocalReply:
        """Read the request and decide where it may go, in order."""
        if path.startswith("/api/blobs/"):
            body = iter_body(environ) if method in ("POST", "PUT") else None  # streamed, never parsed
            return [Attempt(table.ollama, "ollama", None, body)]
        raw = read_body(environ, self.max_body) if method not in ("GET", "HEAD") else None
        model, parsed = None, None
        if method == "POST" and path in ROUTED_BY_BODY and raw and raw.strip():
            parsed = parse_json_body(raw)
            model = model_from_body(path, parsed)
            if self.store_prompts:
                record.prompt = prompt_text(parsed)
        elif method == "GET" and path.startswith("/v1/models/"):
            model = urllib.parse.unquote(path[len("/v1/models/"):]) or None
        record.model = model
        if self.resolver is not None and (parsed is not None or model is not None):
            planned = self.resolver.plan(path, parsed if parsed is not None else {}, raw, model, table, record)
            if planned is not None:
                return planned
        return self.backend_attempts(model, raw, table)

    @staticmethod
    def backend_attempts(model: str | None, body, table) -> list[Attempt]:
        """The seed's per-model routing: the AirLLM server first when flagged, Ollama as its fallback."""
        return [Attempt(backend, label, model, body, fallback_on_connect=label == AIRLLM,
                        fallback_on_not_found=label == AIRLLM)
                for backend, label in choose_backends(model, table)]

    @staticmethod
    def _should_fall_back(attempt: Attempt, upstream) -> bool:
        if attempt.fallback_on_5xx and upstream.status >= 500:
            return True
        if attempt.fallback_on_not_found and upstream.status == 404:
            # Only "model not found" moves on; any other 404 is the answer. The body is small JSON.
            body = upstream.read()
            if b"not found" in body.lower():
                return True
            upstream.replay(body)
        return False

    def _note_fallback(self, record: RequestRecord, attempt: Attempt, reason: str) -> None:
        name = BACKEND_NAMES.get(attempt.backend.name, attempt.backend.name)
        text = f"{name} ({attempt.model or 'no model'}) {reason}; falling back"
        log.warning("%s %s: %s", record.method, record.endpoint, text)
        record.note = text if record.note is None else f"{record.note}; {text}"
        if attempt.label == AIRLLM:
            record.backend = OLLAMA_FALLBACK
        if self.resolver is not None:
            self.resolver.attempt_failed(attempt.model, reason)

    def _local(self, start_response, record: RequestRecord, path: str, reply: LocalReply):
        if reply.status >= 400:
            return self._fail(start_response, record, path, reply.status, reply.error or "error")
        record.status, record.backend, record.finished = reply.status, "intelliproxy", time.perf_counter()
        self.recorder.submit(record)
        return json_response(start_response, reply.status, reply.payload)

    def _fail(self, start_response, record: RequestRecord, path: str, status: int, message: str):
        record.status, record.error, record.finished = status, message, time.perf_counter()
        self.recorder.submit(record)
        return error_response(start_response, path, status, message)

    # -- merged model lists ---------------------------------------------------------------------------------

    def _merged_list(self, environ, start_response, path: str):
        """`/api/tags`, `/api/ps`, `/v1/models`: Ollama's list plus the AirLLM server's (and the virtual model)."""
        table = self.watcher.table
        record = RequestRecord(method="GET", endpoint=path, client=client_address(environ))
        headers = forward_headers(environ, drop_authorization=bool(self.api_keys))
        try:
            upstream = self.client.request("GET", table.ollama.host, table.ollama.port, path, headers)
            raw = upstream.read()
        except UpstreamError as exc:
            return self._fail(start_response, record, path, 502,
                              f"cannot reach Ollama at {table.ollama.url}: {exc.message}")
        primary = decode_list(raw) if upstream.status == 200 else None
        if primary is None:  # an error or something unexpected: pass Ollama's answer through untouched
            record.status, record.finished = upstream.status, time.perf_counter()
            self.recorder.submit(record)
            start_response(upstream.status_line, response_headers(upstream, "ollama"))
            return [raw]
        key, name_field = LISTS[path]
        extra = self._airllm_list(table, path, headers) if table.airllm_enabled else None
        additions = self.resolver.list_entries(path) if self.resolver is not None else None
        merged = merge_model_lists(primary, extra, key, name_field, additions)
        record.status, record.finished = 200, time.perf_counter()
        self.recorder.submit(record)
        body = json.dumps(merged).encode()
        content_type = upstream.header("content-type") or "application/json; charset=utf-8"
        start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                  ("X-IntelliProxy-Backend", "ollama+airllm" if extra else "ollama")])
        return [body]

    def _airllm_list(self, table, path: str, headers) -> dict | None:
        """The AirLLM server's list, or None when it is down (its part is then left out)."""
        try:
            upstream = self.client.request("GET", table.airllm.host, table.airllm.port, path, headers,
                                           read_timeout=5.0, connect_timeout=2.0)
            raw = upstream.read()
        except UpstreamError as exc:
            log.info("AirLLM server at %s left out of %s: %s", table.airllm.url, path, exc.message)
            return None
        return decode_list(raw) if upstream.status == 200 else None
