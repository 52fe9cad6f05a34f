"""The Nodes page (app/dashboard/nodes_views.py): page and fragments, inline validation, row actions, live data."""
from __future__ import annotations

from .conftest import record, submit


def _names(client) -> list[str]:
    return [n["name"] for n in client.get("/config/nodes").get_json()["nodes"]]


def test_page_and_its_live_fragment(client, htmx_client, rendered, fleet):
    fleet(None)  # no routing engine: every state is unknown
    page = client.get("/nodes")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and '<a href="/nodes" aria-current="page">Nodes</a>' in html
    assert 'hx-trigger="every 2s, nodes-changed from:body" hx-target="this" hx-swap="outerHTML"' in html
    assert "ollama.test:11434" in html and "unknown" in html
    htmx_client.get("/nodes")
    assert rendered[-1] == "dashboard/_node_rows.html" and "dashboard/nodes.html" in rendered
    assert "style=" not in html  # the CSP forbids inline styles: bars are <meter> elements


def test_adding_a_node_from_the_form_refreshes_the_rows(htmx_client, csrf):
    response = htmx_client.post("/nodes", data={"host": "gpu-b", "port": "11434", "vram_gb": "24",
                                                "num_parallel": "2", "weight": "1", "enabled": "on"},
                                headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "nodes-changed"
    assert "Added gpu-b:11434." in response.get_data(as_text=True)
    assert _names(htmx_client) == ["ollama.test:11434", "gpu-b:11434"]


def test_invalid_fields_come_back_inline_with_200_and_nothing_saved(htmx_client, csrf):
    response = htmx_client.post("/nodes", data={"host": "gpu b", "port": "70000", "vram_gb": "-3",
                                                "num_parallel": "1", "weight": "1"}, headers={"X-CSRF-Token": csrf})
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Trigger" not in response.headers
    assert 'id="node-port-error">Node port must be an integer between 1 and 65535' in html
    assert 'id="node-vram_gb-error">VRAM (GB) must be above 0' in html and 'id="node-host-error"' in html
    assert 'value="70000"' in html  # what was typed stays
    duplicate = htmx_client.post("/nodes", data={"host": "ollama.test", "port": "11434", "num_parallel": "1",
                                                 "weight": "1"}, headers={"X-CSRF-Token": csrf})
    assert "already uses ollama.test:11434" in duplicate.get_data(as_text=True)
    assert _names(htmx_client) == ["ollama.test:11434"]


def test_edit_disable_enable_and_remove(htmx_client, csrf, services):
    headers = {"X-CSRF-Token": csrf}
    htmx_client.post("/nodes", data={"host": "gpu-b", "port": "1", "num_parallel": "1", "weight": "1",
                                     "enabled": "on"}, headers=headers)
    form = htmx_client.get("/nodes/form?id=2").get_data(as_text=True)
    assert "Edit node gpu-b:1" in form and 'value="gpu-b"' in form
    saved = htmx_client.post("/nodes/2", data={"host": "gpu-b", "port": "1", "name": "b", "num_parallel": "4",
                                               "weight": "2", "enabled": "on"}, headers=headers)
    assert "Saved gpu-b:1." in saved.get_data(as_text=True)
    disabled = htmx_client.post("/nodes/2/enabled", headers=headers)
    assert disabled.headers["HX-Trigger"] == "nodes-changed" and "disabled" in disabled.get_data(as_text=True)
    refused = htmx_client.post("/nodes/1/enabled", headers=headers)  # the last enabled node
    assert refused.status_code == 409 and "stay enabled" in refused.get_data(as_text=True)
    assert htmx_client.post("/nodes/2/enabled", data={"enabled": "on"}, headers=headers).status_code == 200
    nodes = htmx_client.get("/config/nodes").get_json()["nodes"]
    assert [(n["name"], n["num_parallel"], n["weight"], n["enabled"]) for n in nodes] == [
        ("ollama.test:11434", 1, 1.0, True), ("b", 4, 2.0, True)]
    assert htmx_client.post("/nodes/2/delete", headers=headers).status_code == 200
    last = htmx_client.post("/nodes/1/delete", headers=headers)
    assert last.status_code == 409 and "last node" in last.get_data(as_text=True)
    assert _names(htmx_client) == ["ollama.test:11434"]


def test_row_actions_need_the_csrf_token(htmx_client):
    assert htmx_client.post("/nodes/1/enabled", data={"enabled": "on"}).status_code == 403
    assert htmx_client.post("/nodes/1/delete", data={"csrf_token": "wrong"}).status_code == 403


def test_live_state_vram_bars_and_statistics(client, services, fleet):
    client.patch("/config/nodes/1", json={"vram_gb": 24})
    fleet({1: {
        "state": "up", "probe_ms": 2.5, "last_error": None, "models": ["qwen3:8b"], "in_flight": 3, "waiting": 1,
        "loaded": [{"name": "qwen3:8b", "size_vram": 6_000_000_000}], "loads_observed": 1}})
    failed = record(status=502, error="connection refused")
    failed.node = ok_node = "ollama.test:11434"
    ok = record()
    ok.node = ok_node
    submit(services, failed, ok)
    html = client.get("/nodes").get_data(as_text=True)
    assert '<span class="badge badge-ok">up</span>' in html and "probe 2.5 ms" in html and "1 model listed" in html
    assert '<meter min="0" max="24.0" value="6.0" aria-label="qwen3:8b: 6.0 GB">' in html
    assert 'aria-label="ollama.test:11434: 6.0 of 24.0 GB used"' in html
    assert '<td class="num">3</td>' in html and '<td class="num">1</td>' in html
    assert '<span class="bad">1</span> <span class="muted">of 2</span>' in html and "connection refused" in html


def test_test_connection_tries_what_is_typed(htmx_client, csrf, upstreams):
    from .conftest import serve_models, tag

    serve_models(upstreams, "http://gpu-t:11434", [tag("llama3.2:1b")])
    ok = htmx_client.post("/nodes/test", data={"host": "gpu-t", "port": "11434"}, headers={"X-CSRF-Token": csrf})
    assert "Connected" in ok.get_data(as_text=True) and "1 model," in ok.get_data(as_text=True)
    bad = htmx_client.post("/nodes/test", data={"host": "gpu-t", "port": "0"}, headers={"X-CSRF-Token": csrf})
    assert "Cannot test: port must be" in bad.get_data(as_text=True)
