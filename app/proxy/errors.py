"""Errors in the shape each client expects: Ollama's `{"error": "..."}` or OpenAI's envelope on /v1/*."""
from __future__ import annotations

import json
from http import HTTPStatus

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "not_found_error", 413: "invalid_request_error", 429: "rate_limit_error"}


_PHRASES = {499: "Client Closed Request"}  # nginx's own code and name; not in the IANA registry


def status_line(status: int) -> str:
    phrase = _PHRASES.get(status)
    if phrase is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            return str(status)
    return f"{status} {phrase}"


def is_openai_path(path: str) -> bool:
    return path.startswith("/v1/")


def error_payload(path: str, status: int, message: str) -> dict:
    if is_openai_path(path):
        return {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "api_error"),
                          "param": None, "code": None}}
    return {"error": message}


def json_response(start_response, status: int, payload, extra_headers: list | None = None) -> list[bytes]:
    body = json.dumps(payload).encode()
    headers = [("Content-Type", "application/json; charset=utf-8"), ("Content-Length", str(len(body)))]
    start_response(status_line(status), headers + (extra_headers or []))
    return [body]


def error_response(start_response, path: str, status: int, message: str,
                   extra_headers: list | None = None) -> list[bytes]:
    """A complete error reply, sent before any byte of a stream."""
    return json_response(start_response, status, error_payload(path, status, message), extra_headers)


def stream_error_bytes(content_type: str, path: str, message: str, after_partial_line: bool) -> bytes:
    """The last words of a stream that broke after bytes were sent (status 200 is already out).

    NDJSON gets one `{"error": ...}` line (Ollama's own convention; ollama-python raises status_code -1);
    SSE gets one `data: {"error": {...}}` frame and, on purpose, no `[DONE]`.
    """
    lead = b"\n" if after_partial_line else b""
    if "text/event-stream" in content_type:
        frame = json.dumps({"error": {"message": message, "type": "api_error", "param": None, "code": None}})
        return lead + b"data: " + frame.encode() + b"\n\n"
    return lead + json.dumps({"error": message}).encode() + b"\n"


def is_model_not_found(body: bytes) -> bool:
    """Ollama's JSON "model 'x' not found" (worth trying elsewhere), not gin's text "404 page not found" for a
    route the server does not have."""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return False
    if isinstance(error, dict):  # the OpenAI envelope on /v1
        error = error.get("message")
    return isinstance(error, str) and "not found" in error.lower() and "page not found" not in error.lower()
