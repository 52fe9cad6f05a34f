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


# -- the Ollama pool: which node serves a request -----------------------------------------------------------------
#
# The rule below is a pure function of a snapshot (NodeState per node, ModelDemand for the model). The proxy
# builds the snapshot from its probes and the workers' shared in-flight board, and only carries out the Placement.

SEND, WAIT = "send", "wait"
# A model whose copies are all busy gets a second copy only when at least this many requests wait for it in the
# proxy *and* loading a copy is expected to be quicker than waiting for a slot (see `place`).
REPLICATE_AFTER_WAITING = 2
LOADED, FITS, EVICTS_IDLE, REPLICA = "loaded", "fits", "evicts idle", "replica"


@dataclass(frozen=True, slots=True)
class IdleModel:
    """A model resident on a node with nothing in flight: what Ollama evicts first (least recently used first)."""

    key: str
    size_gb: float
    last_used: float  # monotonic seconds
    rate: float  # recent requests per second for it


@dataclass(frozen=True, slots=True)
class NodeState:
    """One node as the rule sees it, for one model."""

    config: NodeConfig
    up: bool
    lists_model: bool  # the model is in the node's /api/tags
    resident: bool  # loaded there (/api/ps) or being loaded by a request the proxy just sent
    inflight_model: int  # requests for this model in flight there (all workers)
    inflight_total: int  # requests of any model in flight there
    free_gb: float | None = None  # vram_gb minus what is resident (None: the operator gave no vram_gb)
    idle: tuple = ()  # IdleModel, least recently used first
    loading: bool = False  # a load the proxy caused there has not answered yet (Ollama loads one at a time)

    @property
    def has_free_slot(self) -> bool:
        return self.inflight_model < self.config.num_parallel

    def busyness(self) -> float:
        """In-flight requests per unit of weight: the lower, the better the node for one more."""
        return self.inflight_total / self.config.weight


@dataclass(frozen=True, slots=True)
class ModelDemand:
    """What the proxy knows of the requested model."""

    key: str  # normalised name
    size_gb: float | None  # expected VRAM use (from /api/ps once seen loaded, else /api/tags' size)
    waiting: int = 0  # requests for it waiting in the proxy's line (all workers), this one not included
    service_s: float | None = None  # recent mean duration of its requests (None: not measured yet)
    load_s_per_gb: float = 0.5  # how fast this fleet has loaded models so far
    rate: float = 0.0  # recent requests per second for it


@dataclass(frozen=True, slots=True)
class Placement:
    """SEND to `candidates` in order (the first, then failover), or WAIT in the proxy's line for a free slot."""

    action: str
    candidates: tuple = ()  # ((NodeConfig, reason), ...)


@dataclass(frozen=True, slots=True)
class _Copy:
    """How a node would take a copy of a model it does not hold."""

    node: NodeState
    kind: str | None  # FITS, EVICTS_IDLE, or None (only by evicting busy models, or vram_gb unknown)
    leftover_gb: float = 0.0  # free VRAM after the load (FITS)
    evicted_rate: float = 0.0  # requests per second of what it would evict (EVICTS_IDLE)
    evicted: tuple = ()  # the IdleModels it would evict

    @property
    def reason(self) -> str:
        if self.kind is not None:
            return self.kind
        return "least busy" if self.node.free_gb is None else "evicts busy"

    def rank(self):
        """Fits before evicting idle models before the unknown. Fitting nodes: the tightest fit first (keeps large
        holes for large models, so each node settles on a set that fits its VRAM). Evicting nodes: the one whose
        evicted models are asked for least. Then a node not busy loading, weight and load."""
        order = {FITS: 0, EVICTS_IDLE: 1, None: 2}[self.kind]
        fit = self.leftover_gb if self.kind == FITS else self.evicted_rate if self.kind == EVICTS_IDLE else 0.0
        node = self.node
        return (order, round(fit, 3), node.loading, node.busyness(), -node.config.weight, node.config.id)


def _copy(node: NodeState, size_gb: float | None) -> _Copy:
    if node.free_gb is None or size_gb is None:
        return _Copy(node, None)
    if size_gb <= node.free_gb:
        return _Copy(node, FITS, leftover_gb=node.free_gb - size_gb)
    free, rate = node.free_gb, 0.0
    for index, idle in enumerate(node.idle):  # Ollama evicts the least recently used idle models first
        free += idle.size_gb
        rate += idle.rate
        if size_gb <= free:
            return _Copy(node, EVICTS_IDLE, evicted_rate=rate, evicted=node.idle[:index + 1])
    return _Copy(node, None)


def place(demand: ModelDemand, nodes: list[NodeState] | tuple) -> Placement:
    """Choose the node for a request for `demand.key` (see README, "Several Ollama nodes", for the rule in words)."""
    enabled = [n for n in nodes if n.config.enabled]
    usable = [n for n in enabled if n.up]
    if not usable:  # probes may be stale: try every enabled node, the relay reports what each said
        ranked = sorted(enabled, key=lambda n: (n.busyness(), -n.config.weight, n.config.id))
        return Placement(SEND, tuple((n.config, "no node is up") for n in ranked))
    listing = [n for n in usable if n.lists_model]
    pool = listing or usable  # nobody lists it: any node, so Ollama's own 404 (or pull) reaches the client

    loaded = sorted((n for n in pool if n.resident),
                    key=lambda n: (not n.has_free_slot, n.inflight_model / n.config.num_parallel,
                                   n.busyness(), -n.config.weight, n.config.id))
    copies = sorted((_copy(n, demand.size_gb) for n in pool if not n.resident), key=_Copy.rank)

    def plan(first: NodeState, reason: str) -> Placement:
        rest = [(n, LOADED) for n in loaded if n is not first]
        rest += [(c.node, c.reason) for c in copies if c.node is not first]
        return Placement(SEND, ((first.config, reason),) + tuple((n.config, why) for n, why in rest))

    if loaded and loaded[0].has_free_slot:
        return plan(loaded[0], LOADED)
    if not loaded:
        return plan(copies[0].node, copies[0].reason)
    if len(enabled) == 1:
        return plan(loaded[0], LOADED)  # one node: Ollama's own queue, exactly as without a pool
    replica = _replica(demand, loaded, copies)
    if replica is not None:
        return plan(replica, REPLICA)
    return Placement(WAIT)


def _replica(demand: ModelDemand, loaded: list[NodeState], copies: list[_Copy]) -> NodeState | None:
    """Every copy is at capacity: a node for another copy when that saves more waiting than it costs.

    Waiting: the line drains through the loaded copies' slots, `service_s` per request. A copy helps only after it
    has loaded, so it saves each waiting request at most (wait - load). Evicting idle models costs their reload when
    next asked for, plus the requests that arrive for them meanwhile. A copy that fits in free VRAM costs nothing."""
    if demand.waiting < REPLICATE_AFTER_WAITING or demand.service_s is None or demand.size_gb is None:
        return None
    slots = sum(n.config.num_parallel for n in loaded)
    wait_s = (demand.waiting + 1) * demand.service_s / max(slots, 1)
    speed = demand.load_s_per_gb
    for copy in copies:
        if copy.kind not in (FITS, EVICTS_IDLE):
            continue
        load_s = demand.size_gb * speed * (2 if copy.node.loading else 1)  # it finishes its current load first
        saved = demand.waiting * max(0.0, wait_s - load_s) / 2
        cost = sum(m.size_gb * speed * (1 + m.rate * m.size_gb * speed) for m in copy.evicted)
        if saved > cost and load_s < wait_s:
            return copy.node
    return None
