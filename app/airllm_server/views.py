"""Ollama's native API, thin: parse, look up, hand to the engine, reply."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, jsonify, request

from . import catalog, prompts
from .disconnect import client_gone_probe
from .admission import Handle
from .engine import Engine
from .errors import ApiError
from .options import parse_keep_alive, parse_options
from .registry import ModelEntry
from .streaming import native_reply, now_rfc3339

bp = Blueprint("airllm", __name__)


def engine() -> Engine:
    """The app's engine."""
    return current_app.extensions["airllm_engine"]


def read_body() -> dict:
    """The JSON body, with Ollama's 400 messages for an empty or malformed one."""
    raw = request.get_data()
    if not raw.strip():
        raise ApiError(400, "missing request body")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def lookup(name: str, shown_name: str | None = None) -> ModelEntry:
    """The registry entry, a 500 naming the cause for a broken one, or Ollama's 404."""
    registry = engine().registry
    entry = registry.get(name)
    if entry is not None:
        return entry
    broken = registry.broken_entry(name) if name else None
    if broken is not None:
        raise ApiError(500, f"model '{broken.name}' is unavailable: {broken.error}")
    raise ApiError(404, f"model '{shown_name if shown_name is not None else name}' not found")


@bp.route("/", methods=["GET", "HEAD"])
def root():
    """Liveness, as Ollama answers it."""
    return Response("Ollama is running", mimetype="text/plain")


@bp.route("/api/version", methods=["GET", "HEAD"])
def version():
    """The Ollama API version this server speaks."""
    return jsonify({"version": current_app.config["AIRLLM_SETTINGS"].ollama_version})


@bp.route("/api/tags", methods=["GET", "HEAD"])
def tags():
    """The configured (valid) models with real sizes and details."""
    return jsonify({"models": [catalog.tag(e) for e in engine().registry]})


@bp.post("/api/show")
def show():
    """Details, model_info and capabilities of one model."""
    body = read_body()
    name = body.get("model") or body.get("name")
    if not name:
        raise ApiError(400, "model is required")
    from .registry import normalize_name

    entry = lookup(name, normalize_name(name))
    return jsonify(catalog.show(entry, current_app.config["AIRLLM_SETTINGS"].num_ctx))


@bp.get("/api/ps")
def ps():
    """The resident model, its expiry and memory."""
    eng = engine()
    resident = eng.resident
    if resident is None:
        return jsonify({"models": []})
    vram = eng.vram()
    expires = eng.expires_at()
    row = catalog.tag(resident.entry)
    row.pop("modified_at")
    row.pop("capabilities")
    row.update(size_vram=vram["peak_allocated_bytes"] if vram else 0,
               expires_at=expires.isoformat().replace("+00:00", "Z") if expires else None,
               context_length=resident.context_length or resident.entry.max_context or 0)
    return jsonify({"models": [row]})


@bp.get("/health")
def health():
    """Device, resident model, queue (with positions), VRAM, broken registry entries."""
    return jsonify(engine().health())


def _load_reply(entry: ModelEntry, model: str, body: dict, kind: str) -> Response:
    """An empty prompt or message list: load the model (keep_alive 0: unload it) and answer with one object."""
    settings = current_app.config["AIRLLM_SETTINGS"]
    keep_alive = parse_keep_alive(body.get("keep_alive"), settings.keep_alive)
    started = time.perf_counter()
    load_ns = engine().load_only(entry, keep_alive, client_gone_probe(request.environ))
    reason = "unload" if keep_alive <= 0 else "load"
    reply = {"model": model, "created_at": now_rfc3339(), "done": True, "done_reason": reason}
    if kind == "chat":
        reply["message"] = {"role": "assistant", "content": ""}
    else:
        reply["response"] = ""
    if reason == "load":
        reply.update(total_duration=int((time.perf_counter() - started) * 1e9), load_duration=load_ns)
    return jsonify(reply)


def heartbeat_s() -> float:
    """AIRLLM_HEARTBEAT_S."""
    return current_app.config["AIRLLM_SETTINGS"].heartbeat_s


def run(entry: ModelEntry, body: dict, model: str, kind: str, build) -> tuple[Handle, list[int]]:
    """Shared by every generating endpoint: options, prompt and context are checked, then the request is queued.

    Everything that can reject the request happens before it takes a place; the handle is a context manager for
    the caller, so an error while building the reply gives the place back.
    """
    t0 = time.perf_counter()
    settings = current_app.config["AIRLLM_SETTINGS"]
    keep_alive = parse_keep_alive(body.get("keep_alive"), settings.keep_alive)
    sampling = parse_options(body.get("options"), settings.num_ctx, entry.max_context)
    tokenizer, lock = engine().tokenizer(entry)
    prompt_ids = build(tokenizer, lock)
    prompts.check_context(prompt_ids, sampling.num_ctx)
    handle = engine().admit(entry, prompt_ids, sampling, keep_alive, client_gone_probe(request.environ), kind, t0)
    return handle, prompt_ids


@bp.post("/api/generate")
def generate():
    """Text completion, streamed as NDJSON unless ``stream`` is false."""
    body = read_body()
    model = body.get("model") or ""
    entry = lookup(model)
    prompts.reject_unsupported(body, model)
    if not body.get("prompt"):
        return _load_reply(entry, model, body, "generate")
    handle, prompt_ids = run(entry, body, model, "generate",
                             lambda tok, lock: prompts.generate_prompt(tok, lock, body, model))
    with handle:
        return native_reply(handle, model, "generate", body.get("stream", True) is not False,
                            None if body.get("raw") else prompt_ids, heartbeat_s())


@bp.post("/api/chat")
def chat():
    """Chat through the tokenizer's chat template, streamed as NDJSON unless ``stream`` is false."""
    body = read_body()
    model = body.get("model") or ""
    if not model:
        raise ApiError(400, "model is required")
    entry = lookup(model)
    prompts.reject_unsupported(body, model)
    messages = prompts.chat_messages(body.get("messages") or [], model)
    if not messages:
        return _load_reply(entry, model, body, "chat")
    handle, _ = run(entry, body, model, "chat", lambda tok, lock: prompts.chat_prompt(tok, lock, messages, model))
    with handle:
        return native_reply(handle, model, "chat", body.get("stream", True) is not False, None, heartbeat_s())


@bp.get("/api/queue")
def queue():
    """The running batch (tokens so far, s/token), the sweep's progress and the waiting line with ETAs."""
    return jsonify(engine().queue_report())


@bp.post("/api/<any(embed, embeddings):endpoint>")
def embeddings(endpoint: str):
    """Not a route 404 (which reads like "model not found"): a clear 501 in Ollama's shape."""
    raise ApiError(501, f"/api/{endpoint} is not supported by the AirLLM backend: it serves text generation only "
                        "(/api/generate, /api/chat, /v1/chat/completions, /v1/completions)")
