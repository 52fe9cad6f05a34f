"""Pure routing logic: which backend serves a model. No Flask, no sockets, no database."""
from __future__ import annotations

from dataclasses import dataclass, field

OLLAMA = "ollama"
AIRLLM = "airllm"
OLLAMA_FALLBACK = "ollama-fallback"


def normalize_model_name(name: str) -> str:
    """`llama3` and `Llama3:latest` are the same model to Ollama: add the default tag, fold case."""
    name = name.strip().lower()
    last = name.rsplit("/", 1)[-1]
    if last and ":" not in last:
        name += ":latest"
    return name


@dataclass(frozen=True)
class Backend:
    name: str  # OLLAMA or AIRLLM
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class NodeConfig:
    """One Ollama server of the pool, as the operator configured it (the `ollama_nodes` row)."""

    id: int
    name: str
    host: str
    port: int
    enabled: bool = True
    vram_gb: float | None = None  # what the operator knows; None: learn what we can from /api/ps
    num_parallel: int = 1  # the node's OLLAMA_NUM_PARALLEL: concurrent requests per loaded model
    weight: float = 1.0  # a preference between otherwise equal nodes
    slot: int = 0  # this node's index in the workers' shared in-flight board (unique, 0..MAX_NODES-1)

    @property
    def backend(self) -> Backend:
        return Backend(OLLAMA, self.host, self.port)


@dataclass(frozen=True)
class RoutingTable:
    """An immutable snapshot of the routing config; workers swap whole snapshots, never mutate one."""

    ollama: Backend
    airllm: Backend
    airllm_enabled: bool = False
    use_airllm_default: bool = False
    model_flags: dict = field(default_factory=dict)  # normalised name -> bool
    version: int = 0
    nodes: tuple = ()  # NodeConfig of every Ollama node, ordered by id; `ollama` is the first one's address

    def uses_airllm(self, model: str | None) -> bool:
        """The seed's rule: the model's own flag, else the global default; never when the service is off."""
        if not self.airllm_enabled or not model:
            return False
        return self.model_flags.get(normalize_model_name(model), self.use_airllm_default)


def choose_backends(model: str | None, table: RoutingTable) -> list[tuple[Backend, str]]:
    """Backends to try in order, each with the label reported in X-IntelliProxy-Backend."""
    if table.uses_airllm(model):
        return [(table.airllm, AIRLLM), (table.ollama, OLLAMA_FALLBACK)]
    return [(table.ollama, OLLAMA)]


def get_model_endpoint(model: str | None, table: RoutingTable) -> str:
    """The seed's helper: the base URL a model's requests go to first."""
    return choose_backends(model, table)[0][0].url
