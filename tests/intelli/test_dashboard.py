"""The Routing and Performance pages: decisions, attribute and chain editing over HTMX (with CSRF), and the
category distribution."""
from __future__ import annotations

import html
import re

import pytest

CODER = "qwen2.5-coder:7b"


@pytest.fixture(scope="module")
def csrf(app_in_process):
    page = app_in_process.dash_get("/routing")
    assert page.status_code == 200
    return re.search(r'"X-CSRF-Token": "([^"]+)"', html.unescape(page.get_data(as_text=True))).group(1)


def hx_post(app, path: str, csrf: str, data: dict):
    return app.dash_post(path, data=data, headers={"HX-Request": "true", "X-CSRF-Token": csrf})


def test_routing_page_lists_models_chains_and_the_nav_link(app_in_process):
    text = app_in_process.dash_get("/routing").get_data(as_text=True)
    for name in ("qwen2.5-coder:7b", "deepseek-r1:14b", "llava:7b", "nomic-embed-text:latest"):
        assert name in text
    assert 'href="/routing"' in text and 'aria-current="page"' in text
    assert "Fallback chains" in text and "Try a prompt" in text
    # Parameters in Ollama's units: an embedding model of 137M is not "0.14 B" (nor a tiny one "0 B").
    assert '<td class="num">137M</td>' in text and '<td class="num">7.6B</td>' in text


def test_htmx_post_without_csrf_is_refused(app_in_process):
    r = app_in_process.dash_post("/routing/try", data={"prompt": "hi"}, headers={"HX-Request": "true"})
    assert r.status_code in (400, 403)


def test_try_a_prompt_shows_the_decision_and_reasons(app_in_process, csrf):
    r = hx_post(app_in_process, "/routing/try", csrf, {"prompt": "Write a Python function to parse CSV files"})
    text = html.unescape(r.get_data(as_text=True))
    assert r.status_code == 200 and "<html" not in text
    assert "<strong>qwen2.5-coder:7b</strong>" in text and "good at code" in text
    assert "excluded: embedding-only model" in text
    empty = hx_post(app_in_process, "/routing/try", csrf, {"prompt": "  "})
    assert "Type a prompt to classify." in empty.get_data(as_text=True)
    vision = hx_post(app_in_process, "/routing/try", csrf, {"prompt": "what is this", "image": "on"})
    assert "<strong>llava:7b</strong>" in vision.get_data(as_text=True)


def stored_row(app, name: str):
    from app.models import ModelAttributes

    with app.services.session_factory() as session:
        return session.get(ModelAttributes, name)


