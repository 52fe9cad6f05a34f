"""What the dashboard asks the backends: version, model lists, loaded models, the AirLLM queue; and the merged list.

It uses `requests` with short timeouts (a dashboard page must not hang on a dead host) and reports failures as
text an operator can act on ("connection refused", "name resolution failed", "HTTP 404 ..."), never raises.
The proxy's own hot path does not use any of this.
"""
from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests

from ..health import backend_error
from ..routing import AIRLLM, OLLAMA, Backend, RoutingTable, normalize_model_name

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 4.0
_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")


def describe_error(exc: requests.RequestException) -> str:
    """The root cause of a `requests` failure, without urllib3's wrapper text."""
    if isinstance(exc, requests.ConnectTimeout):
        return f"connection timed out after {CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {READ_TIMEOUT_S:g} s"
    reason = exc.args[0] if exc.args else exc
    reason = getattr(reason, "reason", reason)
    text = _OBJECT_REPR.sub("", str(reason))
    for marker in ("Failed to establish a new connection: ", "Failed to resolve "):
        if marker in text:
            text = text[text.index(marker):]
            break
    if "Name or service not known" in text or "Failed to resolve" in text or "nodename nor servname" in text:
        return f"name resolution failed ({text})"
    if "Connection refused" in text:
        return "connection refused"
    return text.strip("() ") or exc.__class__.__name__


@dataclass
class Probe:
    """One backend as the dashboard saw it just now."""

    name: str  # OLLAMA or AIRLLM
    url: str
    enabled: bool = True
    reachable: bool = False
    error: str | None = None
    version: str | None = None
    rtt_ms: float | None = None
    models: list | None = None  # /api/tags "models"
    loaded: list | None = None  # /api/ps "models"
    health: dict | None = None  # the AirLLM server's /health

    @property
    def label(self) -> str:
        return "Ollama" if self.name == OLLAMA else "AirLLM server"

    @property
    def queue(self) -> dict | None:
        queue = (self.health or {}).get("queue")
        return queue if isinstance(queue, dict) else None

    def as_dict(self) -> dict:
        return {"url": self.url, "enabled": self.enabled, "reachable": self.reachable, "error": self.error,
                "version": self.version, "rtt_ms": self.rtt_ms,
                "models": None if self.models is None else len(self.models),
                "loaded": None if self.loaded is None else [m.get("name") for m in self.loaded],
                "queue": self.queue}


def _get_json(session: requests.Session, url: str, base_url: str = ""):
    """GET a JSON document; (value, None) or (None, error text). With `base_url`, a request that failed is worded
    as /health words it (`cannot connect to <base_url>: ...`, `no valid answer from <base_url>: ...`)."""
    try:
        response = session.get(url, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                               headers={"Accept": "application/json"}, allow_redirects=False)
    except requests.RequestException as exc:
        reason = describe_error(exc)
        if not base_url:
            return None, reason
        return None, backend_error(base_url, reason, connected=not isinstance(exc, requests.ConnectionError))
    if response.status_code != 200:
        snippet = response.text[:200].strip()
        return None, f"HTTP {response.status_code} from {url}" + (f": {snippet}" if snippet else "")
    try:
        return response.json(), None
    except ValueError:
        return None, f"{url} did not answer with JSON (is this an Ollama-compatible server?)"


def probe(backend: Backend, enabled: bool = True, details: bool = True) -> Probe:
    """Version and round-trip time; with `details`, also /api/tags, /api/ps and (AirLLM) /health."""
    result = Probe(backend.name, backend.url, enabled)
    with requests.Session() as http:
        http.trust_env = False  # never send a backend on the LAN through an HTTP(S)_PROXY from the environment
        started = time.perf_counter()
        body, error = _get_json(http, f"{backend.url}/api/version", base_url=backend.url)
        if error:
            result.error = error
            return result
        result.rtt_ms = round((time.perf_counter() - started) * 1000, 1)
        result.version = body.get("version") if isinstance(body, dict) else None
        result.reachable = True
        if not details:
            return result
        tags, error = _get_json(http, f"{backend.url}/api/tags")
        if error or not isinstance(tags, dict) or not isinstance(tags.get("models"), list):
            result.error = f"model list: {error or 'unexpected answer'}"
        else:
            result.models = [m for m in tags["models"] if isinstance(m, dict) and m.get("name")]
        ps, error = _get_json(http, f"{backend.url}/api/ps")
        if not error and isinstance(ps, dict) and isinstance(ps.get("models"), list):
            result.loaded = [m for m in ps["models"] if isinstance(m, dict) and m.get("name")]
        if backend.name == AIRLLM:
            health, _error = _get_json(http, f"{backend.url}/health")
            result.health = health if isinstance(health, dict) else None
    return result


