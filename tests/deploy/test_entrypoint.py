"""deploy/entrypoint.sh, the container's start command, run as in the image: from a folder laid out by the
Dockerfile's own COPY lines (so a file the image forgets fails here), with the image's environment."""
from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.test_files import instructions
from tests.support.proxy_process import free_port, wait_for_http

ROOT = Path(__file__).resolve().parents[2]


def dockerignored(name: str) -> bool:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "!"))]
    return any(fnmatch.fnmatch(name, p.removeprefix("**/")) for p in patterns)


@pytest.fixture(scope="module")
def image_root(tmp_path_factory) -> Path:
    """/app as the Dockerfile builds it: every COPY (after WORKDIR /app) replayed, .dockerignore applied."""
    workdir = tmp_path_factory.mktemp("image") / "app"
    workdir.mkdir()
    for keyword, args in instructions(ROOT / "Dockerfile"):
        if keyword != "COPY":
            continue
        *sources, dest = [a for a in args.split() if not a.startswith("--")]
        target = workdir / dest.removeprefix("./").removeprefix("/app/")
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=lambda _d, names: [n for n in names if dockerignored(n)])
            else:
                (target if dest.endswith("/") else target.parent).mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name if dest.endswith("/") else target)
    return workdir


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


def run(root: Path, args: list[str], env: dict, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "deploy/entrypoint.sh", *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_migrate_creates_the_schema_in_the_data_folder(image_root, tmp_path):
    result = run(image_root, ["migrate"], container_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {"alembic_version", "proxy_config", "request_log"} <= tables(tmp_path / "intelliproxy.db")


def test_any_other_command_runs_in_place_of_the_server(image_root, tmp_path):
    result = run(image_root, ["python", "-c", "import os; print(os.environ['DATABASE_URL'])"], container_env(tmp_path))
    assert result.returncode == 0 and result.stdout.strip() == f"sqlite:///{tmp_path / 'intelliproxy.db'}"
    assert not (tmp_path / "intelliproxy.db").exists()  # no migration for a one-off command


def test_refuses_a_data_folder_it_cannot_write(image_root, tmp_path):
    result = run(image_root, ["migrate"], container_env(tmp_path / "missing"))
    assert result.returncode == 1 and "not writable" in result.stderr


def test_refuses_the_placeholder_admin_token(image_root, tmp_path):
    placeholder = next(line.split("=", 1)[1] for line in (ROOT / ".env.example").read_text().splitlines()
                       if line.startswith("ADMIN_TOKEN="))
    result = run(image_root, ["migrate"], container_env(tmp_path, ADMIN_TOKEN=placeholder))
    assert result.returncode == 1 and "placeholder" in result.stderr
    assert not (tmp_path / "intelliproxy.db").exists()


def test_default_start_migrates_then_serves_both_ports(image_root, tmp_path):
    proxy_port, dashboard_port = free_port(), free_port()
    env = container_env(tmp_path, PROXY_PORT=str(proxy_port), DASHBOARD_PORT=str(dashboard_port),
                        WEB_CONCURRENCY="1", ADMIN_TOKEN="a-real-token")
    log = open(tmp_path / "server.log", "wb")
    process = subprocess.Popen(["sh", "deploy/entrypoint.sh"], cwd=image_root, env=env, stdout=log, stderr=subprocess.STDOUT,
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


def test_backup_script_is_in_the_image(image_root, tmp_path):
    """docs/deploying.md runs `python deploy/sqlite_backup.py` inside the container."""
    assert run(image_root, ["migrate"], container_env(tmp_path)).returncode == 0
    result = run(image_root, ["python", "deploy/sqlite_backup.py", str(tmp_path / "copy.db")], container_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "request_log" in tables(tmp_path / "copy.db")
