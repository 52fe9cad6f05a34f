"""Reading the client's request: body (with the size limit), headers to forward, and the model it names."""
from __future__ import annotations

import json
from typing import Iterator

from .peek import CLOSED, peek
from .upstream import HOP_BY_HOP

# Inference endpoints: the model in the body decides the backend. Management calls (pull, push, create, copy,
# delete, blobs) always go to Ollama and are forwarded without being parsed.
ROUTED_BY_BODY = frozenset({
    "/api/generate", "/api/chat", "/api/embed", "/api/embeddings", "/api/show",
    "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages",
})
# Host is rewritten to the upstream's; the length is recomputed; Expect was already answered by our server.
# X-IntelliProxy-Node names a node of this proxy's pool: it is ours, not the node's.
_NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect", "x-intelliproxy-node"}


def is_api_path(path: str) -> bool:
    """The surface relayed to a backend: `/` and Ollama's and OpenAI's APIs, without dot segments (which a
    backend could resolve to a path outside them). Anything else is answered 404 by the proxy itself."""
    if path == "/":
        return True
    if not path.startswith(("/api/", "/v1/")):
        return False
    segments = path.split("/")
    return "." not in segments and ".." not in segments


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(environ) -> int | None:
    raw = environ.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(400, "invalid Content-Length header") from None
    if value < 0:
        raise BadRequest(400, "invalid Content-Length header")
    return value


def read_body(environ, limit: int) -> bytes:
    """The whole request body, refusing (413) anything over `limit` bytes before reading it if possible."""
    length = content_length(environ)
    stream = environ["wsgi.input"]
    if length is not None:
        if length > limit:
            raise BadRequest(413, f"request body of {length} bytes exceeds the limit of {limit} bytes (MAX_REQUEST_MB)")
        return _read(stream, length) if length else b""
    if "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return b""
    data = _read(stream, limit + 1)  # the server decodes chunked framing for us
    if len(data) > limit:
        raise BadRequest(413, f"request body exceeds the limit of {limit} bytes (MAX_REQUEST_MB)")
    return data


def iter_body(environ, size: int = 65536) -> Iterator[bytes]:
    """Stream the body through without holding it (blob uploads can be many GB)."""
    stream = environ["wsgi.input"]
    while piece := _read(stream, size):
        yield piece


def _read(stream, size: int) -> bytes:
    try:
        return stream.read(size)
    except TimeoutError as exc:  # the server's client timeouts (app/proxy/server.py)
        raise BadRequest(408, str(exc) or "request body not received in time (CLIENT_BODY_TIMEOUT_S)") from None


def forward_headers(environ, drop_authorization: bool) -> list[tuple[str, str]]:
    """Client headers for the upstream: hop-by-hop and Host dropped, everything else (Authorization too) kept."""
    connection_named = {t.strip().lower() for t in environ.get("HTTP_CONNECTION", "").split(",") if t.strip()}
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            if name in _NOT_FORWARDED or name in connection_named:
                continue
            if drop_authorization and name == "authorization":
                continue
            headers.append((name.title(), value))
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append(("Content-Type", content_type))
    return headers


def parse_json_body(raw: bytes) -> dict:
    """Decode a JSON object body or raise BadRequest(400) saying what is wrong."""
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BadRequest(400, "request body is not valid UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"invalid JSON in request body: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # e.g. [[[[...]]]] 100k deep: the decoder recurses once per level
        raise BadRequest(400, "invalid JSON in request body: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(400, f"request body must be a JSON object, not {type(body).__name__}")
    return body


def model_from_body(path: str, body: dict) -> str | None:
    """The model a routed request names: `model`, or the legacy `name` on /api/show."""
    model = body.get("model")
    if not model and path == "/api/show":
        model = body.get("name")
    if model is None:
        return None
    if not isinstance(model, str):
        raise BadRequest(400, f"model must be a string, not {type(model).__name__}")
    return model or None


def prompt_text(body: dict) -> str | None:
    """The user's text, for the request log when STORE_PROMPTS is on (and for the classifier)."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, str):
                    return content
                if isinstance(content, list):
                    return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if isinstance(body.get("input"), str):
        return body["input"]
    return None


def client_address(environ) -> str:
    return environ.get("REMOTE_ADDR", "") or ""


def client_alive_probe(environ):
    """A cheap check whether the client's socket is still open, for long silent waits; None if unknown.

    End of file counts as gone even when the client only shut down its sending side (a half-close), as nginx
    does by default (proxy_ignore_client_abort off): the two cannot be told apart from here, and keeping a
    generation running for a client that closed costs the backend minutes. Clients must not half-close
    while they wait for an answer (README, "Client disconnects and timeouts").
    """
    sock = environ.get("gunicorn.sock") or environ.get("gunicorn.socket")  # gevent_pywsgi / gevent workers
    if sock is None:
        return None

    def alive() -> bool:
        return peek(sock) != CLOSED  # waiting data (a pipelined request) still means the client is there

    return alive
