"""The pool of Ollama nodes as one worker runs it: views kept fresh by probes, the shared in-flight board, the
estimates the rule needs, and the snapshot handed to `app.routing.place` for each request."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from ..routing import LOADED, SEND, IdleModel, ModelDemand, NodeConfig, NodeState, Placement, place
from . import board as board_module
from .line import WaitingLine
from .probes import TAGS_AFTER_404_SECONDS, NodeProber, NodeView

log = logging.getLogger(__name__)
TOTAL = 0  # board model slot 0 counts every request of a node (model slots start at 1)
UNSEEN_SIZE_FACTOR = 1.1  # VRAM use of a model never seen loaded: its file size plus room for the KV cache
EWMA = 0.2
MIN_SERVICE_SAMPLES = 3  # a model's request duration counts for replication only once measured this often
RATE_WINDOW_S = 20.0


@dataclass
class Ticket:
    """One request sent to one node: holds its slot on the board until released."""

    node: NodeConfig
    key: str
    model_slot: int
    cold: bool  # the model was not resident there: this request pays for the load
    sent: float
    first_byte: float | None = None
    released: bool = False


class Estimates:
    """What this worker has learned about models and the fleet's load speed (approximations, per worker)."""

    def __init__(self):
        self.sizes: dict[str, float] = {}  # normalised name -> VRAM GB, from /api/ps
        self.size_ratio = UNSEEN_SIZE_FACTOR  # VRAM use / file size, learned from the models seen loaded
        self.service: dict[str, tuple[float, int]] = {}  # normalised name -> (mean request seconds, samples)
        self.load_s_per_gb = 0.5
        self._rates: dict[str, tuple[float, float, float]] = {}  # name -> (decayed count, at, first seen)

    def size_of(self, key: str, views) -> float | None:
        if key in self.sizes:
            return self.sizes[key]
        listed = [v.listed[key] for v in views if key in v.listed and v.listed[key]]
        return max(listed) * self.size_ratio if listed else None

    def seen_loaded(self, key: str, size_gb: float, file_gb: float | None) -> None:
        self.sizes[key] = size_gb
        if file_gb:
            self.size_ratio += EWMA * (size_gb / file_gb - self.size_ratio)

    def service_of(self, key: str) -> float | None:
        mean, samples = self.service.get(key, (0.0, 0))
        return mean if samples >= MIN_SERVICE_SAMPLES else None

    def observed_service(self, key: str, seconds: float) -> None:
        mean, samples = self.service.get(key, (seconds, 0))
        self.service[key] = (mean + EWMA * (seconds - mean) if samples else seconds, samples + 1)

    def observed_load(self, size_gb: float, seconds: float) -> None:
        if size_gb > 0.1:
            self.load_s_per_gb += EWMA * (seconds / size_gb - self.load_s_per_gb)

    def arrived(self, key: str, now: float) -> None:
        count, at, first = self._rates.get(key, (0.0, now, now))
        self._rates[key] = (count * math.exp((at - now) / RATE_WINDOW_S) + 1.0, now, first)

    def rate(self, key: str, now: float) -> float:
        """Requests per second over about the last RATE_WINDOW_S (this worker's share)."""
        count, at, first = self._rates.get(key, (0.0, now, now))
        return count * math.exp((at - now) / RATE_WINDOW_S) / min(RATE_WINDOW_S, max(1.0, now - first))


def pool_nodes(table) -> tuple:
    """The table's nodes; a table without any (built by hand, or before the pool existed) is its one target."""
    if table.nodes:
        return table.nodes
    ollama = table.ollama
    return (NodeConfig(id=1, name=f"{ollama.host}:{ollama.port}", host=ollama.host, port=ollama.port),)


