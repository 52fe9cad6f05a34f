"""The proxy's WSGI application: parse the model, pick the backend, relay the bytes.

It is plain WSGI rather than Flask on purpose: this path runs for every token stream, and Flask's request
dispatch alone costs ~64 µs per call on the target machine against a budget of 350 µs for the whole request
(the README's Performance targets). The dashboard, where that does not matter, is a Flask app.
"""
from __future__ import annotations

import hmac
import logging
import time
import urllib.parse

from .. import auth_throttle
from ..fleet.pool import Pool
from ..routing import AIRLLM, OLLAMA_FALLBACK
from ..telemetry.records import RequestRecord
from . import everywhere, management, pool_relay
from .attempts import NODE_HEADER, Attempt, LocalReply, model_attempts
from .everywhere import Everywhere
from .lists import merged_list
from .catalog import LISTS
from .errors import error_response, is_model_not_found, json_response
from .inbound import (ROUTED_BY_BODY, BadRequest, client_address, client_alive_probe, content_length,
                      forward_headers, is_api_path, iter_body, model_from_body, parse_json_body, prompt_text,
                      read_body)
from .relay import RelayBody, response_headers
from .upstream import ClientGone, UpstreamClient, UpstreamError

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/", "/health"})  # liveness probes stay open when PROXY_API_KEYS is set
BACKEND_NAMES = {"ollama": "Ollama", "airllm": "the AirLLM server"}
# Requests that occupy one of a node's NUM_PARALLEL slots while they run (the rest are quick lookups).
INFERENCE_PATHS = ROUTED_BY_BODY - {"/api/show"}

__all__ = ["Attempt", "LocalReply", "ProxyApp"]


