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
import time
from pathlib import Path

import pytest
import requests

from tests.support.proxy_process import ProxyProcess, free_port

pytest.importorskip("psycopg")
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


def test_two_replicas_share_config_stats_and_log(tmp_path, postgres_url, fake_ollama):
    env = {"DATABASE_URL": postgres_url, "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}"}
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
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = requests.get(f"{second.dashboard_url}/stats", timeout=5).json()
            if stats["totals"]["requests"] >= 2:
                break
            time.sleep(0.2)
        assert stats["totals"]["requests"] == 2 and stats["totals"]["tokens_generated"] == 10
        log = requests.get(f"{first.dashboard_url}/requests", timeout=5).json()
        assert log["count"] == 2
        added = requests.post(f"{first.dashboard_url}/config/nodes", json={"host": "gpu-b", "port": 11434}, timeout=5)
        assert added.status_code == 201 and added.json()["name"] == "gpu-b:11434"
        assert [n["name"] for n in requests.get(f"{second.dashboard_url}/config/nodes", timeout=5).json()["nodes"]] \
            == [f"127.0.0.1:{fake_ollama.port}", "gpu-b:11434"]
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
