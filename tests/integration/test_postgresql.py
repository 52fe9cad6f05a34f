"""Two proxy replicas sharing one PostgreSQL database: migrations, config, statistics and the log are shared.

Needs Debian's PostgreSQL server binaries (./test.sh installs them) and psycopg; a throwaway cluster is created
in a temp folder, owned by the `postgres` system user when the tests run as root (initdb refuses root).
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from tests.support.proxy_process import ProxyProcess, free_port
from tests.support.waiting import wait_until

pytest.importorskip("psycopg")
FIVE_SECONDS_NS = 5_000_000_000  # Ollama's eval_duration of a 5 s generation: over 2**31
PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
pytestmark = pytest.mark.skipif(PG_BIN is None, reason="PostgreSQL server binaries are not installed")


def _as_postgres(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
def postgres_url():
    # Not under pytest's tmp folder: that one is private to root, and the server runs as `postgres`.
    folder = Path(tempfile.mkdtemp(prefix="intelliproxy-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    port = free_port()
    subprocess.run(_as_postgres([f"{PG_BIN}/initdb", "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o",
                                 f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([f"{PG_BIN}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                 "intelliproxy"]), check=True, capture_output=True)
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/intelliproxy"
    subprocess.run(_as_postgres([f"{PG_BIN}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
                   capture_output=True)
    shutil.rmtree(folder, ignore_errors=True)


def _totals_if(server, condition):
    totals = requests.get(f"{server.dashboard_url}/stats", timeout=5).json()["totals"]
    return totals if condition(totals) else None


def _stored_eval_durations(url: str, prompt_marker: str) -> list[int]:
    """eval_duration_ns of the request_log rows whose prompt was stored as `prompt_marker` (STORE_PROMPTS)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text("SELECT eval_duration_ns FROM request_log WHERE prompt = :p"),
                                     {"p": prompt_marker}).scalars())
    finally:
        engine.dispose()


def test_64_bit_columns_and_a_poison_record_on_postgresql(postgres_url):
    """A 5 s eval_duration (over 2**31 ns) is stored; a value no BIGINT holds is set aside, the rest written."""
    from app.db import make_engine, make_session_factory, upgrade_database
    from app.telemetry.recorder import MAX_ATTEMPTS, Recorder
    from app.telemetry.records import RequestRecord
    from app.telemetry.sinks import RequestLogSink

    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    recorder = Recorder(make_session_factory(engine), [RequestLogSink(retention=100, store_prompts=True)])

    def record(prompt, ns):
        return RequestRecord(method="POST", endpoint="/api/generate", client="pg", status=200, finished=0.0,
                             prompt=prompt, eval_count=10, eval_duration_ns=ns)

    try:
        for r in (record("direct", FIVE_SECONDS_NS), record("poison", 2 ** 63), record("direct", 1)):
            recorder.submit(r)
        assert recorder.flush() == 2
        for _ in range(MAX_ATTEMPTS - 1):
            recorder.flush()
        assert not recorder._retry
        assert sorted(_stored_eval_durations(postgres_url, "direct")) == [1, FIVE_SECONDS_NS]
    finally:
        with engine.begin() as conn:  # the replicas' test counts the log rows
            conn.execute(text("DELETE FROM request_log WHERE client = 'pg'"))
        engine.dispose()


def test_migration_0004_widens_an_existing_database(postgres_url):
    """A database made by 0003 (32-bit columns, a row in it) becomes 64-bit, its id sequence too; and back."""
    from alembic import command

    from app.db import alembic_config

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE upgrade_0004"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/upgrade_0004"
    cfg = alembic_config(url)
    engine = create_engine(url)

    def types() -> dict:
        with engine.connect() as conn:
            columns = dict(conn.execute(text(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
                "WHERE table_name || '.' || column_name IN ('request_log.eval_duration_ns', 'request_log.id', "
                "'stats_total.lat_15', 'proxy_config.version')")).all())
            assert len(columns) == 4
            columns["request_log_id_seq"] = conn.execute(text(
                "SELECT data_type FROM information_schema.sequences WHERE sequence_name = 'request_log_id_seq'")
            ).scalar_one()
        return columns

    try:
        command.upgrade(cfg, "0003")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO request_log (created_at, client, method, endpoint, backend, status, "
                              "duration_ms, streamed, eval_duration_ns) VALUES "
                              "(now(), 'old', 'POST', '/api/chat', 'ollama', 200, 1.0, false, 2000000000)"))
        assert set(types().values()) == {"integer"}
        command.upgrade(cfg, "head")
        assert set(types().values()) == {"bigint"}
        with engine.begin() as conn:
            conn.execute(text("UPDATE request_log SET eval_duration_ns = :ns"), {"ns": FIVE_SECONDS_NS})
            assert conn.execute(text("SELECT client, eval_duration_ns FROM request_log")).one() == (
                "old", FIVE_SECONDS_NS)
            conn.execute(text("UPDATE request_log SET eval_duration_ns = 1"))
        command.downgrade(cfg, "0003")
        assert set(types().values()) == {"integer"}
    finally:
        engine.dispose()


