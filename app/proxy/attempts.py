"""What the relay tries, in order: attempts (a backend and a model) and a resolver's own local answers."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..routing import AIRLLM, Backend, choose_backends

NODE_HEADER = "X-IntelliProxy-Node"  # which node answered (on replies); which node to use (on pull requests)


@dataclass
class Attempt:
    """One backend (and model) to try; `fallback_*` say which failures move on to the next attempt.

    An Ollama attempt goes to the pool: the node is chosen when the attempt is made (app.routing.place), and a
    node that fails before its first byte hands over to the next node before the next attempt is considered.
    """

    backend: Backend
    label: str
    model: str | None
    body: bytes | object | None
    fallback_on_connect: bool = False
    fallback_on_not_found: bool = False
    fallback_on_5xx: bool = False
    first_byte_timeout: float | None = None
    headers: list = field(default_factory=list)

    @property
    def to_pool(self) -> bool:
        return self.backend.name != AIRLLM


@dataclass
class LocalReply:
    """A resolver's own answer (e.g. `/api/show` for the virtual model, or why no model can serve a request)."""

    status: int
    payload: dict | None = None  # sent as JSON when status < 400
    error: str | None = None  # sent in the API's error shape otherwise


def model_attempts(model: str | None, body, table) -> list[Attempt]:
    """The seed's per-model routing: the AirLLM server first when flagged, the Ollama pool as its fallback."""
    return [Attempt(backend, label, model, body, fallback_on_connect=label == AIRLLM,
                    fallback_on_not_found=label == AIRLLM)
            for backend, label in choose_backends(model, table)]
