"""The OpenAI-compatible endpoints Ollama offers: /v1/chat/completions and /v1/models."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import catalog, prompts
from .errors import ApiError
from .streaming import openai_reply
from .views import engine, lookup, read_body, run

bp = Blueprint("airllm_openai", __name__, url_prefix="/v1")


def to_ollama(body: dict) -> dict:
    """Map OpenAI request fields onto Ollama options, as Ollama's /v1 layer does (temperature/top_p default 1.0)."""
    options = {"temperature": body.get("temperature", 1.0), "top_p": body.get("top_p", 1.0)}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        options["num_predict"] = max_tokens
    for key in ("seed", "stop", "frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
    fmt = body.get("response_format") or {}
    if not isinstance(fmt, dict):
        raise ApiError(400, "response_format must be an object")
    return {"options": options, "format": "json" if fmt.get("type") in ("json_object", "json_schema") else None,
            "tools": body.get("tools"), "keep_alive": body.get("keep_alive")}


@bp.post("/chat/completions")
def chat_completions():
    """Chat completion; streams SSE chunks ending in ``data: [DONE]`` only when ``stream`` is true."""
    body = read_body()
    model = body.get("model") or ""
    if not model:
        raise ApiError(400, "model is required")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "[] is too short - 'messages'")
    entry = lookup(model)
    native = to_ollama(body)
    prompts.reject_unsupported(native, model)
    converted = prompts.chat_messages(messages, model)
    running, _ = run(entry, native, model, "chat", lambda tok, lock: prompts.chat_prompt(tok, lock, converted, model))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    return openai_reply(running, model, body.get("stream") is True, include_usage)


@bp.get("/models")
def models():
    """The served models in OpenAI's list shape."""
    return jsonify({"object": "list", "data": [catalog.openai_model(e) for e in engine().registry]})


@bp.get("/models/<model>")
def model(model: str):
    """One model, or the 404 envelope."""
    return jsonify(catalog.openai_model(lookup(model)))
