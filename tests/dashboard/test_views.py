"""Pages and fragments through Flask's test client: full page on navigation, fragment on HTMX requests."""
from __future__ import annotations

import re

import pytest

from app.config_store import load_routing_table
from app.dashboard.nav import NAV_ITEMS

from .conftest import AIRLLM, OLLAMA, csrf_token_of, record, serve_models, submit, tag

PAGES = [  # URL, page template, fragment template, the fragment's root element
    ("/", "dashboard/overview.html", "dashboard/_overview.html", '<div id="overview"'),
    ("/models", "dashboard/models.html", "dashboard/_model_rows.html", '<tbody id="model-rows"'),
    ("/statistics", "dashboard/statistics.html", "dashboard/_stats_table.html", '<div id="stats-table"'),
    ("/statistics/charts", "dashboard/statistics.html", "dashboard/_charts.html", '<div id="charts"'),
    ("/log", "dashboard/log.html", "dashboard/_log_rows.html", '<tbody id="log-rows"'),
]


def table(services):
    with services.session_factory() as session:
        return load_routing_table(session)


@pytest.fixture
def both_up(upstreams):
    serve_models(upstreams, OLLAMA, [tag("llama3.2:1b"), tag("qwen2.5-coder:7b", "qwen2", "7.6B")],
                 loaded=["llama3.2:1b"], version="0.12.6")
    serve_models(upstreams, AIRLLM, [tag("llama3.1:70b", params="70.6B"), tag("llama3.2:1b")],
                 version="0.1.0-airllm",
                 health={"status": "ready", "queue": {"running": {"model": "llama3.1:70b"}, "waiting": [], "depth": 2}})
    return upstreams


@pytest.mark.parametrize("path,page,fragment,root", PAGES)
def test_navigation_gets_the_full_page(client, rendered, both_up, path, page, fragment, root):
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert rendered == [page]
    assert html.startswith("<!doctype html>") and "<nav" in html and root in html  # the page includes it
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize("path,page,fragment,root", PAGES)
def test_htmx_request_gets_only_the_fragment(htmx_client, rendered, both_up, path, page, fragment, root):
    response = htmx_client.get(path)
    assert response.status_code == 200
    assert rendered == [fragment]
    assert response.get_data(as_text=True).lstrip().startswith(root)


def test_boosted_request_is_a_navigation(htmx_client, rendered, both_up):
    htmx_client.get("/models", headers={"HX-Boosted": "true"})
    assert rendered[0] == "dashboard/models.html"


def test_nav_bar_lists_every_page_in_order(client, both_up):
    html = client.get("/connections").get_data(as_text=True)
    nav = html[html.index("<nav"):html.index("</nav>")]
    labels = re.findall(r'<a href="[^"]+"[^>]*>([^<]+)</a>', nav)
    assert labels[:4] == ["Overview", "Connections", "Nodes", "Models"]
    for wanted in ("Statistics", "Request log", "API"):
        assert wanted in labels
    assert [label for label, _ in NAV_ITEMS if label in labels] == labels
    assert 'aria-current="page">Connections<' in nav


def test_every_page_says_it_is_loopback_only_without_admin_token(client, both_up):
    for path in ("/", "/connections", "/nodes", "/models", "/statistics", "/log", "/api-reference"):
        assert b"answers only clients on this machine (loopback)" in client.get(path).data, path


# -- Overview -------------------------------------------------------------------------------------------------

def test_overview_shows_health_loaded_models_queue_and_totals(client, services, both_up):
    submit(services, record(eval_count=30), record(status=500, error="boom", eval_count=None),
           record(model="llama3.1:70b", backend="airllm", eval_count=12))
    html = client.get("/").get_data(as_text=True)
    assert "0.12.6" in html and "0.1.0-airllm" in html
    assert re.search(r"Loaded now</dt><dd>\s*<span class=\"chip\">llama3.2:1b</span>", html)
    assert "2 waiting, generating for" in html and "llama3.1:70b" in html
    assert re.search(r'id="total-requests">3<', html)
    assert re.search(r'id="total-errors">1<', html)
    assert re.search(r'id="total-tokens">42<', html)
    assert 'hx-trigger="every 5s"' in html


