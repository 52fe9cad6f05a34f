"""Each worker's picture of the installed models, kept current in the background.

Every CATALOG_POLL_SECONDS the refresher asks Ollama for `/api/tags` (what is installed), `/api/show` for models
it has not seen (or whose digest changed) and `/api/ps` (what is loaded); when the config version moves
(ConfigWatcher's listener) it reloads attributes, fallback chains and the timeout from the database. The
resolver reads `catalog.snapshot`, an immutable object swapped whole: no database or network on the hot path,
and the refresher's database calls run in a native thread (app.offload), never on the event loop.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field

from ..offload import run_blocking
from ..proxy.upstream import UpstreamClient, UpstreamError
from ..routing import normalize_model_name
from .attributes import ModelProfile, derive_profile, effective_profile, load_rows, profile_from_row, store_derived
from .fallbacks import DEFAULT_TIMEOUT, load_chains, load_timeout

log = logging.getLogger(__name__)
HEALTH_HALF_LIFE_S = 120.0


@dataclass(frozen=True)
class Snapshot:
    models: dict = field(default_factory=dict)  # normalised name -> ModelProfile (installed models)
    loaded: frozenset = frozenset()  # normalised names in /api/ps
    chains: dict = field(default_factory=dict)  # normalised name -> tuple of fallbacks
    timeout: float = DEFAULT_TIMEOUT
    stored: dict = field(default_factory=dict)  # normalised name -> ModelProfile from the database
    ollama_error: str | None = None
    refreshed_at: float | None = None  # wall time of the last successful model list
    airllm_models: frozenset = frozenset()  # normalised names only the AirLLM server lists


class HealthTracker:
    """Recent failures per model, decaying with a half-life: the selection's health term (per worker)."""

    def __init__(self, half_life: float = HEALTH_HALF_LIFE_S):
        self.half_life = half_life
        self._failures: dict[str, list[float]] = {}
        self.last_reason: dict[str, str] = {}

    def failed(self, model: str | None, reason: str = "", now: float | None = None) -> None:
        if not model:
            return
        key = normalize_model_name(model)
        times = self._failures.setdefault(key, [])
        times.append(time.monotonic() if now is None else now)
        del times[:-10]
        self.last_reason[key] = reason

    def succeeded(self, model: str | None) -> None:
        if model:
            key = normalize_model_name(model)
            self._failures.pop(key, None)
            self.last_reason.pop(key, None)

    def penalty(self, key: str, now: float | None = None) -> float:
        """0 (healthy) .. 1 (failing right now)."""
        times = self._failures.get(key)
        if not times:
            return 0.0
        now = time.monotonic() if now is None else now
        weight = sum(math.pow(0.5, (now - t) / self.half_life) for t in times)
        return min(1.0, weight * 0.5)

    def on_record(self, record) -> None:
        """Recorder listener: the final outcome of each request (runs in the flusher, off the hot path)."""
        if record.status >= 500 or (record.error and record.error != "client disconnected" and record.status != 499):
            self.failed(record.model, record.error or f"HTTP {record.status}")
        elif 200 <= record.status < 300 and not record.error:
            self.succeeded(record.model)


