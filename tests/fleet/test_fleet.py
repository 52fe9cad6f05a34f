"""The pool through the real proxy (gunicorn, 2 gevent workers) over a fake fleet of real HTTP servers."""
from __future__ import annotations

import concurrent.futures
import json

import ollama
import openai
import requests

from .conftest import every_worker_sees, records, wait_until


def generate(proxy, model, **options):
    body = {"model": model, "prompt": "hi", "stream": False, "options": dict({"num_predict": 2}, **options)}
    return requests.post(f"{proxy.proxy_url}/api/generate", json=body, timeout=30)


def slow_stream(proxy, lines: int, delay_ms: int):
    """A streamed generation of the coder model (only node a has it), read to the end on a fresh connection."""
    with requests.Session() as fresh:  # fresh connections spread over both workers
        response = fresh.post(f"{proxy.proxy_url}/api/generate", timeout=30, stream=True, json={
            "model": "qwen2.5-coder:7b", "prompt": "hi", "options": {"num_predict": lines, "fake_delay_ms": delay_ms}})
        response._content = response.raw.read()
        return response


def test_a_request_goes_to_the_node_that_has_its_model_loaded(fleet):
    proxy = fleet["proxy"]
    for _ in range(3):
        coder = generate(proxy, "qwen2.5-coder:7b")
        small = generate(proxy, "llama3.2:1b")
        assert coder.status_code == 200 and coder.headers["X-IntelliProxy-Node"] == "a"
        assert coder.json()["response"].startswith("node-a-")
        assert small.status_code == 200 and small.headers["X-IntelliProxy-Node"] == "b"
    rows = wait_until(lambda: [r for r in records(proxy, node="b") if r["model"] == "llama3.2:1b"], 15,
                      "the request log to show node b")
    assert rows[0]["route_reason"] == "loaded"


def test_a_model_only_one_node_lists_goes_there_and_the_official_client_sees_the_node(fleet):
    client = ollama.Client(host=fleet["proxy"].proxy_url)
    reply = client.embed(model="nomic-embed-text", input=["a", "b"])
    assert len(reply.embeddings) == 2
    raw = requests.post(f"{fleet['proxy'].proxy_url}/api/embed",
                        json={"model": "nomic-embed-text", "input": "a"}, timeout=10)
    assert raw.headers["X-IntelliProxy-Node"] == "b"


def test_lists_are_merged_over_the_up_nodes(fleet):
    proxy = fleet["proxy"]
    tags = requests.get(f"{proxy.proxy_url}/api/tags", timeout=10).json()["models"]
    names = [m["model"] for m in tags if m["model"] != "IntelliProxyLLM:latest"]  # the virtual model is listed too
    assert sorted(names) == ["llama3.2:1b", "nomic-embed-text:latest", "qwen2.5-coder:7b"]  # each model once
    ps = requests.get(f"{proxy.proxy_url}/api/ps", timeout=10)
    loaded = sorted(m["model"] for m in ps.json()["models"])
    assert "qwen2.5-coder:7b" in loaded and "llama3.2:1b" in loaded
    assert set(ps.headers["X-IntelliProxy-Node"].split(",")) == {"a", "b"}
    ids = sorted(m.id for m in openai.OpenAI(base_url=f"{proxy.proxy_url}/v1", api_key="x").models.list().data
                 if m.id != "IntelliProxyLLM:latest")
    assert ids == ["llama3.2:1b", "nomic-embed-text:latest", "qwen2.5-coder:7b"]
    assert requests.get(f"{proxy.proxy_url}/api/version", timeout=5).json()["version"].startswith("0.12.0-node-")


def test_a_busy_node_hands_over_to_the_next_before_the_first_byte(fleet):
    proxy, b = fleet["proxy"], fleet["b"]
    b.state.busy = True  # Ollama's instant 503: its queue is full
    try:
        response = generate(proxy, "llama3.2:1b")
        assert response.status_code == 200, response.text
        assert response.headers["X-IntelliProxy-Node"] == "a" and response.json()["response"].startswith("node-a")
        rows = wait_until(lambda: [r for r in records(proxy, node="a") if r["model"] == "llama3.2:1b"
                                   and "retry after b" in (r["route_reason"] or "")], 15, "the retry in the log")
        assert "server busy" in rows[0]["route_reason"]
    finally:
        b.state.busy = False


def test_nothing_is_retried_after_the_first_byte(fleet):
    proxy = fleet["proxy"]
    before = {name: len(fleet[name].requests_to("/api/generate")) for name in ("a", "b")}
    body = {"model": "llama3.2:1b", "prompt": "hi", "options": {"num_predict": 4, "fake_break_after": 2}}
    with requests.post(f"{proxy.proxy_url}/api/generate", json=body, stream=True, timeout=30) as response:
        node = response.headers["X-IntelliProxy-Node"]
        assert response.status_code == 200
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line.get("response") for line in lines[:2]] == [f"node-{node}-0 ", f"node-{node}-1 "]
    assert "error" in lines[-1] and not any(line.get("done") for line in lines)
    other = "b" if node == "a" else "a"
    assert len(fleet[other].requests_to("/api/generate")) == before[other]  # the other node never saw it
    assert len(fleet[node].requests_to("/api/generate")) == before[node] + 1


