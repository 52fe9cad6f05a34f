"""Start and stop the AirLLM server as a real subprocess on a free loopback port.

    from tests.support.airllm_process import AirLLMProcess
    with AirLLMProcess({"tiny": folder}, shards_dir=tmp / "shards", env={"AIRLLM_MAX_QUEUE": "2"}) as server:
        ollama.Client(host=server.url).generate("tiny", "Hello")
        server.log_text()        # the server's combined stdout/stderr so far

It runs ``python -m app.airllm_server`` (gunicorn, one process, gthread) from the repository root with the
current interpreter, waits until ``GET /health`` answers, and on exit sends SIGTERM (then SIGKILL) to that one
process. Only loopback is used.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirLLMProcess:
    """The AirLLM server in a subprocess; use as a context manager or call start()/stop()."""

    def __init__(self, models: dict[str, str | Path] | None = None, *, shards_dir: str | Path | None = None,
                 models_file: str | Path | None = None, env: dict[str, str] | None = None,
                 startup_timeout: float = 60.0):
        self.models = models or {}
        self.shards_dir = Path(shards_dir) if shards_dir else Path(tempfile.mkdtemp(prefix="airllm-shards-"))
        self.models_file = models_file
        self.extra_env = env or {}
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="airllm-server-", suffix=".log", delete=False)

    def environment(self) -> dict[str, str]:
        """The child's environment: ours plus the AIRLLM_* settings."""
        env = dict(os.environ)
        env.update({
            "AIRLLM_BIND": "127.0.0.1", "AIRLLM_PORT": str(self.port),
            "AIRLLM_MODELS": ",".join(f"{name}={path}" for name, path in self.models.items()),
            "AIRLLM_SHARDS_DIR": str(self.shards_dir), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
        })
        if self.models_file:
            env["AIRLLM_MODELS_FILE"] = str(self.models_file)
        env.update(self.extra_env)
        return env

    def start(self) -> "AirLLMProcess":
        """Start the server and wait until /health answers (raises RuntimeError with the log if it never does)."""
        self.process = subprocess.Popen([sys.executable, "-m", "app.airllm_server"], cwd=REPO_ROOT,
                                        env=self.environment(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"AirLLM server exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"AirLLM server did not answer /health in {self.startup_timeout:.0f} s:\n{self.log_text()}")

    def health(self) -> dict:
        """GET /health as a dict."""
        return requests.get(f"{self.url}/health", timeout=10).json()

    def log_text(self) -> str:
        """Everything the server wrote so far."""
        self._log.flush()
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM the server (gunicorn shuts down gracefully), SIGKILL after 20 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "AirLLMProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