def test_edit_attributes_validates_and_applies(app_in_process, realistic_ollama, csrf):
    form = app_in_process.dash_get(f"/routing/model?model={CODER}&edit=1", headers={"HX-Request": "true"})
    assert 'name="speed"' in form.get_data(as_text=True)
    bad = hx_post(app_in_process, "/routing/model", csrf, {"model": CODER, "speed": "11", "complexity": "5",
                                                           "bias": "0", "categories": "code",
                                                           "capabilities": "completion"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 200 and "must be a whole number from 1 to 10" in text and 'name="speed"' in text
    assert app_in_process.resolver.catalog.snapshot.models[CODER].speed != 11
    good = app_in_process.dash_post("/routing/model", headers={"HX-Request": "true", "X-CSRF-Token": csrf}, data={
        "model": CODER, "speed": "2", "complexity": "9", "bias": "-5", "categories": ["code", "reasoning"],
        "capabilities": ["completion", "tools"], "enabled": "on"})
    assert good.status_code == 200 and good.headers.get("HX-Trigger") == "routing-changed"
    profile = app_in_process.resolver.catalog.snapshot.models[CODER]
    assert (profile.speed, profile.complexity, profile.bias, profile.categories, profile.edited) == \
        (2, 9, -5, ("code", "reasoning"), True)
    assert "edited" in good.get_data(as_text=True)
    # A refresh never overwrites an edited row; reset brings back the derived values.
    app_in_process.resolver.catalog.refresh_models()
    assert app_in_process.resolver.catalog.snapshot.models[CODER].speed == 2
    assert stored_row(app_in_process, CODER).edited is True
    realistic_ollama.reset()
    reset = hx_post(app_in_process, "/routing/model", csrf, {"model": CODER, "reset": "1"})
    assert reset.status_code == 200 and reset.headers.get("HX-Trigger") == "routing-changed"
    assert realistic_ollama.state.received == []  # re-derived from what the catalog knows: no call to Ollama
    profile = app_in_process.resolver.catalog.snapshot.models[CODER]
    assert (profile.speed, profile.edited, profile.bias, profile.categories) == (7, False, 0, ("code",))
    assert "edited" not in reset.get_data(as_text=True)
    # The row holds the derived values again (every worker reloads it), not just this worker's snapshot.
    row = stored_row(app_in_process, CODER)
    assert (row.speed, row.complexity, row.bias, row.edited, row.enabled) == \
        (7, profile.complexity, 0, False, True)


def test_reset_of_a_model_no_longer_installed_removes_its_row(app_in_process, csrf):
    from app.models import ModelAttributes, utcnow

    with app_in_process.services.session_factory.begin() as session:
        session.add(ModelAttributes(name="gone:1b", family="llama", parameter_b=1.0, speed=3, complexity=2,
                                    categories='["general"]', capabilities='["completion"]', bias=4,
                                    enabled=True, edited=True, updated_at=utcnow()))
    app_in_process.services.watcher.refresh(force=True)
    listed = app_in_process.dash_get("/config/model-attributes").get_json()["models"]
    assert any(m["name"] == "gone:1b" and not m["installed"] and m["edited"] for m in listed)
    reset = hx_post(app_in_process, "/routing/model", csrf, {"model": "gone:1b", "reset": "1"})
    assert reset.status_code == 200 and reset.get_data(as_text=True) == ""  # the row leaves the table
    assert stored_row(app_in_process, "gone:1b") is None
    listed = app_in_process.dash_get("/config/model-attributes").get_json()["models"]
    assert not any(m["name"] == "gone:1b" for m in listed)


def test_disabled_model_is_not_chosen(app_in_process):
    r = app_in_process.dash_post("/config/model-attributes", json={"model": CODER, "enabled": False})
    assert r.status_code == 200 and r.get_json()["model"]["enabled"] is False
    try:
        chosen = app_in_process.dash_post("/classify", json={"prompt": "Write a Python class"}).get_json()
        assert chosen["chosen"] != CODER
        assert any(c["model"] == CODER and "disabled" in c["excluded"] for c in chosen["excluded"])
    finally:
        app_in_process.dash_post("/config/model-attributes", json={"model": CODER, "reset": True})
    listed = app_in_process.dash_get("/config/model-attributes").get_json()["models"]
    assert any(m["name"] == CODER and m["installed"] and m["enabled"] for m in listed)
    bad = app_in_process.dash_post("/config/model-attributes", json={"model": CODER, "categories": ["poetry"]})
    assert bad.status_code == 400 and bad.get_json()["field"] == "categories"


def test_fallback_form_saves_refuses_loops_and_removes(app_in_process, csrf):
    saved = hx_post(app_in_process, "/routing/fallbacks", csrf, {"model": "alpha:1b", "chain": "beta:1b, gamma:1b"})
    text = saved.get_data(as_text=True)
    assert "Saved." in text and "beta:1b" in text
    loop = hx_post(app_in_process, "/routing/fallbacks", csrf, {"model": "gamma:1b", "chain": "alpha:1b"})
    text = loop.get_data(as_text=True)
    assert loop.status_code == 200 and "loop" in text and "aria-invalid" in text
    assert "gamma:1b" not in app_in_process.dash_get("/config/fallbacks").get_json()["fallbacks"]
    timeout = hx_post(app_in_process, "/routing/fallbacks/timeout", csrf, {"timeout": "abc"})
    assert "must be a number" in timeout.get_data(as_text=True)
    hx_post(app_in_process, "/routing/fallbacks/delete", csrf, {"model": "alpha:1b"})
    assert "alpha:1b" not in app_in_process.dash_get("/config/fallbacks").get_json()["fallbacks"]


def test_category_distribution_and_recent_decisions(app_in_process):
    for text in ("Write a Go function", "Write a haiku about snow", "hi there"):
        app_in_process.post("/api/generate", json={"model": "IntelliProxyLLM", "prompt": text, "stream": False})
    app_in_process.flush()
    fragment = app_in_process.dash_get("/routing/categories", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<progress" in fragment and "code" in fragment and "creative" in fragment
    page = html.unescape(app_in_process.dash_get("/routing").get_data(as_text=True))
    assert "Recent decisions" in page and "IntelliProxyLLM" in page and "runners-up" in page


def test_performance_page_renders_and_validates(app_in_process, csrf):
    page = app_in_process.dash_get("/performance")
    assert page.status_code == 200 and "Run a test" in page.get_data(as_text=True)
    bad = hx_post(app_in_process, "/performance/run", csrf, {"prompt": "", "mode": "all"})
    assert "Prompt is required" in bad.get_data(as_text=True)


def test_statistics_page_carries_the_category_card(app_in_process):
    text = app_in_process.dash_get("/statistics").get_data(as_text=True)
    assert "IntelliProxyLLM categories" in text and 'hx-get="/routing/categories"' in text


def test_performance_test_ignores_proxy_variables_from_the_environment(app_in_process, monkeypatch):
    """An HTTP(S)_PROXY in the service's environment must not take the test's loopback calls elsewhere."""
    from tests.support.proxy_process import free_port

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    r = app_in_process.dash_post("/performance-test", json={"prompt": "hi", "mode": "direct",
                                                            "model": "llama3.2:3b", "max_tokens": 2})
    result = r.get_json()["results"][0]
    assert r.status_code == 200 and result["status"] == "ok", result
    assert result["tokens"] == 2
