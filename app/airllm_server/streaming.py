"""Replies for a running generation: Ollama NDJSON chunks or one JSON object, and OpenAI SSE or JSON."""

from __future__ import annotations

import json
import secrets
import time
from datetime import datetime, timezone

from flask import Response, jsonify

from .engine import Running
from .errors import ApiError, ClientGone, openai_body

NDJSON = "application/x-ndjson"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def now_rfc3339() -> str:
    """created_at as Ollama writes it (UTC, Z suffix)."""
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _line(obj: dict) -> bytes:
    return json.dumps(obj).encode() + b"\n"     # ensure_ascii keeps U+2028 from splitting a line client-side


def _final_fields(running: Running) -> dict:
    o = running.outcome
    return {"done_reason": o.done_reason, "total_duration": running.total_ns(), "load_duration": running.load_ns,
            "prompt_eval_count": o.prompt_eval_count, "prompt_eval_duration": o.prompt_eval_duration,
            "eval_count": o.eval_count, "eval_duration": o.eval_duration}


def _piece(kind: str, model: str, text: str, done: bool) -> dict:
    if kind == "chat":
        return {"model": model, "created_at": now_rfc3339(), "message": {"role": "assistant", "content": text},
                "done": done}
    return {"model": model, "created_at": now_rfc3339(), "response": text, "done": done}


def native_reply(running: Running, model: str, kind: str, stream: bool, context_prefix: list[int] | None) -> Response:
    """Ollama's reply for /api/generate (kind "generate") or /api/chat (kind "chat")."""

    def final(text: str) -> dict:
        body = _piece(kind, model, text, True)
        body.update(_final_fields(running))
        if context_prefix is not None:
            body["context"] = context_prefix + running.outcome.output_ids
        return body

    if not stream:
        return jsonify(final(_collect(running)))

    def body():
        for text in running.texts():
            yield _line(_piece(kind, model, text, False))
        if running.outcome.error:
            yield _line({"error": f"generation failed: {running.outcome.error}"})
        elif running.outcome.done_reason != "canceled":
            yield _line(final(""))

    resp = Response(body(), mimetype=NDJSON)
    resp.call_on_close(running.finish)   # on normal end and on client disconnect alike
    return resp


def _collect(running: Running) -> str:
    """A non-streamed reply: run to the end, release the device, turn a failure into its status."""
    try:
        text = running.collect()
    finally:
        running.finish()
    outcome = running.outcome
    if outcome is None or outcome.done_reason == "canceled":
        raise ClientGone()
    if outcome.error:
        raise ApiError(500, f"generation failed: {outcome.error}")
    return text


def _finish_reason(done_reason: str) -> str:
    return "length" if done_reason == "length" else "stop"


def openai_reply(running: Running, model: str, stream: bool, include_usage: bool) -> Response:
    """OpenAI's chat.completion object, or its chunk stream ending in ``data: [DONE]``."""
    ident = f"chatcmpl-{secrets.randbelow(10**9)}"
    created = int(time.time())

    def usage() -> dict:
        o = running.outcome
        return {"prompt_tokens": o.prompt_eval_count, "completion_tokens": o.eval_count,
                "total_tokens": o.prompt_eval_count + o.eval_count}

    def chunk(delta: dict, finish: str | None) -> dict:
        return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_ollama", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    if not stream:
        text = _collect(running)
        return jsonify({"id": ident, "object": "chat.completion", "created": created, "model": model,
                        "system_fingerprint": "fp_ollama",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": _finish_reason(running.outcome.done_reason)}],
                        "usage": usage()})

    def frame(obj) -> bytes:
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def body():
        yield frame(chunk({"role": "assistant", "content": ""}, None))
        for text in running.texts():
            yield frame(chunk({"role": "assistant", "content": text}, None))
        outcome = running.outcome
        if outcome.error:
            yield frame(openai_body(500, f"generation failed: {outcome.error}"))
            return
        if outcome.done_reason == "canceled":
            return
        yield frame(chunk({}, _finish_reason(outcome.done_reason)))
        if include_usage:
            last = chunk({}, None)
            last["choices"] = []
            last["usage"] = usage()
            yield frame(last)
        yield b"data: [DONE]\n\n"

    resp = Response(body(), mimetype="text/event-stream", headers=SSE_HEADERS)
    resp.call_on_close(running.finish)
    return resp
