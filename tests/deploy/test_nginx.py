"""deploy/nginx.conf under a real nginx, in front of the real gunicorn server and a fake Ollama.

Covers what the config promises: it passes `nginx -t`, streams chunk by chunk, lets multi-GB blob uploads through
while other bodies keep the size limit, keeps HTTP/1.1 connections to gunicorn alive, sends each face to its own
port, and forwards the client address so that the request log shows the real client and a spoofed header does not.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sqlite3
import time
from datetime import datetime, timezone

import pytest
import requests

from tests.deploy.nginx_process import NGINX, NGINX_CONF, SKIP_REASON, NginxProcess, render
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess
from tests.support.source_address import client_from
from tests.support.waiting import wait_until

pytestmark = pytest.mark.skipif(NGINX is None, reason=SKIP_REASON)

BLOB_MB = 150  # above nginx's client_max_body_size (100m) and the app's MAX_REQUEST_MB (1 here)


class GeneratedBody:
    """`size` bytes made on the fly (never held whole), the same bytes on every pass, with a Content-Length."""

    BLOCK = 1 << 20

    def __init__(self, size: int, seed: int = 6):
        self.size = size
        self.base = random.Random(seed).randbytes(self.BLOCK)
        self.pos = 0

    def __len__(self) -> int:
        return self.size - self.pos

    def _piece(self, pos: int, n: int) -> bytes:
        block, offset = divmod(pos, self.BLOCK)
        data = block.to_bytes(8, "big") + self.base[8:]  # every MiB differs from the others
        return data[offset:offset + n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self.pos
        n = min(n, self.size - self.pos, self.BLOCK - self.pos % self.BLOCK)
        data = self._piece(self.pos, n)
        self.pos += len(data)
        return data

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for pos in range(0, self.size, self.BLOCK):
            digest.update(self._piece(pos, min(self.BLOCK, self.size - pos)))
        return "sha256:" + digest.hexdigest()


def log_rows_since(db_path, since: float, endpoint: str, count: int = 1, timeout: float = 10.0) -> list[dict]:
    """request_log rows for `endpoint` of requests that started at `since` (Unix time) or later, once `count` of
    them were flushed. The start time tells them apart from earlier requests whose records are still queued."""
    def rows() -> list[dict]:
        with sqlite3.connect(db_path, timeout=5) as db:
            db.row_factory = sqlite3.Row
            found = [dict(r) for r in db.execute(
                "SELECT id, client, endpoint, status, created_at FROM request_log WHERE endpoint = ? ORDER BY id",
                (endpoint,))]
        return [r for r in found if _unix_time(r["created_at"]) >= since]

    return wait_until(lambda: (lambda found: found if len(found) >= count else None)(rows()), timeout,
                      f"{count} request_log rows for {endpoint}")


def _unix_time(stored: str) -> float:
    """created_at as SQLite holds it (UTC, without the offset) as Unix time."""
    return datetime.fromisoformat(stored).replace(tzinfo=timezone.utc).timestamp()


@pytest.fixture(scope="module")
def upstream():
    server = FakeOllama("ollama").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory, upstream):
    """gunicorn trusting one proxy hop, and the shipped nginx config in front of it."""
    tmp = tmp_path_factory.mktemp("nginx")
    app = ProxyProcess(tmp / "behind-nginx.db", env={
        "OLLAMA_HOST": f"127.0.0.1:{upstream.port}", "TRUSTED_PROXY_HOPS": "1", "MAX_REQUEST_MB": "1",
    }).start()
    nginx = NginxProcess(tmp / "nginx", f"127.0.0.1:{app.proxy_port}", f"127.0.0.1:{app.dashboard_port}")
    try:
        nginx.start()
    except Exception:
        app.stop()
        raise
    yield app, nginx
    nginx.stop()
    app.stop()


def test_shipped_config_passes_nginx_t(tmp_path):
    nginx = NginxProcess(tmp_path, "127.0.0.1:1", "127.0.0.1:2")
    result = nginx.check()
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_render_changes_only_addresses_and_ports(tmp_path):
    shipped = NGINX_CONF.read_text()
    rendered = render(shipped, tmp_path, "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4")
    added = {f"    {name} {tmp_path / name.removesuffix('_temp_path')};" for name in
             ("client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path")}
    kept = [line for line in rendered.splitlines() if line not in added]
    changed = [(a, b) for a, b in zip(shipped.splitlines(), kept) if a != b]
    assert len(kept) == len(shipped.splitlines())
    assert [b.strip() for _, b in changed] == ["server 127.0.0.1:1;", "server 127.0.0.1:2;",
                                               "listen 127.0.0.1:3;", "listen 127.0.0.1:4;"]


def test_ndjson_chunks_reach_the_client_as_they_are_produced(behind_nginx):
    _, nginx = behind_nginx
    lines = 5
    response = requests.post(f"{nginx.api_url}/api/generate", stream=True, timeout=30, json={
        "model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": lines, "fake_delay_ms": 200}})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    arrivals = [(time.time(), json.loads(line)) for line in response.iter_lines()]
    emitted = [chunk["emitted_at"] for _, chunk in arrivals if "emitted_at" in chunk]
    assert len(emitted) == lines and arrivals[-1][1]["done"] is True
    # Not buffered by nginx: the first line is in the client's hands before the fake even wrote the last one,
    # and every line arrives shortly after the fake wrote it (a generous bound: not a speed test).
    assert arrivals[0][0] < emitted[-1]
    assert all(arrived - chunk["emitted_at"] < 0.5 for arrived, chunk in arrivals if "emitted_at" in chunk)


def test_sse_chunks_reach_the_client_as_they_are_produced(behind_nginx):
    _, nginx = behind_nginx
    response = requests.post(f"{nginx.api_url}/v1/chat/completions", stream=True, timeout=30, json={
        "model": "llama3.2:1b", "stream": True, "max_tokens": 4, "fake_delay_ms": 200,
        "messages": [{"role": "user", "content": "x"}]})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    arrivals = [time.monotonic() for line in response.iter_lines() if line.startswith(b"data: {")]
    assert len(arrivals) >= 4
    # Spread over the fake's schedule (4 x 200 ms), not delivered in one lump at the end.
    assert arrivals[-1] - arrivals[0] > 0.4


def test_large_blob_upload_passes_and_arrives_intact(behind_nginx, upstream):
    _, nginx = behind_nginx
    body = GeneratedBody(BLOB_MB << 20)
    digest = body.sha256()
    started = time.monotonic()
    response = requests.post(f"{nginx.api_url}/api/blobs/{digest}", data=body, timeout=120)
    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    # The fake hashed what it received: a digest mismatch would have been a 400.
    assert upstream.state.blobs[digest] == BLOB_MB << 20
    # Streamed through (proxy_request_buffering off), not spooled to disk first: nginx warns when it spools.
    assert "buffered to a temporary file" not in nginx.log_tail(lines=1000)
    print(f"\n{BLOB_MB} MiB blob through nginx + gunicorn in {elapsed:.2f} s")


def test_the_blob_location_forwards_the_client_address_too(behind_nginx):
    """/api/blobs/ has its own location block: it must inherit the forwarding headers like `/`."""
    app, nginx = behind_nginx
    body = b"a small blob"
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    since = time.time()
    response = client_from("127.0.0.6").post(f"{nginx.api_url}/api/blobs/{digest}", data=body, timeout=30)
    assert response.status_code in (200, 201), response.text
    rows = log_rows_since(app.db_path, since, f"/api/blobs/{digest}")
    assert [(r["client"], r["status"]) for r in rows] == [("127.0.0.6", response.status_code)]


def test_other_bodies_keep_their_limits(behind_nginx):
    _, nginx = behind_nginx
    # Over the app's MAX_REQUEST_MB (1 here): nginx lets it through, the app answers 413 in the API's shape.
    big = {"model": "llama3.2:1b", "prompt": "x" * (2 << 20), "stream": False}
    response = requests.post(f"{nginx.api_url}/api/generate", json=big, timeout=30)
    assert response.status_code == 413 and "MAX_REQUEST_MB" in response.json()["error"]
    # Over nginx's own client_max_body_size (100m): refused from the Content-Length alone, nothing sent.
    with socket.create_connection(("127.0.0.1", nginx.api_port), timeout=10) as sock:
        sock.sendall(b"POST /api/chat HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % (101 << 20))
        assert sock.recv(4096).split(b"\r\n", 1)[0] == b"HTTP/1.1 413 Request Entity Too Large"


def test_each_server_block_reaches_its_own_face(behind_nginx, upstream):
    _, nginx = behind_nginx
    assert requests.get(f"{nginx.api_url}/health", timeout=10).status_code == 200
    assert requests.get(f"{nginx.dashboard_url}/health", timeout=10).status_code == 200
    # Marked with a query of their own: the node probes send /api/version to the fake in the background too.
    assert requests.get(f"{nginx.api_url}/api/version?via=api-block", timeout=10).json()["version"]
    assert [r.path for r in upstream.state.received if r.query == "via=api-block"] == ["/api/version"]
    # The dashboard block lands on the dashboard face, which never relays anything to Ollama.
    assert requests.get(f"{nginx.dashboard_url}/api/version?via=dashboard-block", timeout=10).status_code != 200
    assert [r for r in upstream.state.received if r.query == "via=dashboard-block"] == []


def _tcp_states(port: int) -> dict[str, int]:
    """Counts of TCP states of loopback connections with `port` at either end (from /proc/net/tcp)."""
    names = {"01": "established", "06": "time_wait"}
    counts = {"established": 0, "time_wait": 0}
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        local, remote, state = fields[1], fields[2], fields[3]
        if state in names and port in (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)):
            counts[names[state]] += 1
    return counts


def test_connections_to_gunicorn_are_kept_alive(behind_nginx):
    app, nginx = behind_nginx
    session = requests.Session()
    session.get(f"{nginx.api_url}/api/version", timeout=10)
    before = _tcp_states(app.proxy_port)
    for _ in range(10):
        assert session.get(f"{nginx.api_url}/api/version", timeout=10).status_code == 200
    after = _tcp_states(app.proxy_port)
    # HTTP/1.1 with Connection "" and an upstream keepalive pool: the ten requests reuse idle connections
    # instead of opening (and closing) one each, which would leave ten more sockets in TIME_WAIT.
    assert after["time_wait"] - before["time_wait"] < 3, (before, after)
    assert after["established"] >= 2  # at least one idle nginx -> gunicorn connection, both ends counted


def logged_client(db_path, url: str, source: str, forwarded_for: str | None = None) -> list[tuple[str, int]]:
    """Send one generate request from `source` to `url`; (client, status) of the request_log rows it made."""
    since = time.time()
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    response = client_from(source).post(f"{url}/api/generate", timeout=30, headers=headers,
                                        json={"model": "llama3.2:1b", "prompt": "hi", "stream": False})
    assert response.status_code == 200
    return [(r["client"], r["status"]) for r in log_rows_since(db_path, since, "/api/generate")]


def test_request_log_records_the_client_address_nginx_saw(behind_nginx):
    app, nginx = behind_nginx
    # gunicorn saw nginx (127.0.0.1); the log shows the client nginx saw, from X-Forwarded-For.
    assert logged_client(app.db_path, nginx.api_url, "127.0.0.2") == [("127.0.0.2", 200)]


def test_spoofed_forwarded_for_through_nginx_is_not_taken_as_the_client(behind_nginx):
    app, nginx = behind_nginx
    # nginx appends the address it saw; the app trusts only that last hop.
    assert logged_client(app.db_path, nginx.api_url, "127.0.0.3", "203.0.113.9, 198.51.100.7") == \
        [("127.0.0.3", 200)]


def test_spoofed_forwarded_for_straight_to_gunicorn_is_ignored_by_default(proxy):
    """TRUSTED_PROXY_HOPS=0 (the default, the session server): X-Forwarded-For is never read."""
    assert logged_client(proxy.db_path, proxy.proxy_url, "127.0.0.4", "203.0.113.9") == [("127.0.0.4", 200)]


def test_with_hops_1_only_the_allowed_proxy_addresses_are_believed(behind_nginx):
    """TRUSTED_PROXY_HOPS=1 believes X-Forwarded-For only from FORWARDED_ALLOW_IPS (default 127.0.0.1, ::1):
    a client connecting straight to gunicorn from another address cannot pose as someone else (for example as
    loopback, which the dashboard admits without ADMIN_TOKEN)."""
    app, _ = behind_nginx
    assert logged_client(app.db_path, app.proxy_url, "127.0.0.5", "127.0.0.1") == [("127.0.0.5", 200)]


def test_with_hops_1_an_allowed_address_is_taken_as_the_proxy(behind_nginx):
    """Why docs/deploying.md says gunicorn must be reachable only through nginx: whoever connects from an
    allowed address (here 127.0.0.1, where nginx runs) is taken to be nginx, and its header is believed."""
    app, _ = behind_nginx
    assert logged_client(app.db_path, app.proxy_url, "127.0.0.1", "203.0.113.9") == [("203.0.113.9", 200)]

def test_online_backup_of_the_live_database(behind_nginx, tmp_path):
    """deploy/sqlite_backup.py copies the WAL database while gunicorn holds it open, into one checked file."""
    import subprocess
    import sys

    app, nginx = behind_nginx
    since = time.time()
    for _ in range(3):
        requests.post(f"{nginx.api_url}/api/generate", timeout=30,
                      json={"model": "llama3.2:1b", "prompt": "hi", "stream": False})
    rows = log_rows_since(app.db_path, since, "/api/generate", count=3)
    dest = tmp_path / "backup" / "intelliproxy.db"
    script = str(NGINX_CONF.parent / "sqlite_backup.py")
    # The database comes from DATABASE_URL, as in the container.
    result = subprocess.run([sys.executable, script, str(dest)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DATABASE_URL": f"sqlite:///{app.db_path}"})
    assert result.returncode == 0, result.stderr
    assert "integrity ok" in result.stdout
    assert not dest.with_name(dest.name + "-wal").exists()
    with sqlite3.connect(dest) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        copied = copy.execute("SELECT COUNT(*) FROM request_log WHERE endpoint = '/api/generate'").fetchone()[0]
    assert copied >= len(rows)
    again = subprocess.run([sys.executable, script, str(dest), "--db", str(app.db_path)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and "exists" in again.stderr  # never overwrites an earlier backup


def test_dashboard_same_origin_check_passes_through_nginx(behind_nginx, upstream):
    """nginx forwards the Host the browser used (port included), so the dashboard's Origin check still matches."""
    _, nginx = behind_nginx
    target = {"host": "127.0.0.1", "port": upstream.port}  # the same target: nothing changes but the version
    response = requests.post(f"{nginx.dashboard_url}/config/ollama", json=target, timeout=10,
                             headers={"Origin": nginx.dashboard_url})
    assert response.status_code == 200, response.text
    response = requests.post(f"{nginx.dashboard_url}/config/ollama", json=target, timeout=10,
                             headers={"Origin": "http://evil.example"})
    assert response.status_code == 403


@pytest.fixture(scope="module")
def nginx_without_trusted_hops(tmp_path_factory, proxy):
    """The shipped nginx in front of the session server: TRUSTED_PROXY_HOPS=0 and no ADMIN_TOKEN (the defaults)."""
    nginx = NginxProcess(tmp_path_factory.mktemp("nginx-hops-0"), f"127.0.0.1:{proxy.proxy_port}",
                         f"127.0.0.1:{proxy.dashboard_port}").start()
    yield nginx
    nginx.stop()


def test_dashboard_behind_nginx_without_trusted_hops_or_token_is_refused(nginx_without_trusted_hops, proxy):
    """nginx on the same host connects from loopback; without this check every client of it would be admin."""
    response = requests.get(f"{nginx_without_trusted_hops.dashboard_url}/config/airllm", timeout=10,
                            headers={"Host": "localhost"})
    assert response.status_code == 403
    assert "ADMIN_TOKEN" in response.json()["error"] and "TRUSTED_PROXY_HOPS" in response.json()["error"]
    assert requests.get(f"{nginx_without_trusted_hops.dashboard_url}/health", timeout=10).status_code == 200
    assert requests.get(f"{proxy.dashboard_url}/config/airllm", timeout=10).status_code == 200  # straight: local
