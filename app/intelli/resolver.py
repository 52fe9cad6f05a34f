"""The proxy's resolver: turns a request for the virtual model, or for a model with a fallback chain, into attempts.

ProxyApp calls `plan()` for every routed request with a JSON body. Requests for other models cost one dict
lookup and fall through to the default routing (None). Everything here reads the catalog's in-memory snapshot.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time

from ..proxy.attempts import Attempt, LocalReply, model_attempts
from ..routing import normalize_model_name
from .catalog import Catalog
from .classifier import ModelRefiner, classify, extract_features
from .fallbacks import MAX_CHAIN, expand_chain
from .selection import Decision, select

log = logging.getLogger(__name__)
MAX_VIRTUAL_ATTEMPTS = 4  # chosen model, its chain or the runners-up
READY_WAIT_S = 3.0  # how long a request waits for a worker's first model list


class IntelliResolver:
    lists_models = True

    def __init__(self, settings: dict, catalog: Catalog, client=None):
        self.catalog = catalog
        self.virtual_name = settings["VIRTUAL_MODEL_NAME"]
        self.virtual_key = normalize_model_name(self.virtual_name)
        self.list_name = self.virtual_name if ":" in self.virtual_name.rsplit("/", 1)[-1] \
            else f"{self.virtual_name}:latest"
        model = settings.get("CLASSIFIER_MODEL") or ""
        self.refiner = ModelRefiner(model, client, settings.get("CLASSIFIER_TIMEOUT", 2.0)) \
            if model and client is not None else None

    # -- the seam -----------------------------------------------------------------------------------------

    def plan(self, path: str, parsed: dict, raw: bytes | None, model: str | None, table, record):
        if not model:
            return None
        key = normalize_model_name(model)
        if key == self.virtual_key:
            return self._virtual(path, parsed, table, record, model)
        chain = self.catalog.snapshot.chains.get(key)
        if chain and raw is not None and path.startswith(("/api/", "/v1/")) and path != "/api/show":
            models = expand_chain(model, self.catalog.snapshot.chains)
            record.requested_model = model
            record.note = "fallback chain: " + " -> ".join(models)
            return self._attempts(models, parsed, raw, model, table)
        return None

    def attempt_failed(self, model: str | None, reason: str) -> None:
        """ProxyApp reports an attempt that failed before its first byte (in memory only)."""
        self.catalog.health.failed(model, reason)

    def list_entries(self, path: str) -> list[dict]:
        if path == "/api/tags":
            snapshot = self.catalog.snapshot
            return [{"name": self.list_name, "model": self.list_name, "modified_at": "2026-01-01T00:00:00Z",
                     "size": 0, "digest": hashlib.sha256(self.list_name.encode()).hexdigest(),
                     "details": self._details(), "capabilities": self._capabilities(snapshot)}]
        if path == "/v1/models":
            return [{"id": self.list_name, "object": "model", "created": 1767225600, "owned_by": "intelliproxy"}]
        return []

    # -- the virtual model --------------------------------------------------------------------------------

    def decide(self, path: str, body: dict, table) -> Decision:
        """Classify and rank; also used by the dashboard's /classify and the routing page."""
        if self.catalog.snapshot.refreshed_at is None:
            self.catalog.wait_ready(READY_WAIT_S)
        features = extract_features(path, body)
        classification = classify(features, self.refiner, table.ollama)
        return select(features, classification, self.catalog.snapshot, self.catalog.health, table)

    def _virtual(self, path: str, parsed: dict, table, record, model: str):
        if path == "/api/show" or path.startswith("/v1/models/"):
            return LocalReply(200, self._show(path))
        started = time.perf_counter()
        decision = self.decide(path, parsed, table)
        record.requested_model = model
        record.category = decision.classification.category
        if decision.chosen is None:
            snapshot = self.catalog.snapshot
            why = snapshot.ollama_error if not snapshot.models and snapshot.ollama_error else \
                f"no installed model can serve this request (needs {', '.join(sorted(decision.requirements))})"
            record.note = f"{self.virtual_name}: {why}"
            return LocalReply(503 if not snapshot.models else 400, None, f"{self.virtual_name}: {why}")
        chosen = decision.chosen.name
        snapshot = self.catalog.snapshot
        chain = [m for m in expand_chain(chosen, snapshot.chains)[1:] if self._eligible(m, decision)]
        if not chain:
            chain = [c.name for c in decision.ranked[1:MAX_VIRTUAL_ATTEMPTS]]
        models = [chosen] + chain[:MAX_VIRTUAL_ATTEMPTS - 1]
        elapsed = (time.perf_counter() - started) * 1e6
        record.note = f"{self.virtual_name}: {decision.summary()} | tries {' -> '.join(models)} ({elapsed:.0f} µs)"
        return self._attempts(models, parsed, None, None, table)

    def _eligible(self, name: str, decision: Decision) -> bool:
        """A chain entry is skipped when the catalog knows it cannot serve this request."""
        key = normalize_model_name(name)
        if any(normalize_model_name(c.name) == key for c in decision.excluded):
            return False
        return True

    def _attempts(self, models: list[str], parsed: dict, raw: bytes | None, original: str | None, table) -> list:
        timeout = self.catalog.snapshot.timeout
        attempts: list[Attempt] = []
        for name in models[:MAX_CHAIN]:
            body = raw if raw is not None and name == original else _with_model(parsed, name)
            attempts.extend(model_attempts(name, body, table))
        for attempt in attempts[:-1]:
            attempt.fallback_on_connect = attempt.fallback_on_5xx = attempt.fallback_on_not_found = True
            attempt.first_byte_timeout = timeout
        return attempts

    # -- what clients see about the virtual model ---------------------------------------------------------

    def _details(self) -> dict:
        return {"parent_model": "", "format": "virtual", "family": "intelliproxy", "families": ["intelliproxy"],
                "parameter_size": "", "quantization_level": ""}

    def _capabilities(self, snapshot) -> list[str]:
        caps = set()
        for profile in snapshot.models.values():
            if profile.enabled and profile.chat_capable:
                caps |= profile.capabilities & {"completion", "tools", "vision", "thinking"}
        return sorted(caps or {"completion"})

    def _show(self, path: str) -> dict:
        if path.startswith("/v1/models/"):
            return {"id": self.list_name, "object": "model", "created": 1767225600, "owned_by": "intelliproxy"}
        return {"modelfile": f"# {self.virtual_name}: picks an installed model for each request\n",
                "parameters": "", "template": "", "system": "", "license": "",
                "details": self._details(), "model_info": {"general.architecture": "intelliproxy"},
                "capabilities": self._capabilities(self.catalog.snapshot), "modified_at": "2026-01-01T00:00:00Z"}


def _with_model(parsed: dict, name: str) -> bytes:
    """The request body with `model` replaced (the small request is re-encoded; replies are never touched)."""
    body = dict(parsed)
    body["model"] = name
    if "name" in body:  # the legacy field of /api/show
        body["name"] = name
    return json.dumps(body).encode()
