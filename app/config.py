"""Deployment settings, read from the environment once.

What the dashboard edits (targets, per-model flags) lives in the database, not here: every gunicorn worker
holds its own copy of this object. The OLLAMA_*/AIRLLM_* values below only seed the database on first start.
"""
from __future__ import annotations

import os
from pathlib import Path

from .hostparse import parse_ollama_host

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The variables that seed the routing config on first start (app.env_drift reports those that differ later).
SEED_VARIABLES = ("OLLAMA_HOST", "OLLAMA_PORT", "OLLAMA_HOSTS", "AIRLLM_ENABLED", "AIRLLM_HOST", "AIRLLM_PORT",
                  "OLLAMA_USE_AIRLLM")


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict, name: str, default: int) -> int:
    raw = env.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _float(env: dict, name: str, default: float) -> float:
    raw = env.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def default_database_url() -> str:
    data_dir = PROJECT_ROOT / "instance"
    return f"sqlite:///{data_dir / 'intelliproxy.db'}"


def load_settings(env: dict | None = None) -> dict:
    """Return the deployment settings as a plain dict (Flask-config style upper-case keys)."""
    env = dict(os.environ if env is None else env)
    ollama_port = _int(env, "OLLAMA_PORT", 11434)
    if env.get("OLLAMA_HOST", "").strip().lower().startswith("https://"):
        # The relay speaks plain HTTP to its backends; silently sending plain HTTP to port 443 would only
        # produce confusing errors later.
        raise SystemExit("OLLAMA_HOST uses https://, but IntelliProxy talks plain HTTP to Ollama: point it at "
                         "Ollama's own HTTP address (e.g. gpu-box:11434)")
    seed_host, seed_port = parse_ollama_host(env.get("OLLAMA_HOST", ""), default_port=ollama_port)
    return {
        "HOST": env.get("HOST", "0.0.0.0"),
        "PROXY_PORT": _int(env, "PROXY_PORT", 9998),
        "DASHBOARD_PORT": _int(env, "DASHBOARD_PORT", 9999),
        "DATABASE_URL": env.get("DATABASE_URL") or default_database_url(),
        # Seeds for the database, used on the very first start only.
        "SEED_OLLAMA_HOST": seed_host,
        "SEED_OLLAMA_PORT": seed_port,
        "SEED_AIRLLM_HOST": env.get("AIRLLM_HOST", "localhost").strip() or "localhost",
        "SEED_AIRLLM_PORT": _int(env, "AIRLLM_PORT", 8000),
        "SEED_AIRLLM_ENABLED": _bool(env.get("AIRLLM_ENABLED"), False),
        "SEED_USE_AIRLLM_DEFAULT": _bool(env.get("OLLAMA_USE_AIRLLM"), False),
        "SEED_FROM_ENV": frozenset(name for name in SEED_VARIABLES if env.get(name, "").strip()),
        # Longest silence allowed between two chunks of an upstream reply (a model load can take minutes).
        "REQUEST_TIMEOUT": _float(env, "REQUEST_TIMEOUT", 900.0),
        "CONNECT_TIMEOUT": _float(env, "CONNECT_TIMEOUT", 5.0),
        "MAX_REQUEST_MB": _float(env, "MAX_REQUEST_MB", 100.0),
        # How often each worker looks for config changes made by another worker or replica.
        "CONFIG_POLL_SECONDS": _float(env, "CONFIG_POLL_SECONDS", 0.5),
        "HEALTH_CACHE_SECONDS": _float(env, "HEALTH_CACHE_SECONDS", 2.0),
        "PROXY_API_KEYS": frozenset(k.strip() for k in env.get("PROXY_API_KEYS", "").split(",") if k.strip()),
        "ADMIN_TOKEN": env.get("ADMIN_TOKEN", "").strip(),
        # Empty: the dashboard makes one and keeps it in the database, so all workers and restarts share it.
        "SECRET_KEY": env.get("SECRET_KEY", "").strip(),
        # Number of reverse proxies (nginx) in front whose X-Forwarded-For is trusted; 0 trusts none.
        "TRUSTED_PROXY_HOPS": _int(env, "TRUSTED_PROXY_HOPS", 0),
        # ... and only when they connect from one of these addresses (gunicorn's setting of the same name).
        "FORWARDED_ALLOW_IPS": env.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"),
        "LOG_RETENTION": _int(env, "LOG_RETENTION", 200),
        "STORE_PROMPTS": _bool(env.get("STORE_PROMPTS"), False),
        "TELEMETRY_FLUSH_SECONDS": _float(env, "TELEMETRY_FLUSH_SECONDS", 1.0),
        "VIRTUAL_MODEL_NAME": env.get("VIRTUAL_MODEL_NAME", "IntelliProxyLLM").strip() or "IntelliProxyLLM",
        "CLASSIFIER_MODEL": env.get("CLASSIFIER_MODEL", "").strip(),
        "CLASSIFIER_TIMEOUT": _float(env, "CLASSIFIER_TIMEOUT", 2.0),  # seconds; then the rule-based answer
        # How often each worker re-reads Ollama's model list (/api/tags, /api/ps) for IntelliProxyLLM.
        "CATALOG_POLL_SECONDS": _float(env, "CATALOG_POLL_SECONDS", 5.0),
    }
