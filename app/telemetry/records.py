"""What the proxy remembers about one request, filled in as it goes and finished when the response closes."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

_INT_FIELDS = {
    "eval_count": re.compile(rb'"eval_count"\s*:\s*(\d+)'),
    "eval_duration_ns": re.compile(rb'"eval_duration"\s*:\s*(\d+)'),
    "prompt_tokens": re.compile(rb'"prompt_eval_count"\s*:\s*(\d+)'),
}
_OPENAI_FIELDS = {
    "eval_count": re.compile(rb'"completion_tokens"\s*:\s*(\d+)'),
    "prompt_tokens": re.compile(rb'"prompt_tokens"\s*:\s*(\d+)'),
}


@dataclass(slots=True)
class RequestRecord:
    method: str
    endpoint: str
    client: str
    model: str | None = None
    backend: str = "ollama"
    status: int = 0
    started_wall: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    first_byte: float | None = None
    finished: float | None = None
    streamed: bool = False
    tail: bytes = b""  # the last bytes of the reply: where Ollama puts its final counters
    error: str | None = None
    prompt: str | None = None
    note: str | None = None
    prompt_tokens: int | None = None
    eval_count: int | None = None
    eval_duration_ns: int | None = None
    requested_model: str | None = None  # IntelliProxyLLM: the model asked for, when another one answered
    category: str | None = None  # IntelliProxyLLM: the request's category
    node: str | None = None  # the Ollama node that answered (its name), when the pool chose one
    route_reason: str | None = None  # why that node: loaded, fits, evicts idle, replica, retry after <node>: <why>
    write_failures: int = 0  # flushes in which this record failed to be written on its own

    @property
    def duration_ms(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return (end - self.started) * 1000.0

    @property
    def ttfb_ms(self) -> float | None:
        return None if self.first_byte is None else (self.first_byte - self.started) * 1000.0

    def extract_counters(self) -> None:
        """Read token counts from the tail (off the hot path: the flusher calls this, not the relay)."""
        if not self.tail:
            return
        patterns = _OPENAI_FIELDS if self.endpoint.startswith("/v1/") else _INT_FIELDS
        for name, pattern in patterns.items():
            matches = pattern.findall(self.tail)
            if matches:
                setattr(self, name, int(matches[-1]))
        self.tail = b""