class Pool:
    def __init__(self, settings: dict, client, board=None, watcher=None, probe: bool = True):
        self.client = client
        self.probe = probe  # False: no background probes (benchmarks and tests fill the views themselves)
        self.watcher = watcher  # when given, status() follows its table even if no request arrived
        self.board = board or board_module.shared()
        self.views: dict[int, NodeView] = {}
        self._probers: dict[int, NodeProber] = {}
        self._version = None
        self.estimates = Estimates()
        self.line = WaitingLine(self.board, settings.get("PROXY_MAX_QUEUE", 64),
                                settings.get("PROXY_QUEUE_TIMEOUT_S", 120.0))
        self.node_count = 0
        self._shapes: dict[int, tuple] = {}  # node id -> its lists with board slots (see _shape)
        self._single: NodeView | None = None

    # -- configuration -------------------------------------------------------------------------------------

    def sync(self, table) -> None:
        """Follow the config: new nodes get a view and a probe loop, removed ones are stopped (cheap when same)."""
        if table.version == self._version:
            return
        first_sync, self._version = self._version is None, table.version
        wanted = {n.id: n for n in pool_nodes(table)}
        for node_id in list(self.views):
            if node_id not in wanted:
                self._probers.pop(node_id).stop()
                del self.views[node_id]
        for node_id, config in wanted.items():
            view = self.views.get(node_id)
            if view is None:
                if not first_sync:  # a node added now may take a removed node's slot: forget what that one had
                    self.board.reset_node(config.slot)
                view = self.views[node_id] = NodeView(config)
                prober = self._probers[node_id] = NodeProber(view, self.client, self._seen_loaded)
                if self.probe:
                    prober.start()
            elif view.config != config:
                if (view.config.host, view.config.port) != (config.host, config.port):
                    view.state, view.failures, view.listed, view.loaded = "unknown", 0, {}, {}
                    view.tags_due = time.monotonic()
                view.config = config
        self.node_count = sum(1 for n in wanted.values() if n.enabled)
        enabled = [v for v in self.views.values() if v.config.enabled]
        self._single = enabled[0] if len(enabled) == 1 else None

    def stop(self) -> None:
        for prober in self._probers.values():
            prober.stop()

    def _seen_loaded(self, view: NodeView, key: str, size_gb: float) -> None:
        if size_gb > 0:
            self.estimates.seen_loaded(key, size_gb, view.listed.get(key))
        self.board.observe_present(self.board.model_slot(key), view.config.slot, True)

    # -- the snapshot and the rule -------------------------------------------------------------------------

    def node_states(self, key: str, model_slot: int) -> list[NodeState]:
        """The rule's snapshot for one model (the hot path of placement: kept to plain reads of the board)."""
        board, estimates = self.board, self.estimates
        now = time.monotonic()
        rows = board.live_rows()
        rates: dict[str, float] = {}
        states = []
        for view in self.views.values():
            config = view.config
            slot, vram, ps_at = config.slot, config.vram_gb, view.ps_at
            loaded_models, other_models = self._shape(view)
            inflight, sent, _ = board.state(model_slot, slot, rows)
            resident = key in view.loaded or inflight > 0 or 0 < sent and sent >= ps_at
            used, idle, loading = 0.0, [], False
            for other, other_slot, size in loaded_models:
                used += size
                if vram is not None and other != key:
                    running, other_sent, _ = board.state(other_slot, slot, rows)
                    if not running:
                        rate = rates.get(other)
                        if rate is None:
                            rate = rates[other] = estimates.rate(other, now)
                        idle.append(IdleModel(other, size, other_sent, rate))
            for other, other_slot in other_models:  # loads the proxy started that /api/ps does not show yet
                running, other_sent, other_head = board.state(other_slot, slot, rows)
                if other_sent <= 0:
                    continue
                unanswered = running > 0 and other_head < other_sent  # Ollama loads one model at a time
                loading = loading or unanswered
                if vram is not None and (unanswered or other_sent >= ps_at):
                    used += estimates.size_of(other, (view,)) or 0.0
            if idle:
                idle.sort(key=lambda m: m.last_used)
            states.append(NodeState(
                config=config, up=view.up, lists_model=key in view.listed or not view.tags_at,
                resident=resident, inflight_model=inflight, inflight_total=board.state(TOTAL, slot, rows)[0],
                free_gb=None if vram is None else vram - used, idle=tuple(idle), loading=loading))
        return states

    def _shape(self, view: NodeView) -> tuple[tuple, tuple]:
        """(loaded: ((name, board slot, GB), ...), listed but not loaded: ((name, board slot), ...)), kept until
        the probes replace the node's lists."""
        cached = self._shapes.get(view.config.id)
        if cached is not None and cached[0] is view.listed and cached[1] is view.loaded:
            return cached[2], cached[3]
        slot_of = self.board.model_slot
        loaded = tuple((name, slot_of(name), size) for name, size in view.loaded.items())
        others = tuple((name, slot_of(name)) for name in view.listed if name not in view.loaded)
        self._shapes[view.config.id] = (view.listed, view.loaded, loaded, others)
        return loaded, others

    def demand(self, key: str, model_slot: int, waiting_self: int = 0) -> ModelDemand:
        estimates = self.estimates
        return ModelDemand(key=key, size_gb=estimates.size_of(key, self.views.values()),
                           waiting=max(0, self.board.waiting(model_slot) - waiting_self),
                           service_s=estimates.service_of(key), load_s_per_gb=estimates.load_s_per_gb,
                           rate=estimates.rate(key, time.monotonic()))

    def placement(self, key: str, waiting_self: int = 0) -> Placement:
        model_slot = self.board.model_slot(key)
        if not waiting_self:
            self.estimates.arrived(key, time.monotonic())
        return place(self.demand(key, model_slot, waiting_self), self.node_states(key, model_slot))

    def claim(self, key: str, waiting_self: int = 0) -> tuple[Placement, Ticket | None]:
        """Place and take the chosen node's slot in one step, locked across workers: two workers deciding at the
        same moment must not both see the last free slot."""
        with self.board.locked():
            placement = self.placement(key, waiting_self)
            if placement.action != SEND:
                return placement, None
            node, reason = placement.candidates[0]
            return placement, self.acquire(node, key, cold=reason != LOADED)

    # -- carrying it out ----------------------------------------------------------------------------------

    def acquire(self, node: NodeConfig, key: str, cold: bool) -> Ticket:
        model_slot = self.board.model_slot(key)
        now = time.monotonic()
        self.board.add_inflight(model_slot, node.slot, 1)
        self.board.add_inflight(TOTAL, node.slot, 1)
        self.board.mark_sent(model_slot, node.slot, now)
        return Ticket(node, key, model_slot, cold, now)

    def answered(self, ticket: Ticket) -> None:
        """The node sent the response head: the model is loaded there now."""
        now = time.monotonic()
        ticket.first_byte = now
        self.board.mark_head(ticket.model_slot, ticket.node.slot, now)
        view = self.views.get(ticket.node.id)
        if view is not None:
            view.succeeded()
        if ticket.cold:
            size = self.estimates.size_of(ticket.key, self.views.values())
            if size:
                self.estimates.observed_load(size, now - ticket.sent)

    def release(self, ticket: Ticket, ok: bool) -> None:
        if ticket.released:
            return
        ticket.released = True
        self.board.add_inflight(ticket.model_slot, ticket.node.slot, -1)
        self.board.add_inflight(TOTAL, ticket.node.slot, -1)
        if ok and ticket.first_byte is not None:  # how long a slot is held, loads and Ollama's queue left out
            self.estimates.observed_service(ticket.key, time.monotonic() - ticket.first_byte)
        self.line.slot_freed(ticket.key)

    def node_failed(self, node: NodeConfig, why: str) -> None:
        view = self.views.get(node.id)
        if view is not None:
            view.failed(why)

    def model_missing(self, node: NodeConfig) -> None:
        """The node answered 404 for a model: re-read its list soon."""
        view = self.views.get(node.id)
        if view is not None:
            view.tags_due = time.monotonic() + TAGS_AFTER_404_SECONDS

    def single_node(self) -> NodeView | None:
        """The view of the only enabled node, when the pool has exactly one (the common case: no choice to make)."""
        return self._single

    def up_views(self) -> list[NodeView]:
        views = [v for v in self.views.values() if v.config.enabled]
        return [v for v in views if v.up] or views

    # -- what the dashboard and the API show ----------------------------------------------------------------

    def status(self) -> dict[int, dict]:
        if self.watcher is not None:
            self.sync(self.watcher.table)
        board = self.board
        out = {}
        for node_id, view in self.views.items():
            config = view.config
            state = "disabled" if not config.enabled else ("down" if view.state == "down" else
                                                            "up" if view.state == "up" else "unknown")
            out[node_id] = {
                "state": state, "probe_ms": view.probe_ms, "last_error": view.last_error,
                "version": view.version, "models": list(view.listed_names),
                "loaded": [dict(e) for e in view.loaded_entries],
                "in_flight": board.inflight(TOTAL, config.slot),
                "waiting": sum(board.waiting(board.model_slot(k)) for k in view.listed),
                "loads_observed": board.loads(config.slot),
            }
        return out
