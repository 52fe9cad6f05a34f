"""Routing config in the database: seeding, snapshots, validated updates, and change propagation.

The proxy's hot path never reads the database: each worker keeps an immutable RoutingTable snapshot and a
background watcher swaps in a new one when the `version` column moves (checked every CONFIG_POLL_SECONDS,
so a change made through any worker or replica is live everywhere within a second).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from .models import ModelFlag, ProxyConfig, utcnow
from .node_store import load_nodes, node_json_config, seed_nodes, set_first_node_target, single_node
from .offload import in_transaction, run_blocking
from .routing import AIRLLM, OLLAMA, Backend, RoutingTable, normalize_model_name
from .validation import ValidationError, validate_bool, validate_host, validate_model_name, validate_port

log = logging.getLogger(__name__)
CONFIG_ROW_ID = 1


def seed_config(session: Session, settings: dict) -> bool:
    """Insert the config row and the node pool from the environment if the database has none. True when it
    seeded. (An existing database without nodes, which the 0005 migration rules out, gets its stored target.)"""
    row = session.get(ProxyConfig, CONFIG_ROW_ID)
    if row is not None:
        if not load_nodes(session):
            seed_nodes(session, single_node(row.ollama_host, row.ollama_port))
        return False
    session.add(ProxyConfig(
        id=CONFIG_ROW_ID,
        ollama_host=settings["SEED_OLLAMA_HOST"], ollama_port=settings["SEED_OLLAMA_PORT"],
        airllm_enabled=settings["SEED_AIRLLM_ENABLED"],
        airllm_host=settings["SEED_AIRLLM_HOST"], airllm_port=settings["SEED_AIRLLM_PORT"],
        use_airllm_default=settings["SEED_USE_AIRLLM_DEFAULT"], version=1, updated_at=utcnow(),
    ))
    session.flush()
    specs = settings.get("SEED_OLLAMA_NODES") or single_node(settings["SEED_OLLAMA_HOST"],
                                                              settings["SEED_OLLAMA_PORT"])
    seed_nodes(session, specs)
    log.info("seeded routing config from the environment: Ollama at %s",
             ", ".join(f"{spec.host}:{spec.port}" for spec in specs))
    return True


def _config_row(session: Session) -> ProxyConfig:
    row = session.get(ProxyConfig, CONFIG_ROW_ID)
    if row is None:
        raise RuntimeError("the routing config row is missing: was the database migrated and seeded?")
    return row


def load_routing_table(session: Session) -> RoutingTable:
    """Read the whole routing config into an immutable snapshot."""
    row = _config_row(session)
    flags = {name: flag for name, flag in session.execute(select(ModelFlag.name, ModelFlag.use_airllm))}
    nodes = load_nodes(session)
    return RoutingTable(
        ollama=nodes[0].backend if nodes else Backend(OLLAMA, row.ollama_host, row.ollama_port),
        airllm=Backend(AIRLLM, row.airllm_host, row.airllm_port),
        airllm_enabled=row.airllm_enabled,
        use_airllm_default=row.use_airllm_default,
        model_flags=flags,
        version=row.version,
        nodes=nodes,
    )


def current_version(session: Session) -> int:
    return session.execute(select(ProxyConfig.version).where(ProxyConfig.id == CONFIG_ROW_ID)).scalar_one()


def _bump(session: Session) -> None:
    session.execute(update(ProxyConfig).where(ProxyConfig.id == CONFIG_ROW_ID)
                    .values(version=ProxyConfig.version + 1, updated_at=utcnow()))


def apply_change(services, change: Callable[[Session], object]) -> RoutingTable:
    """Run `change(session)` in one transaction that also bumps the config version, then make this worker see
    it at once (every other worker and replica follows within a poll). Returns this worker's new table.

    Every write to the routing config (targets, flags, IntelliProxyLLM's attributes and fallbacks) goes through
    here; a ValidationError raised by `change` rolls the transaction back and propagates. The transaction runs
    in a native thread (app.offload): waiting for another process's write lock must not stop this worker's streams.
    """
    in_transaction(services.session_factory, lambda session: (change(session), _bump(session)))
    return services.watcher.refresh(force=True)


def config_as_json(table: RoutingTable) -> dict:
    """The seed's `GET /config/airllm` shape."""
    return {
        "ollama_host": table.ollama.host,
        "ollama_port": table.ollama.port,
        "airllm_enabled": table.airllm_enabled,
        "airllm_host": table.airllm.host,
        "airllm_port": table.airllm.port,
        "use_airllm_default": table.use_airllm_default,
        "model_config": dict(sorted(table.model_flags.items())),
        "version": table.version,  # grows with every change; /health shows the version each worker uses
        "ollama_nodes": [node_json_config(node) for node in table.nodes],
    }


def set_ollama_target(session: Session, host=None, port=None) -> None:
    """Change the Ollama target (the pool's first node); a field left out keeps its value. All fields are
    validated before any write.

    Like the other setters, run it through `apply_change`, which bumps the version so every worker follows."""
    if host is None and port is None:
        raise ValidationError("host", "give host and/or port")
    table = load_routing_table(session)
    new_host = table.ollama.host if host is None else validate_host(host, "host")
    new_port = table.ollama.port if port is None else validate_port(port, "port")
    set_first_node_target(session, new_host, new_port)


def set_airllm_service(session: Session, enabled=None, host=None, port=None, use_airllm_default=None) -> None:
    """Change the AirLLM service settings; a field left out keeps its value."""
    if enabled is None and host is None and port is None and use_airllm_default is None:
        raise ValidationError("enabled", "give at least one of enabled, host, port")
    row = _config_row(session)
    values = {
        "airllm_enabled": row.airllm_enabled if enabled is None else validate_bool(enabled, "enabled"),
        "airllm_host": row.airllm_host if host is None else validate_host(host, "host"),
        "airllm_port": row.airllm_port if port is None else validate_port(port, "port"),
        "use_airllm_default": row.use_airllm_default if use_airllm_default is None
        else validate_bool(use_airllm_default, "use_airllm_default"),
    }
    for name, value in values.items():
        setattr(row, name, value)


def set_model_airllm(session: Session, model_name, enabled) -> str:
    """Flag one model for AirLLM (or not). Returns the normalised name it was stored under."""
    name = normalize_model_name(validate_model_name(model_name, "model_name"))
    enabled = validate_bool(enabled, "enabled")
    flag = session.get(ModelFlag, name)
    if flag is None:
        session.add(ModelFlag(name=name, use_airllm=enabled, updated_at=utcnow()))
    else:
        flag.use_airllm, flag.updated_at = enabled, utcnow()
    return name


class ConfigWatcher:
    """Holds this worker's current RoutingTable and refreshes it when the database version changes."""

    def __init__(self, session_factory: sessionmaker, poll_seconds: float = 0.5):
        self._factory = session_factory
        self._poll = poll_seconds
        self._listeners: list[Callable[[RoutingTable], None]] = []
        self.table = run_blocking(self._read, None)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add_listener(self, callback: Callable[[RoutingTable], None]) -> None:
        self._listeners.append(callback)

    def refresh(self, force: bool = False) -> RoutingTable:
        """Reload if the version moved (or always, with force); cheap when nothing changed.

        The database is read in a native thread (app.offload); listeners run here, on the caller's greenlet."""
        table = run_blocking(self._read, None if force else self.table.version)
        if table is not None:
            self.table = table
            for callback in self._listeners:
                callback(table)
        return self.table

    def _read(self, known_version: int | None) -> RoutingTable | None:
        """The stored table, or None when its version is still `known_version` (None: read it anyway)."""
        with self._factory() as session:
            if known_version is not None and current_version(session) == known_version:
                return None
            return load_routing_table(session)

    def start(self) -> None:
        """Start polling in the background (a greenlet under gevent's monkey-patching, else a thread); each poll's
        database read runs in a native thread either way."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                self.refresh()
            except Exception:  # a database hiccup must not kill the watcher; the old snapshot stays valid
                log.exception("could not refresh the routing config; keeping version %s", self.table.version)
                time.sleep(self._poll)
