"""What each worker knows of each node from probing it: up or down, what it lists, what it has loaded.

Per node a background loop (a greenlet under gevent) asks `/api/ps` every PS_SECONDS, `/api/version` every
VERSION_SECONDS and `/api/tags` every TAGS_SECONDS (and soon after a node answered 404 for a model). A node is
`down` after DOWN_AFTER consecutive failures, probes or requests alike (refused, timed out, 5xx, and Ollama's
instant 503 "server busy"), and `up` again after one successful probe (the half-open trial). No request ever
waits on a probe: requests read the latest answers.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

from ..proxy.upstream import UpstreamClient, UpstreamError
from ..routing import NodeConfig, normalize_model_name

log = logging.getLogger(__name__)
PS_SECONDS = 1.0
VERSION_SECONDS = 2.0
TAGS_SECONDS = 15.0
TAGS_AFTER_404_SECONDS = 0.5
PROBE_TIMEOUT = 1.5
DOWN_AFTER = 3
GB = 1e9


@dataclass
class NodeView:
    """The latest answers of one node (replaced field by field by its probe loop; read by requests)."""

    config: NodeConfig
    state: str = "unknown"  # unknown (not probed yet) | up | down
    failures: int = 0
    last_error: str | None = None
    probe_ms: float | None = None
    version: str | None = None
    listed: dict = field(default_factory=dict)  # normalised name -> size in GB (from /api/tags)
    listed_names: tuple = ()  # names as the node spells them
    tags_at: float = 0.0
    loaded: dict = field(default_factory=dict)  # normalised name -> VRAM GB (from /api/ps)
    loaded_entries: tuple = ()  # ({"name", "size_vram"}, ...) for the dashboard
    ps_at: float = -1.0  # monotonic time the last /api/ps was *asked* (sends after it are not in it yet)
    tags_due: float = 0.0

    @property
    def up(self) -> bool:
        return self.state != "down"

    def succeeded(self) -> None:
        if self.state != "up":
            log.info("Ollama node %s (%s:%s) is up", self.config.name, self.config.host, self.config.port)
        self.state, self.failures = "up", 0

    def failed(self, why: str) -> None:
        self.failures += 1
        self.last_error = why
        if self.failures >= DOWN_AFTER and self.state != "down":
            log.warning("Ollama node %s is down after %d failures: %s", self.config.name, self.failures, why)
            self.state = "down"


def _models(body) -> list[dict]:
    models = body.get("models") if isinstance(body, dict) else None
    return [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []


def _name(entry: dict) -> str:
    return str(entry.get("model") or entry.get("name") or "")


class NodeProber:
    """The probe loop of one node in one worker."""

    def __init__(self, view: NodeView, client: UpstreamClient, on_loaded=None):
        self.view = view
        self.client = client
        self.on_loaded = on_loaded  # callback(view, model_key, size_gb) for each model seen in /api/ps
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"probe-{self.view.config.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _get(self, path: str):
        config = self.view.config
        started = time.perf_counter()
        response = self.client.request("GET", config.host, config.port, path, [("Accept", "application/json")],
                                       read_timeout=PROBE_TIMEOUT, connect_timeout=PROBE_TIMEOUT)
        raw = response.read()
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise UpstreamError("status", f"HTTP {response.status} on {path}")
        try:
            return json.loads(raw), elapsed
        except ValueError:
            raise UpstreamError("protocol", f"{path} did not answer JSON") from None

    def probe_once(self, now: float, next_at: dict) -> None:
        """One round: whatever is due (also called directly by tests)."""
        view = self.view
        try:
            if now >= next_at.get("ps", 0.0):
                next_at["ps"] = now + PS_SECONDS
                asked = time.monotonic()
                body, elapsed = self._get("/api/ps")
                self._take_ps(body, asked)
                view.probe_ms = round(elapsed, 2)
            if now >= next_at.get("version", 0.0):
                next_at["version"] = now + VERSION_SECONDS
                body, elapsed = self._get("/api/version")
                view.version = body.get("version") if isinstance(body, dict) else None
                view.probe_ms = round(elapsed, 2)
            if now >= next_at.get("tags", 0.0) or (view.tags_due and now >= view.tags_due):
                next_at["tags"] = now + TAGS_SECONDS
                view.tags_due = 0.0
                body, _ = self._get("/api/tags")
                self._take_tags(body)
            view.succeeded()
        except UpstreamError as exc:
            view.failed(exc.message)

    def _take_ps(self, body, asked: float) -> None:
        loaded, entries = {}, []
        for entry in _models(body):
            name = _name(entry)
            size = entry.get("size_vram") or entry.get("size") or 0
            size_gb = float(size) / GB if isinstance(size, (int, float)) else 0.0
            key = normalize_model_name(name)
            loaded[key] = size_gb
            entries.append({"name": name, "size_vram": int(size) if isinstance(size, (int, float)) else 0})
            if self.on_loaded is not None:
                self.on_loaded(self.view, key, size_gb)
        view = self.view
        view.loaded, view.loaded_entries, view.ps_at = loaded, tuple(entries), asked

    def _take_tags(self, body) -> None:
        listed, names = {}, []
        for entry in _models(body):
            name = _name(entry)
            size = entry.get("size") or 0
            listed[normalize_model_name(name)] = float(size) / GB if isinstance(size, (int, float)) else 0.0
            names.append(name)
        self.view.listed, self.view.listed_names, self.view.tags_at = listed, tuple(names), time.monotonic()

    def _run(self) -> None:
        next_at: dict = {}
        while not self._stop.is_set():
            now = time.monotonic()
            self.probe_once(now, next_at)
            wait = min(next_at.values()) - time.monotonic() if next_at else PS_SECONDS
            if self.view.tags_due:
                wait = min(wait, self.view.tags_due - time.monotonic())
            self._stop.wait(max(0.05, min(wait, PS_SECONDS)))