def test_overview_shows_the_exact_error_of_an_unreachable_backend(client, upstreams):
    html = client.get("/").get_data(as_text=True)
    assert "unreachable" in html
    assert "cannot connect to http://ollama.test:11434: connection refused" in html


# -- Connections ----------------------------------------------------------------------------------------------

def test_connections_form_has_the_labels_the_issue_names(client):
    html = client.get("/connections").get_data(as_text=True)
    for label in ("Ollama host", "Ollama port", "AirLLM host", "AirLLM port", "AirLLM enabled"):
        match = re.search(rf'<label for="([^"]+)">{label}</label>', html)
        assert match, label
        assert f'id="{match.group(1)}"' in html
    assert "Test connection" in html and "Save Ollama connection" in html


def test_saving_the_ollama_form_changes_the_target_everywhere(htmx_client, services, csrf):
    response = htmx_client.post("/connections/ollama", data={"host": "gpu-box.lan", "port": "11500"},
                                headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "config-changed"
    assert "Saved." in response.get_data(as_text=True)
    assert (table(services).ollama.host, table(services).ollama.port) == ("gpu-box.lan", 11500)
    assert services.watcher.table.ollama.port == 11500  # this worker switched at once


def test_invalid_port_shows_an_inline_error_and_changes_nothing(htmx_client, services, csrf):
    before = table(services)
    response = htmx_client.post("/connections/ollama", data={"host": "", "port": "70000"},
                                headers={"X-CSRF-Token": csrf})
    html = response.get_data(as_text=True)
    assert response.status_code == 200  # htmx swaps only 2xx: the form with its errors
    assert "Ollama port must be an integer between 1 and 65535" in html
    assert "Ollama host must not be empty" in html
    assert html.count('aria-invalid="true"') == 2
    assert 'value="70000"' in html  # what was typed stays in the field
    assert "HX-Trigger" not in response.headers
    after = table(services)
    assert (after.ollama, after.version) == (before.ollama, before.version)


def test_apply_change_bumps_the_version_once_and_rolls_back_a_refused_change(services):
    """The one way every view saves config: one transaction, one version bump, this worker refreshed."""
    from app.config_store import apply_change, set_airllm_service, set_ollama_target
    from app.validation import ValidationError

    before = table(services)
    new = apply_change(services, lambda s: set_ollama_target(s, "10.1.2.3", 11500))
    assert new is services.watcher.table and new.version == before.version + 1
    assert (new.ollama.host, new.ollama.port) == ("10.1.2.3", 11500) == (table(services).ollama.host,
                                                                         table(services).ollama.port)

    def half_valid(session):
        set_airllm_service(session, enabled=True)
        set_ollama_target(session, port=0)

    with pytest.raises(ValidationError):
        apply_change(services, half_valid)
    after = table(services)
    assert (after.version, after.airllm_enabled) == (new.version, False)


def test_form_post_without_htmx_gets_the_whole_page(client, services):
    csrf = csrf_token_of(client)
    response = client.post("/connections/ollama", data={"host": "10.0.0.9", "port": "x", "csrf_token": csrf})
    assert response.status_code == 400
    assert b"<nav" in response.data and b"Ollama port must be an integer" in response.data


def test_saving_the_airllm_form(htmx_client, services, csrf):
    response = htmx_client.post("/connections/airllm", data={"enabled": "on", "host": "10.1.2.3", "port": "8001"},
                                headers={"X-CSRF-Token": csrf})
    assert "AirLLM is enabled" in response.get_data(as_text=True)
    now = table(services)
    assert (now.airllm_enabled, now.airllm.host, now.airllm.port, now.use_airllm_default) == (
        True, "10.1.2.3", 8001, False)
    htmx_client.post("/connections/airllm", data={"host": "10.1.2.3", "port": "8001"}, headers={"X-CSRF-Token": csrf})
    assert table(services).airllm_enabled is False  # an unticked checkbox is "off"


def test_test_connection_shows_version_and_model_count_before_saving(htmx_client, services, csrf, upstreams):
    serve_models(upstreams, "http://10.9.9.9:7777", [tag("a:1"), tag("b:2")], version="0.13.1")
    response = htmx_client.post("/connections/ollama/test", data={"host": "10.9.9.9", "port": "7777"},
                                headers={"X-CSRF-Token": csrf})
    text = response.get_data(as_text=True)
    assert "Connected" in text and "version 0.13.1" in text and "2 models" in text
    assert table(services).ollama.host == "ollama.test"  # testing saves nothing


def test_test_connection_shows_the_exact_failure(htmx_client, csrf, upstreams):
    upstreams.get("http://10.9.9.9:7777/api/version", status=404, body="404 page not found")
    text = htmx_client.post("/connections/airllm/test", data={"host": "10.9.9.9", "port": "7777"},
                            headers={"X-CSRF-Token": csrf}).get_data(as_text=True)
    assert "Failed:" in text and "HTTP 404 from http://10.9.9.9:7777/api/version: 404 page not found" in text
    text = htmx_client.post("/connections/airllm/test", data={"host": "bad host", "port": "0"},
                            headers={"X-CSRF-Token": csrf}).get_data(as_text=True)
    assert "Cannot test" in text and "must be an integer between 1 and 65535" in text


# -- Models ---------------------------------------------------------------------------------------------------

def enable_airllm(services, **flags):
    from app.config_store import apply_change, set_airllm_service, set_model_airllm

    def change(session):
        set_airllm_service(session, enabled=True)
        for name, on in flags.items():
            set_model_airllm(session, name, on)

    apply_change(services, change)


def test_models_page_merges_both_lists(client, services, both_up):
    enable_airllm(services)
    html = client.get("/models").get_data(as_text=True)
    rows = re.findall(r'<tr class="model-row[^"]*" data-model="([^"]+)"', html)
    assert rows == ["llama3.1:70b", "llama3.2:1b", "qwen2.5-coder:7b"]
    only = html[html.index('data-model="llama3.1:70b"'):html.index('data-model="llama3.2:1b"')]
    assert "AirLLM only" in only and "70.6B" in only and "Q4_K_M" in only and "4.9 GB" in only
    # The service is on, the model's own switch is off: the warning names the switch, not the service.
    assert ("Only the AirLLM server has this model, but its AirLLM switch (last column) is off: requests go to "
            "Ollama and fail until the switch is on.") in only
    both = html[html.index('data-model="llama3.2:1b"'):html.index('data-model="qwen2.5-coder:7b"')]
    assert 'chip-ok">Ollama<' in both  # loaded on Ollama now


def test_each_toggle_is_a_checkbox_labelled_with_the_model_name(client, both_up):
    html = client.get("/models").get_data(as_text=True)
    for name in ("llama3.1:70b", "llama3.2:1b", "qwen2.5-coder:7b"):
        assert re.search(rf'<input type="checkbox" class="switch" id="airllm-toggle-{re.escape(name)}"', html)
        assert f'<label for="airllm-toggle-{name}" class="visually-hidden">{name}</label>' in html


def test_toggle_saves_and_answers_with_only_that_row(htmx_client, services, csrf, both_up):
    enable_airllm(services)
    response = htmx_client.post("/models/airllm", data={"model": "llama3.1:70b", "enabled": "on"},
                                headers={"X-CSRF-Token": csrf})
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith("<tr") and html.count("<tr") == 1
    assert 'data-model="llama3.1:70b"' in html and " checked" in html
    assert ">AirLLM<" in html  # runs on AirLLM now
    assert response.headers["HX-Trigger"] == "config-changed"
    assert table(services).model_flags == {"llama3.1:70b": True}
    assert services.watcher.table.uses_airllm("llama3.1:70b")
    html = htmx_client.post("/models/airllm", data={"model": "llama3.1:70b"},
                            headers={"X-CSRF-Token": csrf}).get_data(as_text=True)
    assert " checked" not in html and table(services).model_flags == {"llama3.1:70b": False}


def test_flag_for_a_model_the_airllm_server_lacks_warns_of_the_fallback(client, services, both_up):
    enable_airllm(services, **{"qwen2.5-coder:7b": True})
    html = client.get("/models").get_data(as_text=True)
    row = html[html.index('data-model="qwen2.5-coder:7b"'):]
    assert "The AirLLM server does not list this model: requests fall back to Ollama." in row
    assert "Ollama (fallback)" in row


def test_any_flag_while_the_service_is_disabled_warns(client, services, both_up):
    from app.config_store import apply_change, set_model_airllm

    apply_change(services, lambda session: set_model_airllm(session, "llama3.1:70b", True))
    html = client.get("/models").get_data(as_text=True)
    assert "The AirLLM service is disabled" in html
    row = html[html.index('data-model="llama3.1:70b"'):html.index('data-model="llama3.2:1b"')]
    assert "AirLLM is on for this model, but the AirLLM service is disabled" in row


def test_filter_box_swaps_only_matching_rows(htmx_client, both_up):
    html = htmx_client.get("/models?q=QWEN").get_data(as_text=True)
    assert html.lstrip().startswith('<tbody id="model-rows"')
    assert re.findall(r'data-model="([^"]+)"', html) == ["qwen2.5-coder:7b"]
    assert "No model matches" in htmx_client.get("/models?q=zzz").get_data(as_text=True)


def test_names_from_upstream_are_escaped(client, upstreams):
    evil = '<img src=x onerror=alert(1)>'
    serve_models(upstreams, OLLAMA, [tag(evil, family="<b>fam</b>")], loaded=[evil])
    html = client.get("/models").get_data(as_text=True)
    assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>fam</b>" not in html
    assert evil not in client.get("/").get_data(as_text=True)


# -- Statistics and the log -----------------------------------------------------------------------------------

def test_statistics_table_per_model_and_backend(client, services):
    submit(services, record(duration_ms=100, eval_count=50, eval_duration_ns=1_000_000_000),
           record(duration_ms=300, eval_count=50, eval_duration_ns=1_000_000_000),
           record(backend="ollama-fallback", duration_ms=900, ttfb_ms=80),
           record(model="other:1b", status=404, streamed=False, eval_count=None, error=None))
    html = client.get("/statistics").get_data(as_text=True)
    table_html = html[html.index('id="stats-table"'):]
    assert "llama3.2:1b" in table_html and "other:1b" in table_html and "all backends" in table_html
    assert "200 ms" in table_html  # mean of 100 and 300
    assert "50.0" in table_html  # tokens/s: 100 tokens in 2 s
    assert re.search(r'class="num bad">1<', table_html)  # the 404
    assert "<div id=\"charts\" class=\"charts\" data-series='{" in html


def test_statistics_ranges(htmx_client, services):
    import time as _time

    submit(services, record(started_wall=_time.time() - 7200))
    assert "No requests in the last hour" in htmx_client.get("/statistics?range=hour").get_data(as_text=True)
    assert "llama3.2:1b" in htmx_client.get("/statistics?range=day").get_data(as_text=True)
    html = htmx_client.get("/statistics/charts?chart=day&model=llama3.2:1b").get_data(as_text=True)
    assert '"step_s": 900' in html and '"model": "llama3.2:1b"' in html


def test_request_log_rows_filters_and_live_refresh(htmx_client, services):
    submit(services, record(model="llama3.2:1b"), record(model="qwen2.5-coder:7b", backend="airllm", status=502,
                                                          error="cannot reach the AirLLM server"))
    html = htmx_client.get("/log").get_data(as_text=True)
    assert 'hx-trigger="every 2s"' in html and 'hx-include="#log-filters"' in html
    assert html.index("qwen2.5-coder:7b") < html.index("llama3.2:1b")  # newest first
    filtered = htmx_client.get("/log?backend=airllm").get_data(as_text=True)
    assert "qwen2.5-coder:7b" in filtered and "llama3.2:1b" not in filtered
    assert "llama3.2:1b" in htmx_client.get("/log?status=ok").get_data(as_text=True)
    assert "llama3.2:1b" not in htmx_client.get("/log?status=5xx").get_data(as_text=True)
    assert "No request matches" in htmx_client.get("/log?model=nothing").get_data(as_text=True)
    for bad in ("²", "٥٠٢"):  # Unicode digits: isdigit() is true, int() may refuse; the filter is ignored
        response = htmx_client.get(f"/log?status={bad}")
        assert response.status_code == 200 and "qwen2.5-coder:7b" in response.get_data(as_text=True)


def test_request_log_shows_and_filters_the_node_with_its_reason(client, htmx_client, services):
    on_a, on_b = record(model="llama3.2:1b"), record(model="qwen2.5-coder:7b")
    on_a.node, on_a.route_reason = "gpu-a", "loaded"
    on_b.node, on_b.route_reason = "gpu-b", "retry after gpu-a: connection refused"
    submit(services, on_a, on_b)
    page = client.get("/log").get_data(as_text=True)
    assert '<label for="log-node">Node</label>' in page and '<option value="gpu-b">gpu-b</option>' in page
    assert '<span class="node-name" title="retry after gpu-a: connection refused">gpu-b</span>' in page
    only_a = htmx_client.get("/log?node=gpu-a").get_data(as_text=True)
    assert "llama3.2:1b" in only_a and "qwen2.5-coder:7b" not in only_a and ">loaded</span>" in only_a
    assert "No request matches" in htmx_client.get("/log?node=gpu-z").get_data(as_text=True)


def test_prompts_are_hidden_unless_stored(tmp_path):
    from .conftest import close_app, make_app

    for store, expected in ((False, False), (True, True)):
        dispatcher, app = make_app(tmp_path / str(store), STORE_PROMPTS=store)
        try:
            dispatcher.services.recorder.sinks[0].store_prompts = store
            long_prompt = "<script>alert('x')</script>" + "y" * 3000
            submit(dispatcher.services, record(prompt=long_prompt))
            html = app.test_client().get("/log").get_data(as_text=True)
            assert ("&lt;script&gt;alert(" in html) is expected
            assert "<script>alert(" not in html
            assert ("y" * 2100) not in html  # truncated
        finally:
            close_app(dispatcher)


def test_clear_button_empties_the_log(htmx_client, services, csrf):
    submit(services, record(), record())
    response = htmx_client.post("/requests/clear", headers={"X-CSRF-Token": csrf})
    assert response.headers["HX-Trigger"] == "log-cleared"
    assert "Log cleared (2 requests)" in response.get_data(as_text=True)
    assert "llama3.2:1b" not in htmx_client.get("/log").get_data(as_text=True)
    assert "llama3.2:1b" in htmx_client.get("/statistics").get_data(as_text=True)  # statistics stay


# -- API page -------------------------------------------------------------------------------------------------

def test_api_page_fills_in_the_proxy_host_and_port(client, services, upstreams):
    serve_models(upstreams, OLLAMA, [tag("nomic-embed-text:latest"), tag("mistral:7b")])
    html = client.get("/api-reference", base_url="http://localhost:9999").get_data(as_text=True)
    port = services.settings["PROXY_PORT"]
    assert f"curl http://localhost:{port}/api/chat" in html
    assert f"OLLAMA_HOST=http://localhost:{port} ollama run mistral:7b" in html
    assert f'Client(host="http://localhost:{port}")' in html
    assert f'OpenAI(base_url="http://localhost:{port}/v1"' in html
