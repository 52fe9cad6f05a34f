"""Another process holding SQLite's write lock must not stall the worker's streams (app/offload.py).

The flusher waits for the lock in a native thread: the event loop keeps relaying. Before, sqlite3's busy handler
slept in C inside the flusher's greenlet, and a 4 s lock gave a 4 s gap in every stream of the worker.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests

from tests.support.proxy_process import ProxyProcess
from tests.support.waiting import wait_until

LOCK_SECONDS = 4.0
LINE_EVERY_MS = 50
HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the other process's long transaction
db.execute("COMMIT")
"""


@pytest.fixture
def one_worker(tmp_path, fake_ollama):
    """One worker, so the stream and the flusher share an event loop."""
    server = ProxyProcess(tmp_path / "locked.db", workers=1, env={"OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}"})
    server.start()
    yield server
    server.stop()


def largest_gap(times: list[float], start: float, end: float, overlapping: bool = False) -> float:
    """The longest wait between two consecutive lines within start..end; with `overlapping`, also a wait that
    began before start or ended after end (a stall spanning the whole period has no line inside it)."""
    pairs = zip(times, times[1:])
    gaps = [b - a for a, b in pairs if (b >= start and a <= end if overlapping else a >= start and b <= end)]
    return max(gaps, default=0.0)


def timed_version(url: str, session: requests.Session) -> float:
    """How long one /api/version took; then a pause, so the calls are a steady trickle of records to write."""
    started = time.monotonic()
    assert session.get(f"{url}/api/version", timeout=10).status_code == 200
    took = time.monotonic() - started
    time.sleep(0.05)  # pacing the load (about 20 calls a second), not waiting for anything
    return took


def test_an_exclusive_sqlite_lock_elsewhere_does_not_stall_streams(one_worker, fake_ollama):
    fake_port = fake_ollama.port
    baseline_s, lines = 2.0, int((2.0 + LOCK_SECONDS + 1.5) * 1000 / LINE_EVERY_MS)
    arrivals: list[float] = []

    def stream():
        response = requests.post(f"{one_worker.proxy_url}/api/generate", stream=True, timeout=60, json={
            "model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": lines, "fake_delay_ms": LINE_EVERY_MS}})
        for line in response.iter_lines():
            arrivals.append(time.monotonic())
            json.loads(line)

    reader = threading.Thread(target=stream, daemon=True)
    reader.start()
    wait_until(lambda: len(arrivals) >= 3, 10, "the stream's first lines")
    session = requests.Session()
    calls = 0
    baseline_start = time.monotonic()
    baseline_versions = []
    while time.monotonic() - baseline_start < baseline_s:  # each call makes a record for the flusher to write
        baseline_versions.append(timed_version(one_worker.proxy_url, session))
        calls += 1
    launched = time.monotonic()  # the lock may be taken any moment from now on
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(one_worker.db_path), str(LOCK_SECONDS)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock_start = time.monotonic()
        # A dashboard config change waits for the lock too, in the same worker (apply_change offloads it).
        saved = []
        saver = threading.Thread(target=lambda: saved.append(requests.post(
            f"{one_worker.dashboard_url}/config/ollama", json={"host": "127.0.0.1", "port": fake_port}, timeout=30)))
        saver.start()
        locked_versions = []
        while holder.poll() is None:
            locked_versions.append(timed_version(one_worker.proxy_url, session))
            calls += 1
        lock_end = time.monotonic()
    finally:
        holder.wait(timeout=30)
    reader.join(timeout=30)
    saver.join(timeout=30)
    assert not reader.is_alive() and len(arrivals) == lines + 1
    assert saved and saved[0].status_code == 200, saved and saved[0].text

    before = largest_gap(arrivals, baseline_start, launched)
    during = largest_gap(arrivals, launched, lock_end, overlapping=True)
    print(f"\nlargest gap: {before * 1000:.0f} ms before, {during * 1000:.0f} ms during a {LOCK_SECONDS:g} s lock; "
          f"/api/version max {max(baseline_versions) * 1000:.1f} ms before, {max(locked_versions) * 1000:.1f} ms "
          f"during ({len(locked_versions)} calls)")
    assert lock_end - lock_start > LOCK_SECONDS - 0.5
    # Generous bounds for a shared CI machine; the stalled worker gave a 4 s gap and 3.95 s answers.
    assert during < before + 0.5
    assert max(locked_versions) < 1.0
    # And nothing was lost: the flusher wrote the calls made during the lock once it was released.
    wait_until(lambda: _logged(one_worker.db_path, "/api/version") >= calls, 15, "every /api/version record")


def _logged(db_path, endpoint: str) -> int:
    with sqlite3.connect(db_path, timeout=5) as db:
        return db.execute("SELECT COUNT(*) FROM request_log WHERE endpoint = ?", (endpoint,)).fetchone()[0]


def test_records_still_queued_are_written_when_the_server_stops(tmp_path, fake_ollama):
    """worker_exit writes the queue on the worker's own greenlet: gevent's hub may be stopping by then."""
    server = ProxyProcess(tmp_path / "exit.db", workers=1, env={
        "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}", "TELEMETRY_FLUSH_SECONDS": "3600"}).start()
    try:
        for _ in range(3):
            assert requests.get(f"{server.proxy_url}/api/version", timeout=5).status_code == 200
    finally:
        server.stop()  # SIGINT: gunicorn's quick shutdown
    assert _logged(server.db_path, "/api/version") == 3