class Catalog:
    def __init__(self, session_factory, watcher, poll_seconds: float = 5.0, client: UpstreamClient | None = None):
        self._factory = session_factory
        self.watcher = watcher
        self.poll_seconds = poll_seconds
        self.client = client or UpstreamClient(connect_timeout=2.0, read_timeout=10.0)
        self.health = HealthTracker()
        self.snapshot = Snapshot()
        self._derived: dict[str, tuple[str, ModelProfile]] = {}  # key -> (digest, profile)
        self._listed: list[str] = []  # names as Ollama lists them
        self._airllm: dict[str, ModelProfile] = {}
        self._loaded: frozenset = frozenset()
        self._stored: dict[str, ModelProfile] = {}
        self._chains: dict[str, tuple] = {}
        self._timeout = DEFAULT_TIMEOUT
        self._error: str | None = "not refreshed yet"
        self._refreshed_at: float | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.reload_config()

    # -- database side ------------------------------------------------------------------------------------

    def reload_config(self, _table=None) -> None:
        """Attributes, chains and timeout from the database (ConfigWatcher calls this when the version moves)."""
        rows, self._chains, self._timeout = run_blocking(self._read_config)
        self._stored = {key: profile_from_row(row) for key, row in rows.items()}
        self._rebuild()

    def _read_config(self):
        """In a native thread (app.offload): the database part of reload_config."""
        with self._factory() as session:
            return load_rows(session), load_chains(session), load_timeout(session)

    # -- Ollama side --------------------------------------------------------------------------------------

    def _get_json(self, backend, method: str, path: str, body: dict | None = None, timeout: float = 5.0):
        raw_body = json.dumps(body).encode() if body is not None else None
        response = self.client.request(method, backend.host, backend.port, path,
                                       [("accept", "application/json"), ("content-type", "application/json")],
                                       raw_body, read_timeout=timeout, connect_timeout=min(timeout, 3.0))
        raw = response.read()
        if response.status != 200:
            raise UpstreamError("protocol", f"HTTP {response.status} from {path}")
        return json.loads(raw)

    def refresh_models(self) -> None:
        """Poll the Ollama nodes once: installed models (with /api/show for new ones) and loaded models.

        Every enabled node of the pool is asked; a model counts once, described by the first node that lists it."""
        table = self.watcher.table
        backends = [n.backend for n in table.nodes if n.enabled] or [table.ollama]
        found: dict[str, tuple[dict, object]] = {}
        loaded: set[str] = set()
        failures = []
        for backend in backends:
            try:
                tags = self._get_json(backend, "GET", "/api/tags")
                for entry in tags.get("models") or []:
                    if isinstance(entry, dict) and (entry.get("model") or entry.get("name")):
                        found.setdefault(normalize_model_name(entry.get("model") or entry.get("name")),
                                         (entry, backend))
            except (UpstreamError, ValueError, AttributeError) as exc:
                failures.append(f"cannot list models at {backend.url}: {getattr(exc, 'message', exc)}")
                continue
            try:
                ps = self._get_json(backend, "GET", "/api/ps")
                loaded.update(normalize_model_name(m.get("model") or m.get("name") or "")
                              for m in ps.get("models") or [] if isinstance(m, dict))
            except (UpstreamError, ValueError, AttributeError):
                pass
        new = []
        if len(failures) == len(backends):
            self._error = "; ".join(failures)
        else:
            for key, (entry, backend) in found.items():
                name = entry.get("model") or entry.get("name")
                digest = str(entry.get("digest") or "")
                known = self._derived.get(key)
                if known is None or known[0] != digest:
                    try:
                        show = self._get_json(backend, "POST", "/api/show", {"model": name}, timeout=10.0)
                    except (UpstreamError, ValueError) as exc:
                        log.info("no /api/show for %s (%s); deriving from the name", name, exc)
                        show = None
                    profile = derive_profile(name, show, entry)
                    self._derived[key] = (digest, profile)
                    new.append(profile)
            self._listed, self._loaded = list(found), frozenset(loaded)
            self._error = None
            self._refreshed_at = time.time()
        self._airllm = self._airllm_models(table)
        if new:
            unstored = [p for p in new if p.key not in self._stored]
            if unstored and run_blocking(store_derived, self._factory, unstored):
                self.reload_config()
                return
        self._rebuild()

    def _airllm_models(self, table) -> dict[str, ModelProfile]:
        """Models only the AirLLM server has, when the service is on and routes them there."""
        if not table.airllm_enabled:
            return {}
        try:
            tags = self._get_json(table.airllm, "GET", "/api/tags", timeout=3.0)
        except (UpstreamError, ValueError):
            return {}
        out = {}
        for entry in tags.get("models") or []:
            name = isinstance(entry, dict) and (entry.get("model") or entry.get("name"))
            if name and table.uses_airllm(name):
                out[normalize_model_name(name)] = derive_profile(name, None, entry)
        return out

    def _rebuild(self) -> None:
        with self._lock:
            models = {}
            for key in self._listed:
                derived = self._derived[key][1]
                models[key] = effective_profile(derived, self._stored.get(key))
            airllm_only = set()
            for key, derived in self._airllm.items():
                if key not in models:
                    models[key] = effective_profile(derived, self._stored.get(key))
                    airllm_only.add(key)
            self.snapshot = Snapshot(models=models, loaded=self._loaded, chains=dict(self._chains),
                                     timeout=self._timeout, stored=dict(self._stored), ollama_error=self._error,
                                     refreshed_at=self._refreshed_at, airllm_models=frozenset(airllm_only))

    def derived(self, name: str) -> ModelProfile | None:
        """The profile derived from what Ollama (or, for a model only it has, the AirLLM server) last reported."""
        key = normalize_model_name(name)
        known = self._derived.get(key)
        return known[1] if known else self._airllm.get(key)

    # -- lifecycle ----------------------------------------------------------------------------------------

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def start(self) -> None:
        if self._thread is None:
            self.watcher.add_listener(self.reload_config)
            self._thread = threading.Thread(target=self._run, name="intelli-catalog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while True:
            try:
                self.refresh_models()
            except Exception:  # never let the refresher die; the last snapshot stays valid
                log.exception("model catalog refresh failed")
            self._ready.set()
            if self._stop.wait(self.poll_seconds):
                return


def stored_profiles_for_display(snapshot: Snapshot) -> list[ModelProfile]:
    """Installed models first (by name), then stored rows of models that are no longer installed."""
    installed = sorted(snapshot.models.values(), key=lambda p: p.key)
    gone = sorted((p for k, p in snapshot.stored.items() if k not in snapshot.models), key=lambda p: p.key)
    return installed + gone
