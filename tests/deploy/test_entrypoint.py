"""deploy/entrypoint.sh, the container's start command, run here as it runs in the image (same cwd and env)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.proxy_process import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def container_env(data_dir: Path, **extra: str) -> dict:
    """The image's environment, with the venv first on PATH in place of the image's Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "AIRLLM_", "PROXY_API"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
        "INTELLIPROXY_DATA_DIR": str(data_dir), "DATABASE_URL": f"sqlite:///{data_dir / 'intelliproxy.db'}",
        "HOST": "127.0.0.1", "OLLAMA_HOST": "127.0.0.1:9",
    })
    env.update(extra)
    return env


def run(args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(ENTRYPOINT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_creates_the_schema_in_the_data_folder(tmp_path):
    result = run(["migrate"], container_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {"alembic_version", "proxy_config", "request_log"} <= tables(tmp_path / "intelliproxy.db")


def test_any_other_command_runs_in_place_of_the_server(tmp_path):
    result = run(["python", "-c", "import os; print(os.environ['DATABASE_URL'])"], container_env(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == f"sqlite:///{tmp_path / 'intelliproxy.db'}"
    assert not (tmp_path / "intelliproxy.db").exists()  # no migration for a one-off command


def test_refuses_a_data_folder_it_cannot_write(tmp_path):
    result = run(["migrate"], container_env(tmp_path / "missing"))
    assert result.returncode == 1 and "not writable" in result.stderr


def test_refuses_the_placeholder_admin_token(tmp_path):
    placeholder = next(line.split("=", 1)[1] for line in (ROOT / ".env.example").read_text().splitlines()
                       if line.startswith("ADMIN_TOKEN="))
    result = run(["migrate"], container_env(tmp_path, ADMIN_TOKEN=placeholder))
    assert result.returncode == 1 and "placeholder" in result.stderr
    assert not (tmp_path / "intelliproxy.db").exists()


def test_default_start_migrates_then_serves_both_ports(tmp_path):
    proxy_port, dashboard_port = free_port(), free_port()
    env = container_env(tmp_path, PROXY_PORT=str(proxy_port), DASHBOARD_PORT=str(dashboard_port),
                        WEB_CONCURRENCY="1", ADMIN_TOKEN="a-real-token")
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(["sh", str(ENTRYPOINT)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{proxy_port}/health", process=process)
        wait_for_http(f"http://127.0.0.1:{dashboard_port}/health", process=process)
        assert "request_log" in tables(tmp_path / "intelliproxy.db")
        # exec: the shell is gone, gunicorn itself got the pid (and receives `docker stop`'s SIGTERM).
        cmdline = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert b"gunicorn" in cmdline and not cmdline.startswith(b"sh\0"), cmdline
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    assert process.returncode == 0, (tmp_path / "server.log").read_text()