class ProxyApp:
    def __init__(self, settings: dict, watcher, client: UpstreamClient, recorder, health, resolver=None,
                 pool: Pool | None = None):
        self.watcher = watcher
        self.pool = pool if pool is not None else Pool(settings, client)
        self.client = client
        self.recorder = recorder
        self.health = health
        self.resolver = resolver  # the virtual model and fallback chains (app.intelli), if configured
        self.max_body = int(settings["MAX_REQUEST_MB"] * 1024 * 1024)
        self.api_keys = tuple(settings["PROXY_API_KEYS"])
        self.auth_failures = auth_throttle.for_port("proxy")  # wrong API keys per client address
        self.store_prompts = settings["STORE_PROMPTS"]

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if not is_api_path(path) and path != "/health":  # never relay the rest (e.g. /config/*) to a backend
            record = RequestRecord(method=method, endpoint=path, client=client_address(environ))
            return self._fail(start_response, record, path, 404, f"{path} is not part of the Ollama or OpenAI API")
        if self.api_keys and path not in OPEN_PATHS:
            refusal = self._authorized(environ)
            if refusal is not None:
                return error_response(start_response, path, *refusal)
        if path == "/health" and method in ("GET", "HEAD"):
            return json_response(start_response, 200, self.health.report())
        if method == "GET" and path in LISTS and self._needs_merge():
            return merged_list(self, environ, start_response, path)
        try:
            return self._relay(environ, start_response, method, path)
        except BadRequest as exc:  # a streamed upload (blob) that the client sends too slowly: 408
            record = RequestRecord(method=method, endpoint=path, client=client_address(environ))
            return self._fail(start_response, record, path, exc.status, exc.message)

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
        table = self.watcher.table
        self.pool.sync(table)
        return self.pool.node_count > 1 or table.airllm_enabled or \
            (self.resolver is not None and self.resolver.lists_models)

    # -- the relay ------------------------------------------------------------------------------------------

    def _relay(self, environ, start_response, method: str, path: str):
        table = self.watcher.table
        self.pool.sync(table)
        record = RequestRecord(method=method, endpoint=path, client=client_address(environ))
        try:
            plan = self._plan(environ, method, path, table, record)
        except (BadRequest, management.UnknownNode) as exc:
            return self._fail(start_response, record, path, getattr(exc, "status", 400), exc.message)
        if isinstance(plan, LocalReply):
            return self._local(start_response, record, path, plan)
        if isinstance(plan, Everywhere):
            return everywhere.run(self.pool, self.client, self.recorder, record, start_response, method, path,
                                  forward_headers(environ, drop_authorization=bool(self.api_keys)), plan)
        attempts, only = plan
        query = environ.get("QUERY_STRING")
        target = urllib.parse.quote(path, safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")
        headers = forward_headers(environ, drop_authorization=bool(self.api_keys))
        probe = client_alive_probe(environ)
        body_length = content_length(environ) if path.startswith("/api/blobs/") else None
        inference = path in INFERENCE_PATHS

        for index, attempt in enumerate(attempts):
            last = index == len(attempts) - 1
            head_timeout = None if last else attempt.first_byte_timeout
            ticket = node = None
            if attempt.to_pool:
                outcome = pool_relay.send(self.pool, self.client, method, target, headers + attempt.headers,
                                          attempt.body, body_length, attempt.model, inference, probe, head_timeout,
                                          only)
                if outcome.tried:
                    record.note = _join(record.note, outcome.notes)
                if outcome.upstream is None:
                    if not last and self._moves_on(attempt, outcome.failure_kind):
                        self._note_fallback(record, attempt, outcome.message)
                        continue
                    record.backend, record.model = attempt.label, attempt.model
                    extra = [("Retry-After", str(outcome.retry_after))] if outcome.retry_after else None
                    return self._fail(start_response, record, path, outcome.status, outcome.message, extra)
                upstream, ticket, node = outcome.upstream, outcome.ticket, outcome.node
                record.node = node.name
                record.route_reason = outcome.reason if not outcome.tried else \
                    f"{outcome.notes}; {outcome.reason}"[:256]
            else:
                try:
                    upstream = self.client.request(
                        method, attempt.backend.host, attempt.backend.port, target, headers + attempt.headers,
                        attempt.body, body_length, client_alive=probe, head_timeout=head_timeout)
                except ClientGone:
                    return self._fail(start_response, record, path, 499, "client disconnected")
                except UpstreamError as exc:
                    kind = "timeout" if exc.kind == "timeout" else "connect" if exc.kind in ("connect", "closed") \
                        else "5xx"
                    if not last and self._moves_on(attempt, kind):
                        self._note_fallback(record, attempt, exc.message)
                        continue
                    name = BACKEND_NAMES.get(attempt.backend.name, attempt.backend.name)
                    if exc.kind == "connect":
                        message = f"cannot reach {name} at {attempt.backend.url}: {exc.message}"
                    else:
                        message = f"{name} at {attempt.backend.url} failed: {exc.message}"
                    record.backend, record.model = attempt.label, attempt.model
                    return self._fail(start_response, record, path, 504 if exc.kind == "timeout" else 502, message)

            try:
                fall_back = not last and self._should_fall_back(attempt, upstream)
            except UpstreamError as exc:  # the error reply broke while we read it
                upstream.close()
                if ticket is not None:
                    self.pool.release(ticket, ok=False)
                if not last:
                    self._note_fallback(record, attempt, exc.message)
                    continue
                record.backend, record.model = attempt.label, attempt.model
                return self._fail(start_response, record, path, 502,
                                  f"{BACKEND_NAMES.get(attempt.backend.name, 'the backend')} failed: {exc.message}")
            if attempt.label == AIRLLM and upstream.status == 404 and not self._names_a_model(upstream):
                upstream.close()
                record.backend, record.model = attempt.label, attempt.model
                return self._fail(start_response, record, path, 501,
                                  f"the AirLLM server does not serve {path} (model {attempt.model} is routed to "
                                  "AirLLM; turn its AirLLM switch off to send it to Ollama)")
            if fall_back:
                upstream.close()
                if ticket is not None:
                    self.pool.release(ticket, ok=False)
                self._note_fallback(record, attempt, f"answered {upstream.status}")
                continue
            record.backend, record.model, record.status = attempt.label, attempt.model, upstream.status
            record.streamed = upstream.content_type.startswith(("application/x-ndjson", "text/event-stream"))
            out_headers = response_headers(upstream, attempt.label)
            out_headers.append((NODE_HEADER, node.name if node is not None else attempt.label))  # airllm
            if attempt.model and self.resolver is not None:
                out_headers.append(("X-IntelliProxy-Model", attempt.model))
            if path.startswith("/api/blobs/") and node is not None and upstream.status < 400:
                digest = management.blob_digest(path)
                if digest:
                    self.pool.board.remember_blob(digest, node.slot)
            start_response(upstream.status_line, out_headers)
            on_close = None
            if ticket is not None:
                pool, held = self.pool, ticket
                on_close = lambda ok: pool.release(held, ok)  # noqa: E731
            return RelayBody(upstream, record, self.recorder, path, on_close)
        raise AssertionError("no attempt left")  # the last attempt always returns

    @staticmethod
    def _moves_on(attempt: Attempt, failure_kind: str | None) -> bool:
        """Does this failure (before any byte) hand over to the next attempt?"""
        if failure_kind in ("connect",):
            return attempt.fallback_on_connect
        if failure_kind == "timeout":
            return bool(attempt.first_byte_timeout) or attempt.fallback_on_connect
        if failure_kind == "not_found":
            return attempt.fallback_on_not_found
        return attempt.fallback_on_5xx

    def _plan(self, environ, method: str, path: str, table, record: RequestRecord):
        """Read the request and decide where it may go, in order: (attempts, nodes or None) or a LocalReply."""
        if path.startswith("/api/blobs/"):
            body = iter_body(environ) if method in ("POST", "PUT") else None  # streamed, never parsed
            return [Attempt(table.ollama, "ollama", None, body)], self._blob_nodes(path)
        raw = read_body(environ, self.max_body) if method not in ("GET", "HEAD") else None
        model, parsed, only = None, None, None
        if method in ("POST", "DELETE") and raw and raw.strip() and \
                (path in ROUTED_BY_BODY or path in management.MANAGEMENT_PATHS):
            parsed = parse_json_body(raw)
            if path in ROUTED_BY_BODY:
                model = model_from_body(path, parsed)
                if self.store_prompts:
                    record.prompt = prompt_text(parsed)
            else:
                model = management.management_model(path, parsed)
                only = self._management_nodes(environ, path, parsed, model)
        elif method == "GET" and path.startswith("/v1/models/"):
            model = urllib.parse.unquote(path[len("/v1/models/"):]) or None
        record.model = model
        if path == "/api/show" or (path.startswith("/v1/models/") and model):
            only = self._listing(model)
        if only == management.ALL_NODES:
            return Everywhere(raw, parsed or {})
        if self.resolver is not None and (parsed is not None or model is not None) and \
                path not in management.MANAGEMENT_PATHS:
            planned = self.resolver.plan(path, parsed if parsed is not None else {}, raw, model, table, record)
            if planned is not None:
                return planned if isinstance(planned, LocalReply) else (planned, None)
        return model_attempts(model, raw, table), only

    def _listing(self, model: str | None):
        """Nodes that list the model, as (node, reason) pairs; None when no node does (then the usual choice)."""
        nodes = management.nodes_listing(model, self.pool.views.values())
        return [(node, "lists the model") for node in nodes] or None

    def _management_nodes(self, environ, path: str, parsed: dict, model: str | None):
        views = list(self.pool.views.values())
        named = management.named_node(environ, views)
        if named == management.ALL_NODES:
            return management.ALL_NODES
        if named is not None:
            return [(named, "named by X-IntelliProxy-Node")]
        if path == "/api/pull":
            return None  # the placement rule's choice for that model
        if path == "/api/create":
            for digest in management.create_blob_digests(parsed):
                slot = self.pool.board.blob_node(digest)
                config = next((v.config for v in views if v.config.slot == slot), None)
                if config is not None:
                    return [(config, "has the uploaded blobs")]
            base = parsed.get("from") if isinstance(parsed.get("from"), str) else None
            return self._listing(base)
        if path == "/api/delete":
            nodes = management.nodes_listing(model, views)
            return management.ALL_NODES if len(nodes) > 1 else self._listing(model)
        return self._listing(model)

    def _blob_nodes(self, path: str):
        digest = management.blob_digest(path)
        slot = self.pool.board.blob_node(digest) if digest else None
        config = next((v.config for v in self.pool.views.values() if v.config.slot == slot), None)
        return [(config, "has the blob")] if config is not None and slot is not None else None

    @staticmethod
    def _should_fall_back(attempt: Attempt, upstream) -> bool:
        if attempt.fallback_on_5xx and upstream.status >= 500:
            return True
        if attempt.fallback_on_not_found and upstream.status == 404:
            # Only "model not found" moves on; any other 404 (a route the backend lacks) is the answer.
            return ProxyApp._names_a_model(upstream)
        return False

    @staticmethod
    def _names_a_model(upstream) -> bool:
        """A 404 that says "model not found" (not a route the server lacks); the body stays readable."""
        body = upstream.read()
        upstream.replay(body)
        return is_model_not_found(body)

    def _note_fallback(self, record: RequestRecord, attempt: Attempt, reason: str) -> None:
        name = BACKEND_NAMES.get(attempt.backend.name, attempt.backend.name)
        text = f"{name} ({attempt.model or 'no model'}) {reason}; falling back"
        log.warning("%s %s: %s", record.method, record.endpoint, text)
        record.note = _join(record.note, text)
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

    def _fail(self, start_response, record: RequestRecord, path: str, status: int, message: str,
              extra_headers: list | None = None):
        record.status, record.error, record.finished = status, message, time.perf_counter()
        self.recorder.submit(record)
        return error_response(start_response, path, status, message, extra_headers)


def _join(note: str | None, text: str) -> str:
    return text if not note else f"{note}; {text}"
