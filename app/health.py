"""Backend health for `/health` (both ports) and the dashboard: reachable or the exact error, version, RTT.

Answers are cached for HEALTH_CACHE_SECONDS per worker (and per config version), so frequent probes cannot
hammer the backends. It reuses the proxy's pooled upstream client: no second HTTP stack in every worker.
"""
from __future__ import annotations

import json
import os
import threading
import time

from .proxy.upstream import UpstreamClient, UpstreamError
from .routing import Backend

APP_VERSION = "1.0.0"
PROBE_TIMEOUT = 1.5  # seconds to connect and to answer, per request to a backend


def backend_error(url: str, reason: str, connected: bool = False) -> str:
    """The one wording of a failed probe, for /health and the dashboard alike."""
    return f"{'no valid answer from' if connected else 'cannot connect to'} {url}: {reason}"


def probe_backend(client: UpstreamClient, backend: Backend, timeout: float = PROBE_TIMEOUT,
                  details_path: str | None = None) -> dict:
    """GET /api/version (and optionally a JSON details path such as the AirLLM server's /health); never raises."""
    result = {"url": backend.url, "reachable": False, "version": None, "rtt_ms": None, "error": None}
    started = time.perf_counter()
    try:
        status, body = _get(client, backend, "/api/version", timeout)
    except UpstreamError as exc:
        result["error"] = backend_error(backend.url, exc.message, connected=exc.kind != "connect")
        return result
    result["rtt_ms"] = round((time.perf_counter() - started) * 1000, 2)
    if status != 200 or not isinstance(body, dict):
        result["error"] = f"HTTP {status} from {backend.url}/api/version"
        return result
    result["version"] = body.get("version")
    result["reachable"] = True
    if details_path:
        try:
            status, body = _get(client, backend, details_path, timeout)
            if status == 200 and isinstance(body, dict):
                result["details"] = body
        except UpstreamError:
            pass
    return result


def _get(client: UpstreamClient, backend: Backend, path: str, timeout: float):
    response = client.request("GET", backend.host, backend.port, path, [("accept", "application/json")],
                              read_timeout=timeout, connect_timeout=timeout)
    raw = response.read()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, None


class HealthChecker:
    """Probes both backends at once, within PROBE_TIMEOUT each, so /health answers well inside Docker's 4 s check
    even when a backend drops packets; one refresh at a time per worker, others get the previous report."""

    def __init__(self, watcher, client: UpstreamClient, cache_seconds: float = 2.0, timeout: float = PROBE_TIMEOUT):
        self.watcher = watcher
        self.client = client
        self.cache_seconds = cache_seconds
        self.timeout = timeout
        self.started = time.time()
        self._probed: tuple[float, tuple, dict, dict] | None = None  # (when, targets, ollama, airllm)
        self._refreshing = threading.Lock()
        self.fleet = None  # the Ollama pool (app.fleet.pool.Pool), when wired: its nodes join the report

    def report(self) -> dict:
        """The health document; 'degraded' when a backend in use is unreachable (HTTP status stays 200).

        The proxy's own part is always current; the backends' part is reused for `cache_seconds` while the
        targets stay the same (a per-model flag change does not re-probe).
        """
        table = self.watcher.table
        ollama, airllm = self._backends(table)
        degraded = not ollama["reachable"] or (table.airllm_enabled and not airllm.get("reachable"))
        return {
            "status": "degraded" if degraded else "ok",
            "proxy": {"status": "ok", "version": APP_VERSION, "pid": os.getpid(),
                      "uptime_s": round(time.time() - self.started, 1), "config_version": table.version},
            "ollama": ollama,
            "airllm": airllm,
            "checked_at": self._probed[0] if self._probed else time.time(),
            **({"nodes": self._nodes(table)} if self.fleet is not None else {}),
        }

    def _nodes(self, table) -> list[dict]:
        """Each node as this worker's probes see it (no network here: the pool probes in the background)."""
        live = self.fleet.status()
        out = []
        for node in table.nodes:
            status = live.get(node.id, {})
            out.append({"name": node.name, "url": node.backend.url, "state": status.get("state", "unknown"),
                        "probe_ms": status.get("probe_ms"), "last_error": status.get("last_error"),
                        "loaded": [entry["name"] for entry in status.get("loaded", [])]})
        return out

    def _backends(self, table) -> tuple[dict, dict]:
        targets = (table.ollama, table.airllm_enabled, table.airllm)
        probed = self._probed
        usable = probed is not None and probed[1] == targets
        if usable and time.time() - probed[0] < self.cache_seconds:
            return probed[2], probed[3]
        if not self._refreshing.acquire(blocking=not usable):
            return probed[2], probed[3]  # another request is probing these targets right now
        try:
            probed = self._probed
            if probed is not None and probed[1] == targets and time.time() - probed[0] < self.cache_seconds:
                return probed[2], probed[3]  # refreshed while we waited for the lock
            ollama, airllm = self._probe(table)
            self._probed = (time.time(), targets, ollama, airllm)
            return ollama, airllm
        finally:
            self._refreshing.release()

    def _probe(self, table) -> tuple[dict, dict]:
        airllm = {"enabled": table.airllm_enabled, "url": table.airllm.url}
        probe = None
        if table.airllm_enabled:  # in parallel with the Ollama probe (a greenlet under gevent)
            probe = threading.Thread(target=lambda: airllm.update(
                probe_backend(self.client, table.airllm, self.timeout, details_path="/health")), daemon=True)
            probe.start()
        ollama = probe_backend(self.client, table.ollama, self.timeout)
        if probe is not None:
            probe.join()
        return ollama, airllm