def test_every_node_failing_is_a_502_that_names_them_in_each_api_shape(fleet):
    proxy = fleet["proxy"]
    response = generate(proxy, "llama3.2:1b", fake_status=500)
    assert response.status_code == 500  # the last node's own answer is the answer
    body = {"model": "qwen2.5-coder:7b", "messages": [{"role": "user", "content": "hi"}]}
    fleet["a"].state.busy = True
    try:
        native = requests.post(f"{proxy.proxy_url}/api/chat", json=dict(body, stream=False), timeout=30)
        assert native.status_code == 503 and "server busy" in native.json()["error"]
        v1 = requests.post(f"{proxy.proxy_url}/v1/chat/completions", json=body, timeout=30)
        assert v1.status_code == 503 and v1.json()["error"]["type"] == "api_error"
    finally:
        fleet["a"].state.busy = False


def test_concurrent_requests_never_exceed_a_nodes_parallel_slots_across_workers(fleet):
    """num_parallel=1 on a, the only node with the coder model: the second request waits in the proxy (not in
    Ollama's queue), whichever worker it reached; a third beyond PROXY_MAX_QUEUE=2 ... is still within the bound."""
    proxy, a = fleet["proxy"], fleet["a"]
    a.state.max_active.clear()

    def one(_):
        r = slow_stream(proxy, 3, 150)
        return r.status_code, r.headers.get("X-IntelliProxy-Node")

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    assert results == [(200, "a")] * 3
    assert a.state.max_active["qwen2.5-coder:7b"] == 1


def test_past_the_line_bound_the_client_gets_503_with_retry_after(fleet):
    proxy = fleet["proxy"]

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: slow_stream(proxy, 4, 300), range(5)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 3 and statuses.count(503) == 2  # 1 running + 2 waiting (PROXY_MAX_QUEUE)
    refused = next(r for r in answers if r.status_code == 503)
    assert "PROXY_MAX_QUEUE" in refused.json()["error"] and int(refused.headers["Retry-After"]) > 0


def test_pull_goes_to_the_named_node_or_to_every_node(fleet):
    proxy, a, b = fleet["proxy"], fleet["a"], fleet["b"]
    a.reset(), b.reset()
    one = requests.post(f"{proxy.proxy_url}/api/pull", json={"model": "llama3.2:1b", "stream": False},
                        headers={"X-IntelliProxy-Node": "b"}, timeout=30)
    assert one.status_code == 200 and one.json()["status"] == "success"
    assert len(b.requests_to("/api/pull")) == 1 and not a.requests_to("/api/pull")
    assert "X-Intelliproxy-Node" not in b.requests_to("/api/pull")[0].headers  # ours, not forwarded
    with requests.post(f"{proxy.proxy_url}/api/pull", json={"model": "llama3.2:1b"},
                       headers={"X-IntelliProxy-Node": "all"}, stream=True, timeout=30) as every:
        lines = [json.loads(line) for line in every.iter_lines() if line]
    assert {"status": "pulling on node a"} in lines and {"status": "pulling on node b"} in lines
    assert lines[-1] == {"status": "success"} and [ln for ln in lines if ln.get("status") == "success"] == lines[-1:]
    assert len(a.requests_to("/api/pull")) == 1 and len(b.requests_to("/api/pull")) == 2
    unknown = requests.post(f"{proxy.proxy_url}/api/pull", json={"model": "x"}, headers={"X-IntelliProxy-Node": "zz"},
                            timeout=10)
    assert unknown.status_code == 400 and "no Ollama node named 'zz'" in unknown.json()["error"]


def test_delete_goes_to_every_node_that_has_the_model(fleet):
    proxy, a, b = fleet["proxy"], fleet["a"], fleet["b"]
    a.reset(), b.reset()
    response = requests.delete(f"{proxy.proxy_url}/api/delete", json={"model": "llama3.2:1b"}, timeout=10)
    assert response.status_code == 200
    assert len(a.requests_to("/api/delete")) == 1 and len(b.requests_to("/api/delete")) == 1
    coder = requests.delete(f"{proxy.proxy_url}/api/delete", json={"model": "nomic-embed-text"}, timeout=10)
    assert coder.status_code == 200 and len(b.requests_to("/api/delete")) == 2 and len(a.requests_to("/api/delete")) == 1


