"""Ollama request options and keep_alive, parsed and checked (pure code: no Flask, no torch)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .errors import ApiError

# Ollama's defaults where a request gives none.
DEFAULTS = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "min_p": 0.0, "repeat_penalty": 1.1,
            "repeat_last_n": 64, "presence_penalty": 0.0, "frequency_penalty": 0.0, "num_predict": -1}
NUMBER_OPTIONS = ("temperature", "top_p", "min_p", "repeat_penalty", "presence_penalty", "frequency_penalty")
INT_OPTIONS = ("top_k", "repeat_last_n", "num_predict", "num_ctx", "seed")
GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass
class Sampling:
    """Decoding settings for one request."""

    temperature: float = DEFAULTS["temperature"]
    top_k: int = DEFAULTS["top_k"]
    top_p: float = DEFAULTS["top_p"]
    min_p: float = DEFAULTS["min_p"]
    repeat_penalty: float = DEFAULTS["repeat_penalty"]
    repeat_last_n: int = DEFAULTS["repeat_last_n"]
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    num_predict: int = -1
    num_ctx: int = 4096
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    explicit: set[str] = field(default_factory=set)   # option names the request set itself

    @property
    def greedy(self) -> bool:
        """temperature 0 means greedy (argmax) decoding, as in Ollama."""
        return self.temperature <= 0


def parse_options(options, default_ctx: int, max_ctx: int | None) -> Sampling:
    """Turn a request's ``options`` map into Sampling, with Ollama's defaults; 400 on wrong types."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ApiError(400, "options must be an object")
    sampling = Sampling(num_ctx=default_ctx)
    for key in NUMBER_OPTIONS:
        if options.get(key) is not None:
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ApiError(400, f"option {key} must be a number")
            setattr(sampling, key, float(value))
            sampling.explicit.add(key)
    for key in INT_OPTIONS:
        if options.get(key) is not None:
            value = options[key]
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ApiError(400, f"option {key} must be an integer")
            setattr(sampling, key, value)
            sampling.explicit.add(key)
    stop = options.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ApiError(400, "option stop must be a string or a list of strings")
        sampling.stop = [s for s in stop if s]
    if sampling.num_ctx < 1:
        raise ApiError(400, "option num_ctx must be positive")
    if max_ctx:
        sampling.num_ctx = min(sampling.num_ctx, max_ctx)
    if sampling.top_p <= 0 or sampling.top_p > 1:
        sampling.top_p = 1.0
    if sampling.repeat_penalty <= 0:
        raise ApiError(400, "option repeat_penalty must be positive")
    return sampling


def parse_keep_alive(value, default: str) -> float:
    """Seconds to keep the model loaded after a request: a number, or a Go duration ("5m", "1h30m").

    Negative means forever (returned as math.inf), 0 means unload now. A malformed string is a 400.
    """
    if value is None or value == "":
        value = default
    if isinstance(value, bool):
        raise ApiError(400, f"invalid keep_alive: {value!r}")
    if isinstance(value, (int, float)):
        return math.inf if value < 0 else float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return math.inf if number < 0 else number
        negative = text.startswith("-")
        body = text.lstrip("+-")
        parts = GO_DURATION.findall(body)
        if body and "".join(n + u for n, u in parts) == body:
            seconds = sum(float(n) * UNITS[u] for n, u in parts)
            return math.inf if negative and seconds > 0 else seconds
        raise ApiError(400, f'time: invalid duration "{value}"')
    raise ApiError(400, f"invalid keep_alive: {value!r}")
