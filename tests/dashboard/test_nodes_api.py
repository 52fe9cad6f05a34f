"""The node pool's config API (app/nodes_api.py): validation, conflicts, CRUD, and propagation to every worker."""
from __future__ import annotations

import pytest
import requests

from tests.conftest import wait_for_config_propagation
from tests.support.fake_ollama import FakeOllama
from tests.support.proxy_process import ProxyProcess

GPU_B = {"host": "gpu-b.lan", "port": 11434, "vram_gb": 24, "num_parallel": 2}


def _nodes(client) -> list[dict]:
    response = client.get("/config/nodes")
    assert response.status_code == 200
    return response.get_json()["nodes"]


def test_the_seeded_node_is_listed_with_the_api_shape_and_unknown_live_state(client, fleet):
    fleet(None)  # no routing engine
    assert _nodes(client) == [{
        "id": 1, "name": "ollama.test:11434", "host": "ollama.test", "port": 11434, "enabled": True,
        "vram_gb": None, "num_parallel": 1, "weight": 1.0, "state": "unknown", "models": [], "loaded": [],
        "in_flight": 0, "waiting": 0, "probe_ms": None, "last_error": None, "loads_observed": 0}]


def test_post_creates_a_node_201_and_get_config_airllm_lists_it(client):
    response = client.post("/config/nodes", json=GPU_B)
    assert response.status_code == 201
    node = response.get_json()
    assert {k: node[k] for k in ("name", "host", "port", "vram_gb", "num_parallel", "weight", "enabled")} == {
        "name": "gpu-b.lan:11434", "host": "gpu-b.lan", "port": 11434, "vram_gb": 24.0, "num_parallel": 2,
        "weight": 1.0, "enabled": True}
    config = client.get("/config/airllm").get_json()
    assert (config["ollama_host"], config["ollama_port"]) == ("ollama.test", 11434)  # still the first node's
    assert [n["name"] for n in config["ollama_nodes"]] == ["ollama.test:11434", "gpu-b.lan:11434"]


@pytest.mark.parametrize("body,field", [
    ({"port": 11434}, "host"),
    ({"host": "gpu-b"}, "port"),
    ({"host": "http://gpu-b", "port": 11434}, "host"),
    ({"host": "gpu-b", "port": 70000}, "port"),
    ({"host": "gpu-b", "port": 1, "vram_gb": 0}, "vram_gb"),
    ({"host": "gpu-b", "port": 1, "vram_gb": 5000}, "vram_gb"),
    ({"host": "gpu-b", "port": 1, "num_parallel": 0}, "num_parallel"),
    ({"host": "gpu-b", "port": 1, "num_parallel": "many"}, "num_parallel"),
    ({"host": "gpu-b", "port": 1, "weight": 0}, "weight"),
    ({"host": "gpu-b", "port": 1, "name": "no spaces"}, "name"),
    ({"host": "gpu-b", "port": 1, "enabled": "perhaps"}, "enabled"),
    ({"host": "gpu-b", "port": 1, "slot": 5}, "slot"),
])
def test_bad_values_get_400_naming_the_field_and_change_nothing(client, body, field):
    before = client.get("/config/airllm").get_json()
    response = client.post("/config/nodes", json=body)
    assert response.status_code == 400
    assert response.get_json()["field"] == field and response.get_json()["error"].startswith(field)
    assert client.get("/config/airllm").get_json() == before


def test_a_form_body_is_refused_like_the_config_api_does(client):
    response = client.post("/config/nodes", data={"host": "gpu-b", "port": "1"})
    assert response.status_code == 400 and response.get_json()["field"] == "body"


@pytest.mark.parametrize("second,field", [({"host": "gpu-b.lan", "port": 11434, "name": "other"}, "host"),
                                          ({"host": "gpu-c", "port": 11434, "name": "gpu-b.lan:11434"}, "name"),
                                          ({"host": "ollama.test", "port": 11434}, "host")])
def test_a_second_node_with_the_same_address_or_name_is_409_and_changes_nothing(client, second, field):
    assert client.post("/config/nodes", json=GPU_B).status_code == 201
    before = client.get("/config/airllm").get_json()
    response = client.post("/config/nodes", json=second)
    assert response.status_code == 409 and response.get_json()["field"] == field
    assert client.get("/config/airllm").get_json() == before


