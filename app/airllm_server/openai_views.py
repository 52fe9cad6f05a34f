"""The OpenAI-compatible endpoints Ollama offers: /v1/chat/completions, /v1/completions and /v1/models."""

from __future__ import annotations

from flask import Blueprint, jsonify

from . import catalog, prompts
from .errors import ApiError
from .streaming import openai_reply
from .views import engine, heartbeat_s, lookup, read_body, run

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


def include_usage(body: dict) -> bool:
    """``stream_options.include_usage``, checked before the request takes a place."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ApiError(400, "stream_options must be an object")
    if body.get("stream") is not True:
        raise ApiError(400, "stream_options is only allowed when stream is true")
    return bool(options.get("include_usage"))


def model_name(body: dict) -> str:
    """The requested model, a 400 when missing."""
    model = body.get("model") or ""
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required")
    return model


@bp.post("/chat/completions")
def chat_completions():
    """Chat completion; streams SSE chunks ending in ``data: [DONE]`` only when ``stream`` is true."""
    body = read_body()
    model = model_name(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "[] is too short - 'messages'")
    usage = include_usage(body)
    entry = lookup(model)
    native = to_ollama(body)
    prompts.reject_unsupported(native, model)
    converted = prompts.chat_messages(messages, model)
    handle, _ = run(entry, native, model, "chat", lambda tok, lock: prompts.chat_prompt(tok, lock, converted, model))
    with handle:
        return openai_reply(handle, model, body.get("stream") is True, usage, heartbeat_s())


@bp.post("/completions")
def completions():
    """Text completion (the prompt goes through the chat template, as Ollama's /v1/completions does)."""
    body = read_body()
    model = model_name(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise ApiError(400, "prompt must be a non-empty string")
    usage = include_usage(body)
    entry = lookup(model)
    native = dict(to_ollama(body), prompt=prompt, suffix=body.get("suffix"))
    prompts.reject_unsupported(native, model)
    handle, _ = run(entry, native, model, "generate",
                    lambda tok, lock: prompts.generate_prompt(tok, lock, native, model))
    with handle:
        return openai_reply(handle, model, body.get("stream") is True, usage, heartbeat_s(), completion=True)


@bp.post("/embeddings")
def embeddings():
    """Not a route 404 (which reads like "model not found"): a clear 501 in OpenAI's envelope."""
    raise ApiError(501, "/v1/embeddings is not supported by the AirLLM backend: it serves text generation only "
                        "(/v1/chat/completions, /v1/completions)")


@bp.get("/models")
def models():
    """The served models in OpenAI's list shape."""
    return jsonify({"object": "list", "data": [catalog.openai_model(e) for e in engine().registry]})


@bp.get("/models/<model>")
def model(model: str):
    """One model, or the 404 envelope."""
    return jsonify(catalog.openai_model(lookup(model)))
