"""Deployment settings, read from the environment once.

What the dashboard edits (targets, per-model flags) lives in the database, not here: every gunicorn worker
holds its own copy of this object. The OLLAMA_*/AIRLLM_* values below only seed the database on first start.
"""
from __future__ import annotations

import os
from pathlib import Path

from .hostparse import NodeSpec, parse_ollama_host, parse_ollama_hosts
from .validation import ValidationError, is_link_local_target, validate_node_fields

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


def _seed_nodes(env: dict, default_port: int, allow_link_local: bool) -> tuple[NodeSpec, ...]:
    """OLLAMA_HOSTS, parsed and validated now, so a typo stops the start with a message naming the item."""
    try:
        specs = parse_ollama_hosts(env.get("OLLAMA_HOSTS", ""), default_port)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    seen: dict = {}
    for spec in specs:
        item = f"OLLAMA_HOSTS item {spec.host}:{spec.port}"
        try:
            validate_node_fields({"name": spec.node_name, "host": spec.host, "port": spec.port,
                                  "vram_gb": spec.vram_gb, "num_parallel": spec.num_parallel, "weight": spec.weight},
                                 allow_link_local=allow_link_local)
        except ValidationError as exc:
            raise SystemExit(f"{item}: {exc}") from None
        for key in ((spec.host, spec.port), spec.node_name):
            if key in seen:
                raise SystemExit(f"{item}: the same {'address' if isinstance(key, tuple) else 'name'} "
                                 f"as OLLAMA_HOSTS item {seen[key]}")
            seen[key] = f"{spec.host}:{spec.port}"
    return tuple(specs)


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
    allow_link_local = _bool(env.get("ALLOW_LINK_LOCAL_TARGETS"), False)
    for name, host in (("OLLAMA_HOST", seed_host), ("AIRLLM_HOST", env.get("AIRLLM_HOST", ""))):
        if not allow_link_local and is_link_local_target(host.strip()):
            raise SystemExit(f"{name}={host} is a link-local or cloud metadata address: set "
                             "ALLOW_LINK_LOCAL_TARGETS=1 if it really is the backend")
    seed_nodes = _seed_nodes(env, ollama_port, allow_link_local)
    if seed_nodes:  # OLLAMA_HOSTS wins; its first node is also the seed's single Ollama target
        seed_host, seed_port = seed_nodes[0].host, seed_nodes[0].port
    return {
        "HOST": env.get("HOST", "0.0.0.0"),
        "PROXY_PORT": _int(env, "PROXY_PORT", 9998),
        "DASHBOARD_PORT": _int(env, "DASHBOARD_PORT", 9999),
        "DATABASE_URL": env.get("DATABASE_URL") or default_database_url(),
        # Seeds for the database, used on the very first start only.
        "SEED_OLLAMA_HOST": seed_host,
        "SEED_OLLAMA_PORT": seed_port,
        # The pool of Ollama nodes (OLLAMA_HOSTS); empty: one node, SEED_OLLAMA_HOST:SEED_OLLAMA_PORT.
        "SEED_OLLAMA_NODES": seed_nodes,
        "SEED_AIRLLM_HOST": env.get("AIRLLM_HOST", "localhost").strip() or "localhost",
        "SEED_AIRLLM_PORT": _int(env, "AIRLLM_PORT", 8000),
        "SEED_AIRLLM_ENABLED": _bool(env.get("AIRLLM_ENABLED"), False),
        "SEED_USE_AIRLLM_DEFAULT": _bool(env.get("OLLAMA_USE_AIRLLM"), False),
        "SEED_FROM_ENV": frozenset(name for name in SEED_VARIABLES if env.get(name, "").strip()),
        # Longest silence allowed between two chunks of an upstream reply (a model load can take minutes).
        "REQUEST_TIMEOUT": _float(env, "REQUEST_TIMEOUT", 900.0),
        "CONNECT_TIMEOUT": _float(env, "CONNECT_TIMEOUT", 5.0),
        "MAX_REQUEST_MB": _float(env, "MAX_REQUEST_MB", 100.0),
        # Waits for a client's request (app/proxy/timeouts.py): its headers, and each read of its body.
        "CLIENT_HEADER_TIMEOUT_S": _float(env, "CLIENT_HEADER_TIMEOUT_S", 60.0),
        "CLIENT_BODY_TIMEOUT_S": _float(env, "CLIENT_BODY_TIMEOUT_S", 60.0),
        # How often each worker looks for config changes made by another worker or replica.
        "CONFIG_POLL_SECONDS": _float(env, "CONFIG_POLL_SECONDS", 0.5),
        "HEALTH_CACHE_SECONDS": _float(env, "HEALTH_CACHE_SECONDS", 2.0),
        # Backends on link-local or cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, ...).
        "ALLOW_LINK_LOCAL_TARGETS": allow_link_local,
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
        # The proxy's waiting line for requests whose model is busy on every node that has it loaded.
        "PROXY_MAX_QUEUE": _int(env, "PROXY_MAX_QUEUE", 64),
        "PROXY_QUEUE_TIMEOUT_S": _float(env, "PROXY_QUEUE_TIMEOUT_S", 120.0),
    }
