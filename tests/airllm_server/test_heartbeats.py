"""Waiting clients see a live stream: headers at once, then heartbeats until their tokens come.

The server here runs one sequence at a time (AIRLLM_MAX_BATCH=1) with AIRLLM_HEARTBEAT_S=0.2; a long generation
holds the batch for as long as a test needs, so the next request waits in line. The official clients (ollama-python,
the OpenAI SDK, ollama-js) are given read timeouts shorter than the wait: only heartbeats keep them connected, and
they must show nothing for them.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import ollama
import openai
import pytest
import requests

from tests.support.airllm_process import AirLLMProcess
from tests.support.waiting import wait_for
from tests.support.tiny_model import build_tiny_model, chat_prompt_ids, greedy_reference

HEARTBEAT_S = 0.2
CLIENT_TIMEOUT_S = 1.0
HELD_S = 1.6                 # how long the line is held: longer than the clients' read timeout
MESSAGES = [{"role": "user", "content": "Hello world"}]
JS_DIR = Path(__file__).parent / "js"


@pytest.fixture(scope="module")
def long_model_dir(tmp_path_factory):
    """The tiny model with room for a generation long enough to hold the line (4096 positions)."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "long", seed=0, max_position_embeddings=4096)


@pytest.fixture(scope="module")
def hb_server(tmp_path_factory, long_model_dir):
    env = {"AIRLLM_MAX_BATCH": "1", "AIRLLM_MAX_QUEUE": "4", "AIRLLM_HEARTBEAT_S": str(HEARTBEAT_S)}
    with AirLLMProcess({"tiny": long_model_dir}, shards_dir=tmp_path_factory.mktemp("hb-shards"), env=env) as proc:
        ollama.Client(host=proc.url).generate("tiny", "")          # load once, so waits are for the line only
        yield proc


@pytest.fixture(scope="module")
def expected(long_model_dir):
    return greedy_reference(long_model_dir, chat_prompt_ids(long_model_dir, MESSAGES), 8)[1]


@contextmanager
def line_held(server):
    """A long generation occupies the only batch place until the block ends."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/api/generate", json.dumps({"model": "tiny", "prompt": "Numbers", "options": {
        "temperature": 0, "num_predict": 4000}}), {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    wait_for(lambda: server.health()["queue"]["batch_size"] == 1, "the long generation")
    try:
        yield
    finally:
        conn.sock.close()
        conn.close()
        wait_for(lambda: all(r["max_tokens"] != 4000 for r in server.health()["queue"]["batch"]),
                 "the long generation to leave")


def _held_then_released(server, read) -> float:
    """Run ``read`` (a client call) in a thread while the line is held for HELD_S; return when it waited."""
    started = time.monotonic()
    with line_held(server):
        thread = threading.Thread(target=read)
        thread.start()
        wait_for(lambda: server.health()["queue"]["depth"] == 1, "the request to wait in line")
        wait_for(lambda: time.monotonic() - started > HELD_S, "the hold", timeout=30)
    thread.join(60)
    assert not thread.is_alive()
    return time.monotonic() - started


@pytest.mark.parametrize("path, empty", [
    ("/api/chat", {"message": {"role": "assistant", "content": ""}}),
    ("/api/generate", {"response": ""}),
])
def test_native_streams_send_empty_chunks_while_waiting(hb_server, expected, path, empty):
    body = {"model": "tiny", "stream": True, "options": {"temperature": 0, "num_predict": 8}}
    body.update({"messages": MESSAGES} if path == "/api/chat" else {"prompt": "Hello world"})
    with line_held(hb_server):
        resp = requests.post(hb_server.url + path, json=body, stream=True, timeout=30)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-ndjson"
        lines = resp.iter_lines()
        stamps = []
        for _ in range(6):
            chunk = json.loads(next(lines))
            stamps.append(time.monotonic())
            assert set(chunk) == {"model", "created_at", "done"} | set(empty)
            assert chunk["model"] == "tiny" and chunk["done"] is False and chunk["created_at"].endswith("Z")
            assert {k: chunk[k] for k in empty} == empty
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) < 5 * HEARTBEAT_S
    rest = [json.loads(line) for line in lines]
    text = "".join((c.get("message") or {}).get("content", c.get("response", "")) for c in rest)
    assert rest[-1]["done"] is True and rest[-1]["eval_count"] == 8
    if path == "/api/chat":
        assert text == expected


def test_openai_stream_sends_sse_comments_while_waiting(hb_server):
    with line_held(hb_server):
        resp = requests.post(hb_server.url + "/v1/chat/completions", json={
            "model": "tiny", "stream": True, "max_tokens": 4, "messages": MESSAGES}, stream=True, timeout=30)
        assert resp.status_code == 200
        lines = resp.iter_lines()
        first = next(lines)
        assert first.startswith(b"data: ") and json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
        seen = [line for line in (next(lines) for _ in range(8)) if line]
        assert seen and all(line == b": keep-alive" for line in seen)
    frames = [line for line in lines if line.startswith(b"data: ")]
    assert frames[-1] == b"data: [DONE]"


def test_ollama_python_shows_nothing_for_heartbeats_and_does_not_time_out(hb_server, expected):
    client = ollama.Client(host=hb_server.url, timeout=CLIENT_TIMEOUT_S)
    parts, errors = [], []

    def read():
        try:
            for part in client.chat("tiny", messages=MESSAGES, stream=True,
                                    options={"temperature": 0, "num_predict": 8}):
                parts.append(part)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    waited = _held_then_released(hb_server, read)
    assert not errors and waited > CLIENT_TIMEOUT_S
    assert "".join(p.message.content for p in parts) == expected
    heartbeats = [p for p in parts if not p.done and p.message.content == ""]
    assert len(heartbeats) >= 3 and parts[-1].done and parts[-1].eval_count == 8


def test_openai_sdk_shows_nothing_for_heartbeats_and_does_not_time_out(hb_server, expected):
    client = openai.OpenAI(base_url=hb_server.url + "/v1", api_key="ollama", timeout=CLIENT_TIMEOUT_S,
                           max_retries=0)
    chunks, errors = [], []

    def read():
        try:
            chunks.extend(client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0,
                                                         max_tokens=8, stream=True))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    waited = _held_then_released(hb_server, read)
    assert not errors and waited > CLIENT_TIMEOUT_S
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason] == ["length"]


@pytest.fixture(scope="module")
def ollama_js(tmp_path_factory):
    """ollama-js installed from the npm registry into a scratch folder (skipped without node and npm)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed for the ollama-js check")
    folder = tmp_path_factory.mktemp("ollama-js")
    for name in ("package.json", "chat_stream.mjs"):
        shutil.copy(JS_DIR / name, folder / name)
    try:
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=folder, check=True, capture_output=True,
                       timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm could not install ollama-js: {exc}")
    return folder


def test_ollama_js_shows_nothing_for_heartbeats(hb_server, expected, ollama_js):
    out = {}

    def read():
        done = subprocess.run(["node", "chat_stream.mjs", hb_server.url, "tiny", MESSAGES[0]["content"], "8"],
                              cwd=ollama_js, capture_output=True, text=True, timeout=60)
        out.update(json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else
                   {"error": done.stderr})

    _held_then_released(hb_server, read)
    assert "error" not in out, out.get("error")
    assert out["text"] == expected and out["empty"] >= 3