def test_two_replicas_share_config_stats_and_log(tmp_path, postgres_url, fake_ollama):
    env = {"DATABASE_URL": postgres_url, "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}", "STORE_PROMPTS": "1"}
    first = ProxyProcess(tmp_path / "a.db", env=env, workers=1)
    second = ProxyProcess(tmp_path / "b.db", env=env, workers=1)
    try:
        first.start()
        second.start()  # migrates the same database again: a no-op under the advisory lock
        changed = requests.post(f"{first.dashboard_url}/config/model/airllm",
                                json={"model_name": "llama3.2:1b", "enabled": True}, timeout=5)
        assert changed.status_code == 200
        assert requests.get(f"{second.dashboard_url}/config/airllm", timeout=5).json()["model_config"] == {
            "llama3.2:1b": True}
        for server in (first, second):
            reply = requests.post(f"{server.proxy_url}/api/generate", timeout=10,
                                  json={"model": "llama3.2:1b", "prompt": "hi", "stream": False})
            assert reply.status_code == 200
        stats = wait_until(lambda: _totals_if(second, lambda t: t["requests"] >= 2), 10, "two requests in the stats")
        assert stats["requests"] == 2 and stats["tokens_generated"] == 10
        log = requests.get(f"{first.dashboard_url}/requests", timeout=5).json()
        assert log["count"] == 2
        reply = requests.post(f"{first.proxy_url}/api/generate", timeout=10, json={
            "model": "llama3.2:1b", "prompt": "long", "stream": False,
            "options": {"fake_eval_duration_ns": FIVE_SECONDS_NS}})
        assert reply.status_code == 200 and reply.json()["eval_duration"] == FIVE_SECONDS_NS
        wait_until(lambda: _stored_eval_durations(postgres_url, "long"), 10, "the long generation's log row")
        assert _stored_eval_durations(postgres_url, "long") == [FIVE_SECONDS_NS]
        wait_until(lambda: requests.get(f"{second.dashboard_url}/stats", timeout=5).json()["totals"]["requests"] == 3,
                   10, "the third request in the shared statistics")
        added = requests.post(f"{first.dashboard_url}/config/nodes", json={"host": "127.0.0.2", "port": 11434},
                              timeout=5)
        assert added.status_code == 201 and added.json()["name"] == "127.0.0.2:11434"
        assert [n["name"] for n in requests.get(f"{second.dashboard_url}/config/nodes", timeout=5).json()["nodes"]] \
            == [f"127.0.0.1:{fake_ollama.port}", "127.0.0.2:11434"]
        for page in ("/", "/statistics", "/log", "/models", "/routing", "/metrics", "/nodes"):
            assert requests.get(f"{first.dashboard_url}{page}", timeout=10).status_code == 200, page
    finally:
        first.stop()
        second.stop()


def test_node_statistics_add_up_on_postgresql(postgres_url):
    """Two workers' NodeStatsSink flushes add into the same BigInteger rows; the newest error wins."""
    from app.db import make_engine, make_session_factory, upgrade_database
    from app.telemetry.node_stats import NodeStatsSink, node_totals
    from app.telemetry.records import RequestRecord

    upgrade_database(postgres_url)
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    now = time.time()

    def on(node, status, error=None, at=now):
        r = RequestRecord(method="POST", endpoint="/api/chat", client="c", model="m", backend="ollama", status=status)
        r.node, r.error, r.started_wall = node, error, at
        return r

    try:
        for sink, batch in ((NodeStatsSink(), [on("pg-a", 200), on("pg-a", 502, "refused", now - 1)]),
                            (NodeStatsSink(), [on("pg-a", 500, "newest", now), on("pg-b", 200)])):
            with factory.begin() as session:
                sink.write(session, batch)
        with factory() as session:
            totals = node_totals(session)
        assert (totals["pg-a"]["requests"], totals["pg-a"]["errors"], totals["pg-a"]["last_error"]) == (3, 2, "newest")
        assert totals["pg-b"]["requests"] == 1
    finally:
        engine.dispose()