def test_patch_changes_only_the_given_fields(client):
    node_id = client.post("/config/nodes", json=GPU_B).get_json()["id"]
    response = client.patch(f"/config/nodes/{node_id}", json={"weight": 2.5, "enabled": False})
    assert response.status_code == 200
    assert (response.get_json()["weight"], response.get_json()["state"], response.get_json()["vram_gb"]) == (
        2.5, "disabled", 24.0)
    assert client.patch(f"/config/nodes/{node_id}", json={"vram_gb": None}).get_json()["vram_gb"] is None
    assert client.patch(f"/config/nodes/{node_id}", json={"port": 0}).status_code == 400
    assert client.patch(f"/config/nodes/{node_id}", json={"host": "ollama.test"}).status_code == 409
    assert client.patch("/config/nodes/99", json={"weight": 1}).status_code == 404
    assert client.patch(f"/config/nodes/{node_id}", json={}).get_json()["field"] == "body"


def test_delete_removes_a_node_but_never_the_last_one(client):
    node_id = client.post("/config/nodes", json=GPU_B).get_json()["id"]
    response = client.delete(f"/config/nodes/{node_id}")
    assert response.status_code == 200 and response.get_json()["deleted"] == {"id": node_id,
                                                                              "name": "gpu-b.lan:11434"}
    last = client.delete("/config/nodes/1")
    assert last.status_code == 409 and "last node" in last.get_json()["error"]
    assert [n["id"] for n in _nodes(client)] == [1]
    assert client.delete("/config/nodes/99").status_code == 404


def test_post_config_ollama_sets_the_first_node(client):
    assert client.post("/config/ollama", json={"host": "gpu-z", "port": 7000}).status_code == 200
    assert [(n["name"], n["host"], n["port"]) for n in _nodes(client)] == [("gpu-z:7000", "gpu-z", 7000)]
    client.post("/config/nodes", json=GPU_B)
    taken = client.post("/config/ollama", json={"host": "gpu-b.lan", "port": 11434})
    assert taken.status_code == 409 and taken.get_json()["field"] == "host"  # two nodes cannot share an address
    assert client.get("/config/airllm").get_json()["ollama_host"] == "gpu-z"


def test_live_fields_come_from_the_fleet_status_with_loaded_as_names(client, fleet):
    fleet({1: {
        "state": "up", "probe_ms": 3.2, "last_error": None, "models": ["llama3.2:1b", "qwen3:8b"],
        "loaded": [{"name": "qwen3:8b", "size_vram": 6_000_000_000}], "in_flight": 2, "waiting": 1,
        "loads_observed": 4}})
    node = _nodes(client)[0]
    assert (node["state"], node["models"], node["loaded"], node["in_flight"], node["waiting"], node["probe_ms"]) == (
        "up", ["llama3.2:1b", "qwen3:8b"], ["qwen3:8b"], 2, 1, 3.2)
    client.patch("/config/nodes/1", json={"enabled": True})
    client.post("/config/nodes", json={**GPU_B, "enabled": False})
    assert [n["state"] for n in _nodes(client)] == ["up", "disabled"]


def test_changes_reach_every_worker_of_the_real_server(tmp_path, fake_ollama):
    """gunicorn with two gevent workers: after each node change, every worker routes with the new pool."""
    second = FakeOllama("second").start()
    server = ProxyProcess(tmp_path / "nodes.db", env={"OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}",
                                                      "CONFIG_POLL_SECONDS": "0.1"}, workers=2)
    try:
        server.start()
        api = f"{server.dashboard_url}/config/nodes"
        created = requests.post(api, json={"host": "127.0.0.1", "port": second.port, "name": "second"}, timeout=5)
        assert created.status_code == 201, created.text
        assert requests.delete(f"{api}/1", timeout=5).status_code == 200  # the second node is now the first
        wait_for_config_propagation(server)
        pids = set()
        for _ in range(30):  # a fresh connection each time, so both workers answer some of them
            with requests.Session() as fresh:
                pids.add(fresh.get(f"{server.proxy_url}/health", timeout=5).json()["proxy"]["pid"])
                assert fresh.get(f"{server.proxy_url}/api/version", timeout=5).json()["version"] == "0.12.0-second"
        assert len(pids) == 2
        assert [n["name"] for n in requests.get(api, timeout=5).json()["nodes"]] == ["second"]
    finally:
        server.stop()
        second.stop()
