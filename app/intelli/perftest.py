"""The performance test: the same prompt over each route, timed, stored and listed.

Routes: `direct` (straight to Ollama), `proxy` (through this proxy's own port, same model), `airllm` (straight to
the AirLLM server) and `intelli` (through the proxy as IntelliProxyLLM, which picks the model). Each streams
`/api/generate` and measures the total time, the time to the first token and tokens per second (Ollama's own
eval_count/eval_duration when it reports them, else tokens over the time after the first one). A route whose
backend is off or unreachable is reported as `unavailable`; the others still run.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import PerformanceResult, utcnow
from ..offload import in_transaction
from ..validation import ValidationError, validate_model_name

TARGETS = ("direct", "proxy", "airllm", "intelli")
MODES = {"direct": ("direct",), "ollama": ("direct",), "proxy": ("proxy",), "airllm": ("airllm",),
         "intelli": ("intelli",), "intelliproxy": ("intelli",), "intelliproxyllm": ("intelli",), "all": TARGETS}
TARGET_LABELS = {"direct": "Ollama directly", "proxy": "Through the proxy", "airllm": "AirLLM server",
                 "intelli": "IntelliProxyLLM"}
MAX_PROMPT = 8000
DEFAULT_TOKENS = 64


@dataclass
class Route:
    target: str
    base_url: str | None
    model: str | None
    headers: dict = field(default_factory=dict)
    unavailable: str | None = None


def validate_request(body: dict) -> dict:
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("prompt", "is required")
    if len(prompt) > MAX_PROMPT:
        raise ValidationError("prompt", f"is longer than {MAX_PROMPT} characters")
    mode = str(body.get("mode") or "all").strip().lower()
    if mode not in MODES:
        raise ValidationError("mode", f"must be one of {', '.join(m for m in MODES if m not in ('ollama', 'intelliproxy', 'intelliproxyllm'))}")
    model = body.get("model") or None
    if model is not None:
        model = validate_model_name(model, "model")
    tokens = body.get("max_tokens", DEFAULT_TOKENS)
    try:
        tokens = int(tokens)
    except (TypeError, ValueError):
        raise ValidationError("max_tokens", "must be a whole number") from None
    if not 1 <= tokens <= 4096:
        raise ValidationError("max_tokens", "must be between 1 and 4096")
    return {"prompt": prompt, "mode": mode, "model": model, "max_tokens": tokens}


def local_proxy_url(settings: dict) -> str:
    """This instance's own proxy port, reached over loopback unless it listens on one specific address."""
    host = settings.get("HOST") or "127.0.0.1"
    if host in ("0.0.0.0", "::", "", "*"):
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{host}:{settings['PROXY_PORT']}"


def http_session() -> requests.Session:
    """Requests to the backends and to this proxy: never through an HTTP(S)_PROXY from the environment, which
    would take loopback and LAN calls somewhere else (the dashboard's connection tests do the same)."""
    http = requests.Session()
    http.trust_env = False
    return http


def plan_routes(settings: dict, table, resolver, targets: tuple, prompt: str, model: str | None,
                http: requests.Session) -> list[Route]:
    """Where each target sends the prompt, and with which model (the virtual model's choice by default)."""
    chosen = model
    if chosen is None:
        decision = resolver.decide("/api/generate", {"prompt": prompt}, table)
        chosen = decision.chosen.name if decision.chosen else None
    keys = sorted(settings.get("PROXY_API_KEYS") or ())
    proxy_headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    routes = []
    for target in targets:
        if target == "direct":
            routes.append(Route(target, table.ollama.url, chosen,
                                unavailable=None if chosen else "no model to test (none installed?)"))
        elif target == "proxy":
            routes.append(Route(target, local_proxy_url(settings), chosen, proxy_headers,
                                unavailable=None if chosen else "no model to test (none installed?)"))
        elif target == "airllm":
            if not table.airllm_enabled:
                routes.append(Route(target, table.airllm.url, None, unavailable="the AirLLM service is disabled"))
            else:
                routes.append(Route(target, table.airllm.url, model or _airllm_model(http, table.airllm.url)))
        elif target == "intelli":
            routes.append(Route(target, local_proxy_url(settings), resolver.virtual_name, proxy_headers))
    return routes


def _airllm_model(http: requests.Session, base_url: str) -> str | None:
    try:
        models = http.get(f"{base_url}/api/tags", timeout=3).json().get("models") or []
    except (requests.RequestException, ValueError):
        return None
    return (models[0].get("model") or models[0].get("name")) if models else None