def probe_both(table: RoutingTable, details: bool = True) -> tuple[Probe, Probe]:
    """Ollama and the AirLLM server at once (threads, or greenlets under gevent), so a slow one costs once."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        ollama = pool.submit(probe, table.ollama, True, details)
        airllm = pool.submit(probe, table.airllm, table.airllm_enabled, details)
        return ollama.result(), airllm.result()


# -- the merged model list ---------------------------------------------------------------------------------------

@dataclass
class ModelRow:
    name: str  # as the backend lists it
    key: str  # normalised: what flags and routing use
    size: int | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None
    on_ollama: bool = False
    on_airllm: bool = False
    loaded_on: list = field(default_factory=list)  # backend labels
    flag: bool | None = None  # the explicit per-model switch, None when the default applies
    airllm: bool = False  # the switch as it applies (explicit, else the default)
    runs_on: str = "Ollama"
    warnings: list = field(default_factory=list)

    @property
    def airllm_only(self) -> bool:
        return self.on_airllm and not self.on_ollama

    def as_dict(self) -> dict:
        return {"name": self.name, "size": self.size, "family": self.family, "parameter_size": self.parameter_size,
                "quantization": self.quantization, "on_ollama": self.on_ollama, "on_airllm": self.on_airllm,
                "loaded_on": self.loaded_on, "use_airllm": self.airllm, "explicit_flag": self.flag,
                "runs_on": self.runs_on, "warnings": self.warnings}


def _fill(row: ModelRow, entry: dict) -> None:
    details = entry.get("details") if isinstance(entry.get("details"), dict) else {}
    row.size = row.size or (entry.get("size") if isinstance(entry.get("size"), int) else None)
    row.family = row.family or details.get("family")
    row.parameter_size = row.parameter_size or details.get("parameter_size")
    row.quantization = row.quantization or details.get("quantization_level")


def merged_models(table: RoutingTable, ollama: Probe, airllm: Probe) -> list[ModelRow]:
    """Ollama's and the AirLLM server's models in one list, with where each runs now and what needs attention."""
    rows: dict[str, ModelRow] = {}

    def row_for(name: str) -> ModelRow:
        key = normalize_model_name(name)
        if key not in rows:
            rows[key] = ModelRow(name=name, key=key)
        return rows[key]

    for entry in ollama.models or []:
        row = row_for(entry["name"])
        row.on_ollama = True
        _fill(row, entry)
    for entry in airllm.models or []:
        row = row_for(entry["name"])
        row.on_airllm = True
        _fill(row, entry)
    for probe_, label in ((ollama, "Ollama"), (airllm, "AirLLM")):
        for entry in probe_.loaded or []:
            row = row_for(entry["name"])
            if label not in row.loaded_on:
                row.loaded_on.append(label)
    for key in table.model_flags:  # flags for models no backend lists still show, so they can be switched off
        row_for(key)

    airllm_listed = airllm.models is not None
    for row in rows.values():
        row.flag = table.model_flags.get(row.key)
        row.airllm = row.flag if row.flag is not None else table.use_airllm_default
        routed = table.uses_airllm(row.key)
        if routed and airllm_listed and not row.on_airllm:
            row.runs_on = "Ollama (fallback)"
        elif routed:
            row.runs_on = "AirLLM" if airllm.reachable else "AirLLM, else Ollama"
        else:
            row.runs_on = "Ollama"
        row.warnings = _warnings(row, table, ollama, airllm, routed)
    return sorted(rows.values(), key=lambda r: r.key)


def _warnings(row: ModelRow, table: RoutingTable, ollama: Probe, airllm: Probe, routed: bool) -> list[str]:
    warnings = []
    if row.airllm and not table.airllm_enabled:
        warnings.append("AirLLM is on for this model, but the AirLLM service is disabled (Connections page): "
                        + ("requests go to Ollama, which does not have it, and fail." if row.airllm_only
                           else "requests go to Ollama."))
    elif routed and not airllm.reachable:
        warnings.append("The AirLLM server is unreachable: requests for this model fall back to Ollama.")
    elif routed and airllm.models is not None and not row.on_airllm:
        warnings.append("The AirLLM server does not list this model: requests fall back to Ollama.")
    if row.airllm_only and not row.airllm:
        needs = "" if table.airllm_enabled else " and the AirLLM service is enabled (Connections page)"
        warnings.append("Only the AirLLM server has this model, but its AirLLM switch (last column) is off: requests "
                        f"go to Ollama and fail until the switch is on{needs}.")
    if not row.on_ollama and not row.on_airllm and ollama.models is not None:
        warnings.append("Neither Ollama nor the AirLLM server lists this model.")
    return warnings


def filter_models(rows: list[ModelRow], query: str) -> list[ModelRow]:
    """Rows whose name, family or location contains every word of the query (case-insensitive)."""
    words = query.lower().split()
    if not words:
        return rows

    def text(row: ModelRow) -> str:
        where = " ".join(["ollama" if row.on_ollama else "", "airllm" if row.on_airllm else "", row.runs_on])
        return f"{row.name} {row.family or ''} {row.parameter_size or ''} {row.quantization or ''} {where}".lower()

    return [row for row in rows if all(word in text(row) for word in words)]


def check_connection(backend: Backend) -> Probe:
    """The "Test connection" button: version and model count, or the exact failure."""
    return probe(backend, enabled=True, details=True)


def human_size(size: int | None) -> str:
    """Bytes as Ollama's CLI shows them (decimal units)."""
    if not size:
        return "—"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
