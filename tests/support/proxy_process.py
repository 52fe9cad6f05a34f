"""Start the real product (gunicorn with gevent workers, gunicorn.conf.py) as a subprocess on loopback."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STARTUP_PROBE_LINES = (b"Ollama answered at", b"Ollama did not answer", b"Ollama not probed")  # app/startup.py


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


class ProxyProcess:
    """`gunicorn -c gunicorn.conf.py wsgi:app` with its own ports and database; restartable on the same DB."""

    def __init__(self, db_path: Path, env: dict | None = None, workers: int = 2, log_path: Path | None = None):
        self.db_path = db_path
        self.workers = workers
        self.extra_env = env or {}
        self.proxy_port = free_port()
        self.dashboard_port = free_port()
        self.log_path = log_path or db_path.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "AIRLLM_", "PROXY_API"))}
        env.update({
            "HOST": "127.0.0.1", "PROXY_PORT": str(self.proxy_port), "DASHBOARD_PORT": str(self.dashboard_port),
            "DATABASE_URL": f"sqlite:///{self.db_path}", "WEB_CONCURRENCY": str(self.workers),
            "TELEMETRY_FLUSH_SECONDS": "0.2", "HEALTH_CACHE_SECONDS": "0.5",
        })
        env.update(self.extra_env)
        return env

    def start(self) -> "ProxyProcess":
        gunicorn = Path(sys.executable).with_name("gunicorn")
        since = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([str(gunicorn), "-c", "gunicorn.conf.py", "wsgi:app"], cwd=PROJECT_ROOT,
                                        env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_for_http(f"{self.proxy_url}/health", process=self.process)
            wait_for_http(f"{self.dashboard_url}/health", process=self.process)
            self._wait_for_startup_probe(since)
        except Exception:
            self.stop()
            raise RuntimeError(f"the proxy did not start:\n{self.log_tail()}") from None
        return self

    def _wait_for_startup_probe(self, since: int, timeout: float = 15.0) -> None:
        """Until app.startup has probed Ollama (gunicorn.conf.py's when_ready): a test that counts the requests its
        fake Ollama received must not see that probe arrive in the middle."""
        deadline = time.monotonic() + timeout
        while not any(line in self.log_path.read_bytes()[since:] for line in STARTUP_PROBE_LINES):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise TimeoutError("the start-up probe of Ollama did not report")
            time.sleep(0.05)

    def stop(self) -> None:
        """Quick shutdown (SIGINT): a graceful one would wait for the test clients' idle keep-alive sockets."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGINT)
            self.process.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)
        self.process = None

    def restart(self) -> "ProxyProcess":
        self.stop()
        return self.start()

    def wait_for_log(self, predicate, timeout: float = 10.0) -> dict:
        """The newest row of the request log (the dashboard's /requests JSON) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            rows = requests.get(f"{self.dashboard_url}/requests", timeout=5).json()["requests"]
            found = next((row for row in rows if predicate(row)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no such row in the request log within {timeout} s; newest: {rows[:3]}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