def measure(http: requests.Session, route: Route, prompt: str, max_tokens: int, timeout: float = 300.0) -> dict:
    """Stream one generation and time it; never raises."""
    result = {"target": route.target, "model": route.model, "status": "ok", "error": None, "duration_ms": None,
              "ttft_ms": None, "tokens": None, "tokens_per_s": None, "detail": None}
    if route.unavailable:
        return dict(result, status="unavailable", error=route.unavailable)
    if not route.model:
        return dict(result, status="unavailable", error="the server lists no model")
    body = {"model": route.model, "prompt": prompt, "stream": True, "options": {"num_predict": max_tokens}}
    started = time.perf_counter()
    first = None
    final: dict = {}
    pieces = 0
    try:
        with http.post(f"{route.base_url}/api/generate", json=body, headers=route.headers, stream=True,
                       timeout=(3.0, timeout)) as response:
            if response.status_code != 200:
                return dict(result, status="error", error=f"HTTP {response.status_code}: {_error_text(response)}")
            answered_by = response.headers.get("X-IntelliProxy-Model")
            for line in response.iter_lines():
                if not line:
                    continue
                chunk = json.loads(line)
                if chunk.get("error"):
                    return dict(result, status="error", error=str(chunk["error"]))
                if first is None and (chunk.get("response") or chunk.get("thinking")):
                    first = time.perf_counter()
                if chunk.get("response") or chunk.get("thinking"):
                    pieces += 1
                if chunk.get("done"):
                    final = chunk
    except requests.ConnectionError as exc:
        return dict(result, status="unavailable", error=f"cannot reach {route.base_url}: {_short(exc)}")
    except requests.Timeout:
        return dict(result, status="error", error=f"no answer from {route.base_url} within {timeout:g} s")
    except (requests.RequestException, ValueError) as exc:
        return dict(result, status="error", error=_short(exc))
    ended = time.perf_counter()
    tokens = final.get("eval_count") or pieces
    result.update(duration_ms=(ended - started) * 1000, tokens=tokens,
                  ttft_ms=None if first is None else (first - started) * 1000)
    if final.get("eval_count") and final.get("eval_duration"):
        result["tokens_per_s"] = final["eval_count"] / final["eval_duration"] * 1e9
    elif first is not None and tokens > 1 and ended > first:
        result["tokens_per_s"] = (tokens - 1) / (ended - first)
    if route.target == "intelli":
        result["model"] = answered_by or final.get("model")
        result["detail"] = f"{route.model} chose {result['model']}"
    return result


def _error_text(response) -> str:
    try:
        error = response.json().get("error")
        return error.get("message") if isinstance(error, dict) else str(error)
    except ValueError:
        return response.text[:200]


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 200 else text[:200] + "..."


def run(settings: dict, table, resolver, session_factory, body: dict) -> dict:
    """Validate, run each route of the mode in turn, store every result, return the run."""
    request = validate_request(body)
    run_id = uuid.uuid4().hex
    with http_session() as http:
        routes = plan_routes(settings, table, resolver, MODES[request["mode"]], request["prompt"], request["model"],
                             http)
        results = [measure(http, route, request["prompt"], request["max_tokens"]) for route in routes]
    now = utcnow()
    rows = [PerformanceResult(run_id=run_id, created_at=now, target=r["target"], model=r["model"], status=r["status"],
                              error=r["error"], prompt=request["prompt"][:2000], duration_ms=r["duration_ms"],
                              ttft_ms=r["ttft_ms"], tokens=r["tokens"], tokens_per_s=r["tokens_per_s"],
                              detail=r["detail"]) for r in results]
    in_transaction(session_factory, lambda session: session.add_all(rows))  # off the event loop
    return {"run_id": run_id, "mode": request["mode"], "prompt": request["prompt"], "created_at": now.isoformat(),
            "results": [_rounded(r) for r in results]}


def _rounded(r: dict) -> dict:
    out = dict(r)
    for key in ("duration_ms", "ttft_ms", "tokens_per_s"):
        if out[key] is not None:
            out[key] = round(out[key], 2)
    return out


def recent_runs(session: Session, limit: int = 20) -> list[dict]:
    """The latest runs, newest first, each with its results in route order."""
    ids = [row for row in session.scalars(select(PerformanceResult.run_id).group_by(PerformanceResult.run_id)
                                          .order_by(func.max(PerformanceResult.id).desc()).limit(limit))]
    if not ids:
        return []
    rows = session.scalars(select(PerformanceResult).where(PerformanceResult.run_id.in_(ids))
                           .order_by(PerformanceResult.id)).all()
    runs: dict[str, dict] = {}
    for row in rows:
        run_ = runs.setdefault(row.run_id, {"run_id": row.run_id, "created_at": row.created_at.isoformat(),
                                            "prompt": row.prompt, "results": [], "_order": row.id})
        run_["_order"] = max(run_["_order"], row.id)
        run_["results"].append(_rounded({
            "target": row.target, "model": row.model, "status": row.status, "error": row.error,
            "duration_ms": row.duration_ms, "ttft_ms": row.ttft_ms, "tokens": row.tokens,
            "tokens_per_s": row.tokens_per_s, "detail": row.detail}))
    ordered = sorted(runs.values(), key=lambda r: -r["_order"])
    for r in ordered:
        r.pop("_order")
    return ordered

