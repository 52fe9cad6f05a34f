"""Migrations apply to an empty database and leave nothing for autogenerate to add."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_upgrade_head_then_check(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}", "PATH": str(Path(sys.executable).parent)}
    alembic = str(Path(sys.executable).with_name("alembic"))
    for command in (["upgrade", "head"], ["check"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run([alembic, *command], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_migrate_seeds_once_from_the_environment(tmp_path):
    from app.config import load_settings
    from app.config_store import load_routing_table
    from app.db import make_engine, make_session_factory
    from app.migrate import migrate_and_seed

    url = f"sqlite:///{tmp_path / 's.db'}"
    migrate_and_seed(load_settings({"DATABASE_URL": url, "OLLAMA_HOST": "gpu:7000", "OLLAMA_PORT": "1"}))
    migrate_and_seed(load_settings({"DATABASE_URL": url, "OLLAMA_HOST": "other", "AIRLLM_ENABLED": "true"}))
    with make_session_factory(make_engine(url))() as session:
        table = load_routing_table(session)
    assert (table.ollama.host, table.ollama.port, table.airllm_enabled) == ("gpu", 7000, False)


def test_upgrading_keeps_the_ollama_target_as_the_first_node(tmp_path):
    """An install from before the pool (revision 0003) keeps its target: 0005 makes it node 1, slot 0."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'u.db'}"
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO proxy_config (id, ollama_host, ollama_port, airllm_enabled, airllm_host, "
                          "airllm_port, use_airllm_default, version, updated_at) VALUES "
                          "(1, 'gpu-box', 11500, 0, 'airllm', 8000, 0, 7, '2026-01-01 00:00:00')"))
    command.upgrade(config, "head")
    with engine.connect() as conn:
        nodes = conn.execute(text("SELECT id, name, host, port, enabled, vram_gb, num_parallel, weight, slot "
                                  "FROM ollama_nodes")).all()
        columns = {row[1] for row in conn.execute(text("PRAGMA table_info(request_log)"))}
    engine.dispose()
    assert [tuple(n) for n in nodes] == [(1, "gpu-box:11500", "gpu-box", 11500, 1, None, 1, 1.0, 0)]
    assert {"node", "route_reason"} <= columns


def test_0004_keeps_sqlite_rows_and_the_auto_increment_id(tmp_path):
    """The batch rebuild copies every row, and request_log.id stays INTEGER PRIMARY KEY (SQLite's rowid alias)."""
    import sqlite3

    from alembic import command

    from app.db import alembic_config

    path = tmp_path / "u.db"
    cfg = alembic_config(f"sqlite:///{path}")
    command.upgrade(cfg, "0003")
    insert = ("INSERT INTO request_log (created_at, client, method, endpoint, backend, status, duration_ms, "
              "streamed, eval_duration_ns) VALUES ('2026-12-01 10:00:00', ?, 'POST', '/api/chat', 'ollama', 200, "
              "1.0, 0, ?)")
    with sqlite3.connect(path) as db:
        db.execute(insert, ("before", 2_000_000_000))
    command.upgrade(cfg, "head")
    with sqlite3.connect(path) as db:
        db.execute(insert, ("after", 5_000_000_000))
        rows = db.execute("SELECT id, client, eval_duration_ns FROM request_log ORDER BY id").fetchall()
        declared = {name: kind for _, name, kind, *_ in db.execute("PRAGMA table_info(request_log)")}
    assert rows == [(1, "before", 2_000_000_000), (2, "after", 5_000_000_000)]
    assert declared["id"] == "INTEGER" and declared["eval_duration_ns"] == "BIGINT"
