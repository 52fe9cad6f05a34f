"""Replies for an admitted request: Ollama NDJSON chunks or one JSON object, OpenAI SSE or JSON.

A streamed reply sends its status line and headers at once (its first chunk is an empty one), then an empty chunk
(NDJSON) or an SSE comment (/v1) whenever ``heartbeat_s`` pass without a token: while the request waits, while its
model loads, during a long prompt pass. Clients see a live stream and show nothing for them.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone

from flask import Response, jsonify

from .admission import Handle
from .errors import ApiError, ClientGone, openai_body

NDJSON = "application/x-ndjson"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_HEARTBEAT = b": keep-alive\n\n"


def now_rfc3339() -> str:
    """created_at as Ollama writes it (UTC, Z suffix)."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"     # ensure_ascii keeps U+2028 from splitting a line client-side


def _final_fields(handle: Handle) -> dict:
    o = handle.outcome
    return {"done_reason": o.done_reason, "total_duration": handle.total_ns(), "load_duration": handle.load_ns,
            "prompt_eval_count": o.prompt_eval_count, "prompt_eval_duration": o.prompt_eval_duration,
            "eval_count": o.eval_count, "eval_duration": o.eval_duration}


def _piece(kind: str, model: str, text: str, done: bool) -> dict:
    if kind == "chat":
        return {"model": model, "created_at": now_rfc3339(), "message": {"role": "assistant", "content": text},
                "done": done}
    return {"model": model, "created_at": now_rfc3339(), "response": text, "done": done}


def _collect(handle: Handle) -> str:
    """A non-streamed reply: wait for the end, give the place back, turn a failure into its status."""
    try:
        text = handle.collect()
    finally:
        handle.close()
    outcome = handle.outcome
    if outcome is None or outcome.done_reason == "canceled":
        raise ClientGone()
    if outcome.error:
        raise ApiError(500, f"generation failed: {outcome.error}")
    return text


def _streamed(body, mimetype: str, handle: Handle, headers: dict | None = None) -> Response:
    resp = Response(body, mimetype=mimetype, headers=headers)
    resp.call_on_close(handle.close)        # on normal end and on client disconnect alike
    return resp


def native_reply(handle: Handle, model: str, kind: str, stream: bool, context_prefix: list[int] | None,
                 heartbeat_s: float) -> Response:
    """Ollama's reply for /api/generate (kind "generate") or /api/chat (kind "chat")."""

    def final(text: str) -> dict:
        body = _piece(kind, model, text, True)
        body.update(_final_fields(handle))
        if context_prefix is not None:
            body["context"] = context_prefix + handle.outcome.output_ids
        return body

    if not stream:
        return jsonify(final(_collect(handle)))

    def body():
        yield _line(_piece(kind, model, "", False))
        try:
            for text in handle.pieces(heartbeat_s):
                yield _line(_piece(kind, model, text or "", False))
        except ApiError as exc:
            yield _line({"error": exc.message})
            return
        except ClientGone:
            return
        if handle.outcome.error:
            yield _line({"error": f"generation failed: {handle.outcome.error}"})
        elif handle.outcome.done_reason != "canceled":
            yield _line(final(""))

    return _streamed(body(), NDJSON, handle)


def _finish_reason(done_reason: str) -> str:
    return "length" if done_reason == "length" else "stop"


def _usage(handle: Handle) -> dict:
    o = handle.outcome
    return {"prompt_tokens": o.prompt_eval_count, "completion_tokens": o.eval_count,
            "total_tokens": o.prompt_eval_count + o.eval_count}


def _frame(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def openai_reply(handle: Handle, model: str, stream: bool, include_usage: bool, heartbeat_s: float,
                 completion: bool = False) -> Response:
    """/v1/chat/completions (chat.completion[.chunk]) or, with ``completion``, /v1/completions (text_completion)."""
    ident = f"{'cmpl' if completion else 'chatcmpl'}-{secrets.randbelow(10**9)}"
    created = int(time.time())
    head = {"id": ident, "object": "text_completion" if completion else "chat.completion.chunk",
            "created": created, "model": model, "system_fingerprint": "fp_ollama"}

    def choice(text: str | None, finish: str | None) -> dict:
        if completion:
            return {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        delta = {} if text is None else {"role": "assistant", "content": text}
        return {"index": 0, "delta": delta, "finish_reason": finish}

    if not stream:
        text = _collect(handle)
        finish = _finish_reason(handle.outcome.done_reason)
        if completion:
            choices = [choice(text, finish)]
        else:
            choices = [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}]
        return jsonify(dict(head, object="text_completion" if completion else "chat.completion", choices=choices,
                            usage=_usage(handle)))

    def body():
        if not completion:
            yield _frame(dict(head, choices=[choice("", None)]))
        else:
            yield SSE_HEARTBEAT
        try:
            for text in handle.pieces(heartbeat_s):
                yield SSE_HEARTBEAT if text is None else _frame(dict(head, choices=[choice(text, None)]))
        except ApiError as exc:
            yield _frame(openai_body(exc.status, exc.message))
            return
        except ClientGone:
            return
        outcome = handle.outcome
        if outcome.error:
            yield _frame(openai_body(500, f"generation failed: {outcome.error}"))
            return
        if outcome.done_reason == "canceled":
            return
        yield _frame(dict(head, choices=[choice(None if not completion else "", _finish_reason(outcome.done_reason))]))
        if include_usage:
            yield _frame(dict(head, choices=[], usage=_usage(handle)))
        yield b"data: [DONE]\n\n"

    return _streamed(body(), "text/event-stream", handle, SSE_HEADERS)