def test_disabling_a_node_moves_its_traffic_within_a_second(fleet):
    proxy = fleet["proxy"]
    nodes = requests.get(f"{proxy.dashboard_url}/config/nodes", timeout=5).json()["nodes"]
    b_id = next(n["id"] for n in nodes if n["name"] == "b")
    assert requests.patch(f"{proxy.dashboard_url}/config/nodes/{b_id}", json={"enabled": False},
                          timeout=5).status_code == 200
    try:
        # every worker polls the config every 0.1 s here (1 s is the product's promise): 5 s is generous
        wait_until(lambda: all(generate(proxy, "llama3.2:1b").headers["X-IntelliProxy-Node"] == "a"
                               for _ in range(4)), 5, "traffic to leave node b")
    finally:
        requests.patch(f"{proxy.dashboard_url}/config/nodes/{b_id}", json={"enabled": True}, timeout=5)
    every_worker_sees(proxy, lambda n: n["b"]["state"] == "up", "node b enabled again")


def test_a_node_that_dies_is_marked_down_and_comes_back(fleet):
    proxy, b = fleet["proxy"], fleet["b"]
    port = b.port
    b.kill()
    try:
        for _ in range(3):  # requests keep working: a serves them
            assert generate(proxy, "llama3.2:1b").headers["X-IntelliProxy-Node"] == "a"
        every_worker_sees(proxy, lambda n: n["b"]["state"] == "down", "node b down")
    finally:
        from tests.support.fake_ollama import FakeOllama

        from .conftest import models
        revived = FakeOllama("node-b", models("llama3.2:1b", "nomic-embed-text:latest"), port=port).start()
        revived.state.loaded.add("llama3.2:1b")
        fleet["b"] = revived
    every_worker_sees(proxy, lambda n: n["b"]["state"] == "up", "node b up again")
    embed = requests.post(f"{proxy.proxy_url}/api/embed", json={"model": "nomic-embed-text", "input": "a"}, timeout=10)
    assert embed.status_code == 200 and embed.headers["X-IntelliProxy-Node"] == "b"  # only b has it


def test_every_candidate_refusing_is_a_502_naming_each_node():
    """In-process, real sockets: two nodes list the model and nothing listens on either port."""
    from app.fleet.board import Board, _process_lock
    from app.fleet.pool import Pool
    from app.proxy import pool_relay
    from app.proxy.upstream import UpstreamClient
    from app.routing import NodeConfig, RoutingTable
    from tests.support.proxy_process import free_port

    nodes = tuple(NodeConfig(id=i, name=f"gpu-{i}", host="127.0.0.1", port=free_port(), slot=i) for i in (1, 2))
    table = RoutingTable(ollama=nodes[0].backend, airllm=nodes[0].backend, nodes=nodes, version=1)
    client = UpstreamClient(connect_timeout=1.0)
    pool = Pool({}, client, Board(_process_lock()), probe=False)
    pool.sync(table)
    for view in pool.views.values():
        view.listed = {"m:latest": 1.0}
        view.tags_at = 1.0
    outcome = pool_relay.send(pool, client, "POST", "/api/generate", [], b'{"model":"m"}', None, "m", True,
                              None, None)
    assert outcome.upstream is None and outcome.status == 502
    assert outcome.message.startswith("every Ollama node failed: gpu-")
    assert "gpu-1: connection refused" in outcome.message and "gpu-2: connection refused" in outcome.message
    assert pool.board.inflight(pool.board.model_slot("m:latest"), 1) == 0  # the slots were given back


def test_a_blob_upload_and_the_create_that_uses_it_land_on_one_node(fleet):
    import hashlib

    proxy = fleet["proxy"]
    data = b"GGUF" + b"\x00" * 2048
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    for name in ("a", "b"):
        fleet[name].reset()
    upload = requests.post(f"{proxy.proxy_url}/api/blobs/{digest}", data=data, timeout=10,
                           headers={"Content-Type": "application/json"})  # what both official clients send
    assert upload.status_code == 201
    node = upload.headers["X-IntelliProxy-Node"]
    check = requests.head(f"{proxy.proxy_url}/api/blobs/{digest}", timeout=10)
    assert check.status_code == 200 and check.headers["X-IntelliProxy-Node"] == node
    requests.post(f"{proxy.proxy_url}/api/create", timeout=10, json={"model": "mine", "files": {"m.gguf": digest}})
    assert len(fleet[node].requests_to("/api/create")) == 1
    assert not fleet["b" if node == "a" else "a"].requests_to("/api/create")


def test_show_goes_to_a_node_that_has_the_model(fleet):
    proxy = fleet["proxy"]
    shown = requests.post(f"{proxy.proxy_url}/api/show", json={"model": "nomic-embed-text"}, timeout=10)
    assert shown.status_code == 200 and shown.headers["X-IntelliProxy-Node"] == "b"
    coder = ollama.Client(host=proxy.proxy_url).show("qwen2.5-coder:7b")
    assert coder.modelinfo is not None
