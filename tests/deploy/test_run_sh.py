"""./run.sh as a user runs it, from a copy of the project whose .venv is this test run's interpreter (so it installs
nothing): it reads .env without overriding the environment, refuses .env.example's placeholder token, and prints
the dashboard's address and whether Ollama answered."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import free_port

ROOT = Path(__file__).resolve().parents[2]
LINKED = ["app", "templates", "static", "migrations", "alembic.ini", "wsgi.py", "gunicorn.conf.py", "requirements.txt"]


@pytest.fixture
def project(tmp_path) -> Path:
    """The project's files (run.sh copied, the rest linked) and a .venv whose requirements stamp is current."""
    root = tmp_path / "clone"
    root.mkdir()
    (root / "run.sh").write_bytes((ROOT / "run.sh").read_bytes())
    for name in LINKED:
        (root / name).symlink_to(ROOT / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "gunicorn").symlink_to(Path(sys.executable).with_name("gunicorn"))
    stamp = hashlib.sha256((ROOT / "requirements.txt").read_bytes()).hexdigest()
    (root / ".venv" / ".requirements.sha256").write_text(stamp + "\n")
    return root


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OLLAMA_", "AIRLLM_", "PROXY_", "DASHBOARD_", "ADMIN_", "DATABASE_", "WEB_"))
           and k not in ("HOST", "INTELLIPROXY_MIGRATED")}
    env.update(extra)
    return env


def wait_for(log: Path, text: str, process: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        content = log.read_text(errors="replace") if log.exists() else ""
        if text in content:
            return content
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not printed (exit {process.poll()}):\n{content[-3000:]}")
        time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=15)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def test_run_sh_reads_env_file_the_environment_wins_and_it_prints_the_urls(project, tmp_path):
    fake = FakeOllama("ollama-dotenv").start()
    proxy_port, dashboard_port, env_file_proxy_port = free_port(), free_port(), free_port()
    (project / ".env").write_text(
        "# settings for ./run.sh\n"
        f"export DASHBOARD_PORT={dashboard_port}\n"
        f"PROXY_PORT={env_file_proxy_port}\n"  # the environment says otherwise: the environment wins
        f'OLLAMA_HOST="127.0.0.1:{fake.port}"\n'
        "HOST='127.0.0.1'\n"
        f"DATABASE_URL=sqlite:///{tmp_path / 'dotenv.db'}   # a comment after the value\n"
        "WEB_CONCURRENCY=1\r\n")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["bash", str(project / "run.sh")], env=clean_env(PROXY_PORT=str(proxy_port)),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        text = wait_for(log, "Ollama answered at", process)
        assert f"Dashboard: http://127.0.0.1:{dashboard_port} · Proxy: http://127.0.0.1:{proxy_port}\n" in text
        assert f"Ollama answered at http://127.0.0.1:{fake.port} (version 0.12.0-ollama-dotenv" in text
        config = requests.get(f"http://127.0.0.1:{dashboard_port}/config/airllm", timeout=5).json()
        assert config["ollama_port"] == fake.port  # .env's OLLAMA_HOST seeded the database
        assert requests.get(f"http://127.0.0.1:{proxy_port}/api/tags", timeout=5).status_code == 200
        assert "Booting worker" in text and text.count("Booting worker") == 1  # WEB_CONCURRENCY=1 from .env
        assert (tmp_path / "dotenv.db").exists()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{env_file_proxy_port}/health", timeout=2)
    finally:
        stop(process)
        fake.stop()


def test_run_sh_refuses_the_placeholder_admin_token_of_env_example(project):
    (project / ".env").write_text("ADMIN_TOKEN=replace-with-output-of-openssl-rand-hex-32\n")
    result = subprocess.run(["bash", str(project / "run.sh")], env=clean_env(), capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 1
    assert "ADMIN_TOKEN still holds the placeholder from .env.example" in result.stderr
