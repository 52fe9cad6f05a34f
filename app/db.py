"""Engine, sessions and schema migration."""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from .config import PROJECT_ROOT

log = logging.getLogger(__name__)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the dashboard read while a worker writes; busy_timeout waits instead of "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite URL, or None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def make_engine(url: str) -> Engine:
    """Create the engine; for SQLite also create the folder and set the pragmas on every connection."""
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=path is None)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def migration_lock(url: str):
    """Serialise migrations between processes: gunicorn workers, replicas, a manual `alembic upgrade`."""
    path = sqlite_path(url)
    if path is not None:
        lock_path = path.with_name(path.name + ".migrate.lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.connect() as conn:
            from sqlalchemy import text

            conn.execute(text("SELECT pg_advisory_lock(74201)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(74201)"))
        engine.dispose()
        return
    yield


def alembic_config(url: str):
    """Alembic's configuration for the project's migrations against `url`."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


def upgrade_database(url: str) -> None:
    """Apply Alembic migrations up to head (idempotent; safe to call from several processes at once)."""
    from alembic import command

    with migration_lock(url):
        command.upgrade(alembic_config(url), "head")
    log.info("database at %s is at the latest schema", _redact(url))


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


if os.environ.get("INTELLIPROXY_DEBUG_SQL"):
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO)
