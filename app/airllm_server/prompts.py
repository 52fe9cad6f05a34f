"""Request bodies to prompt token ids: the tokenizer's chat template, ``system``, ``raw`` and ``context``."""

from __future__ import annotations

import threading

from .errors import ApiError

ROLES = ("system", "user", "assistant", "tool")


def reject_unsupported(body: dict, model: str) -> None:
    """Clear 400s for features a layer-streamed text model here cannot honour (instead of ignoring them)."""
    fmt = body.get("format")
    if fmt not in (None, ""):
        raise ApiError(400, f"format {fmt!r} is not supported by the AirLLM server (model '{model}'): "
                            "it has no grammar-constrained sampler; ask for JSON in the prompt instead")
    if body.get("think") not in (None, False, ""):
        raise ApiError(400, f'"{model}" does not support thinking')
    if body.get("tools"):
        raise ApiError(400, f"{model} does not support tools")
    if body.get("images"):
        raise ApiError(400, f'"{model}" does not support images')
    if body.get("suffix"):
        raise ApiError(400, f"{model} does not support insert")
    logprobs = body.get("top_logprobs")
    if logprobs is not None and (not isinstance(logprobs, int) or not 0 <= logprobs <= 20):
        raise ApiError(400, "top_logprobs must be between 0 and 20")


def _encode(tokenizer, lock: threading.Lock, text: str, special: bool) -> list[int]:
    with lock:
        return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _render(tokenizer, lock: threading.Lock, messages: list[dict], model: str) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ApiError(400, f'"{model}" does not support chat: its tokenizer has no chat template '
                            "(use /api/generate, or raw: true)")
    try:
        with lock:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # noqa: BLE001 - jinja raises TemplateError or whatever the template raises
        raise ApiError(400, f"chat template error: {exc}") from None


def generate_prompt(tokenizer, lock: threading.Lock, body: dict, model: str) -> list[int]:
    """/api/generate: the prompt through the chat template (with ``system``), or untouched with ``raw``."""
    prompt = body.get("prompt") or ""
    system = body.get("system") or ""
    context = body.get("context") or []
    if not isinstance(prompt, str) or not isinstance(system, str):
        raise ApiError(400, "prompt and system must be strings")
    if not isinstance(context, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in context):
        raise ApiError(400, "context must be a list of token ids")
    if body.get("raw"):
        if body.get("template") or system or context:
            raise ApiError(400, "raw mode does not support template, system, or context")
        return _encode(tokenizer, lock, prompt, special=True)
    if body.get("template"):
        raise ApiError(400, "custom Go templates are not supported by the AirLLM server; "
                            "format the prompt yourself and send raw: true")
    vocab = len(tokenizer)
    if any(t < 0 or t >= vocab for t in context):
        raise ApiError(400, "context holds token ids outside this model's vocabulary")
    if getattr(tokenizer, "chat_template", None):
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids = _encode(tokenizer, lock, _render(tokenizer, lock, messages, model), special=False)
    else:
        ids = _encode(tokenizer, lock, f"{system}\n\n{prompt}" if system else prompt, special=True)
    return list(context) + ids


def _content_text(content, model: str) -> str:
    """A message's content: a string, or OpenAI-style parts of which only text is accepted."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                raise ApiError(400, f'"{model}" does not support images')
            else:
                raise ApiError(400, "invalid message content part")
        return "".join(texts)
    raise ApiError(400, "message content must be a string")


def chat_messages(messages, model: str) -> list[dict]:
    """Check chat messages and keep what a chat template understands."""
    if not isinstance(messages, list):
        raise ApiError(400, "messages must be a list")
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise ApiError(400, "each message must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(400, f"invalid message role {role!r}")
        if message.get("images"):
            raise ApiError(400, f'"{model}" does not support images')
        if message.get("tool_calls"):
            raise ApiError(400, f"{model} does not support tools")
        out.append({"role": role, "content": _content_text(message.get("content"), model)})
    return out


def chat_prompt(tokenizer, lock: threading.Lock, messages: list[dict], model: str) -> list[int]:
    """/api/chat and /v1/chat/completions: the conversation through the tokenizer's chat template."""
    return _encode(tokenizer, lock, _render(tokenizer, lock, messages, model), special=False)


def check_context(prompt_ids: list[int], num_ctx: int) -> None:
    """A prompt that leaves no room to generate is a clear 400, not a crash deep inside the model."""
    if len(prompt_ids) >= num_ctx:
        raise ApiError(400, f"prompt is too long: {len(prompt_ids)} tokens, but the context length is {num_ctx} "
                            "tokens (raise num_ctx up to the model's limit, or shorten the prompt)")
