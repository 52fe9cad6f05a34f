"""Run the shipped deploy/nginx.conf under a real nginx owned by the test (no system service, no root paths).

Rendering changes only what differs between a compose network and loopback: the two upstream addresses and the
two listen ports. Everything a test run needs besides (pid file, error log, temp folders under its own
directory) is given on the command line or added as new directives, never by editing the shipped ones.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.proxy_process import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NGINX_CONF = PROJECT_ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
                                      None)
SKIP_REASON = ("the nginx binary is not installed; ./test.sh installs it with "
               "`apt-get update && apt-get install -y nginx-light`")

# What the compose network calls things, and what each becomes on loopback.
API_UPSTREAM = "server intelliproxy:9998;"
DASHBOARD_UPSTREAM = "server intelliproxy:9999;"
API_LISTEN = "listen 9998;"
DASHBOARD_LISTEN = "listen 9999;"
TEMP_DIRECTIVES = ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path",
                   "scgi_temp_path")


def render(conf: str, workdir: Path, api_upstream: str, dashboard_upstream: str, api_listen: str,
           dashboard_listen: str) -> str:
    """The shipped config with loopback addresses; each replaced line must occur exactly once."""
    for needle, value in ((API_UPSTREAM, f"server {api_upstream};"), (DASHBOARD_UPSTREAM, f"server {dashboard_upstream};"),
                          (API_LISTEN, f"listen {api_listen};"), (DASHBOARD_LISTEN, f"listen {dashboard_listen};")):
        count = conf.count(needle)
        if count != 1:
            raise AssertionError(f"deploy/nginx.conf must contain {needle!r} exactly once (found {count})")
        conf = conf.replace(needle, value)
    temp = "".join(f"\n    {name} {workdir / name.removesuffix('_temp_path')};" for name in TEMP_DIRECTIVES)
    if conf.count("\nhttp {") != 1:
        raise AssertionError("deploy/nginx.conf must have one top-level `http {` block")
    return conf.replace("\nhttp {", "\nhttp {" + temp, 1)


class NginxProcess:
    """`nginx -p <dir> -c <dir>/nginx.conf -e <dir>/error.log -g 'daemon off; pid ...;'` as a child process."""

    def __init__(self, workdir: Path, api_upstream: str, dashboard_upstream: str):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.api_port = free_port()
        self.dashboard_port = free_port()
        self.conf_path = workdir / "nginx.conf"
        self.log_path = workdir / "nginx.log"
        self.conf_path.write_text(render(NGINX_CONF.read_text(), workdir, api_upstream, dashboard_upstream,
                                         f"127.0.0.1:{self.api_port}", f"127.0.0.1:{self.dashboard_port}"))
        self.process: subprocess.Popen | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def command(self, *extra: str) -> list[str]:
        globals_ = f"daemon off; pid {self.workdir / 'nginx.pid'};"
        if os.geteuid() == 0:
            # As root nginx would run its workers as "nobody", who cannot enter pytest's 0700 temp folders.
            globals_ += " user root root;"
        return [NGINX, "-p", str(self.workdir), "-c", str(self.conf_path), "-e", str(self.workdir / "error.log"),
                "-g", globals_, *extra]

    def check(self) -> subprocess.CompletedProcess:
        """`nginx -t` on the rendered file."""
        return subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)

    def start(self) -> "NginxProcess":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.process.returncode}:\n{self.log_tail()}")
            if all(_listening(port) for port in (self.api_port, self.dashboard_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen within 15 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)  # fast shutdown: master and workers
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=5)
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log_path, self.workdir / "error.log"):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text or "(no log)"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False
