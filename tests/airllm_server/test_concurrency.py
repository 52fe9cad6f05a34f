"""Concurrent clients share the batch (AIRLLM_MAX_BATCH=2 here), a bounded line behind it, cancellation on disconnect."""

from __future__ import annotations

import http.client
import json
import threading

import ollama
import requests

from tests.support.tiny_model import chat_prompt_ids, greedy_reference
from tests.support.waiting import wait_for

LONG = {"temperature": 0, "num_predict": 480}


def _open_stream(server, prompt: str) -> http.client.HTTPConnection:
    """Start a long streaming generation on a raw connection we can drop at will."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("POST", "/api/generate", json.dumps({"model": "tiny", "prompt": prompt, "options": LONG}),
                 {"Content-Type": "application/json"})
    return conn


def _recent(server, reason: str) -> list[dict]:
    return [r for r in server.health()["recent"] if r["done_reason"] == reason]


def test_two_concurrent_clients_both_get_correct_output(server, model_dir):
    prompts = ["Hello world", "Quick brown foxes"]
    expected = {p: greedy_reference(model_dir, chat_prompt_ids(model_dir, [{"role": "user", "content": p}]), 16)[1]
                for p in prompts}
    results = {}

    def ask(prompt):
        reply = ollama.Client(host=server.url).generate("tiny", prompt, options={"temperature": 0, "num_predict": 16})
        results[prompt] = reply.response

    threads = [threading.Thread(target=ask, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == expected


def _fill_batch(server) -> list[http.client.HTTPConnection]:
    """Two long generations: the batch of the session's server is full."""
    conns = [_open_stream(server, p) for p in ("Hello", "Numbers")]
    for conn in conns:
        resp = conn.getresponse()
        assert resp.status == 200
        resp.readline()
    wait_for(lambda: server.health()["queue"]["batch_size"] == 2, "a full batch")
    return conns


def _close(conns) -> None:
    for conn in conns:
        conn.sock.close()
        conn.close()


def test_full_queue_answers_503_with_retry_after(server):
    running = _fill_batch(server)
    waiting = threading.Thread(target=lambda: requests.post(server.url + "/api/generate", json={
        "model": "tiny", "prompt": "Hi", "stream": False, "options": {"num_predict": 2}}, timeout=120))
    waiting.start()
    wait_for(lambda: server.health()["queue"]["depth"] == 1, "a waiting request")
    busy = requests.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "Hi", "stream": False})
    assert busy.status_code == 503
    assert busy.json()["error"].startswith("server busy")
    assert int(busy.headers["Retry-After"]) >= 1
    assert ollama.Client(host=server.url).list().models      # /api/tags still answers meanwhile
    _close(running)
    waiting.join(timeout=120)
    assert not waiting.is_alive()


def test_disconnect_cancels_generation_and_frees_the_device(server):
    canceled_before = len(_recent(server, "canceled"))
    conn = _open_stream(server, "The system answers")
    resp = conn.getresponse()
    for _ in range(3):
        assert json.loads(resp.readline())["done"] is False
    conn.sock.close()
    conn.close()
    canceled = wait_for(lambda: len(_recent(server, "canceled")) > canceled_before and _recent(server, "canceled"),
                         "the canceled generation")
    assert canceled[-1]["eval_count"] < LONG["num_predict"]
    health = server.health()
    assert health["queue"]["running"] is None and health["queue"]["depth"] == 0
    reply = ollama.Client(host=server.url).generate("tiny", "Hello", options={"num_predict": 3})
    assert reply.eval_count == 3 and reply.done_reason == "length"


def test_queued_request_whose_client_left_is_dropped(server):
    dropped_before = server.health()["queue"]["dropped"]
    running = _fill_batch(server)
    queued = _open_stream(server, "Queued")
    wait_for(lambda: server.health()["queue"]["depth"] == 1, "the queued request")
    waiting = server.health()["queue"]["waiting"]
    assert waiting[0]["position"] == 1 and waiting[0]["model"] == "tiny:latest"
    queued.sock.close()
    queued.close()
    health = wait_for(lambda: (h := server.health())["queue"]["dropped"] > dropped_before and h, "the drop")
    assert health["queue"]["depth"] == 0
    assert health["queue"]["batch_size"] == 2                # the running generations carry on
    _close(running)
    wait_for(lambda: server.health()["queue"]["running"] is None, "the device to be free")
