"""The notice about environment values the stored config does not use, and its one-click button (Flask test client
on the real dashboard app; the start-up side is in tests/deploy/test_startup.py)."""
from __future__ import annotations

import pytest

from app.config_store import apply_change, config_as_json, set_airllm_service, set_ollama_target

from .conftest import close_app, csrf_token_of, make_app

NOTICE = "The environment names other settings"


@pytest.fixture
def drifted(tmp_path):
    """A dashboard whose environment set OLLAMA_HOST (ollama.test, the seed) and AIRLLM_ENABLED=true, while the
    database has since been changed to other values."""
    dispatcher, app = make_app(tmp_path, SEED_FROM_ENV=frozenset({"OLLAMA_HOST", "AIRLLM_ENABLED"}),
                               SEED_AIRLLM_ENABLED=True)
    services = dispatcher.services

    def change(session):
        set_ollama_target(session, "other.test", 11500)
        set_airllm_service(session, enabled=False)

    apply_change(services, change)
    yield app, services
    close_app(dispatcher)


def page_text(client, path: str) -> str:
    return client.get(path).get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/connections"])
def test_pages_show_what_the_environment_names_and_what_is_in_use(drifted, path):
    html = page_text(drifted[0].test_client(), path)
    assert NOTICE in html
    assert ("Ollama target: <code>OLLAMA_HOST</code> names <code>ollama.test:11434</code>; in use: "
            "<code>other.test:11500</code>.") in html
    assert "AirLLM service: <code>AIRLLM_ENABLED</code> names <code>enabled</code>; in use: <code>disabled</code>." in html
    assert html.count('name="csrf_token"') >= 2 and 'value="ollama"' in html and 'value="airllm"' in html


def test_no_notice_when_the_environment_set_nothing(client):
    assert NOTICE not in page_text(client, "/connections")


def test_the_button_stores_the_environment_value_for_that_target_only(drifted):
    app, services = drifted
    client = app.test_client()
    version = services.watcher.table.version
    response = client.post("/connections/use-environment", data={"target": "ollama", "next": "dashboard.overview",
                                                                  "csrf_token": csrf_token_of(client)})
    assert response.status_code == 303 and response.headers["Location"] == "/"
    table = services.watcher.table  # this worker follows at once; the version tells the others
    assert (table.ollama.host, table.ollama.port, table.airllm_enabled) == ("ollama.test", 11434, False)
    assert table.version == version + 1
    html = page_text(client, "/connections")
    assert "Ollama target:" not in html and "AirLLM service: <code>AIRLLM_ENABLED</code>" in html

    client.post("/connections/use-environment", data={"target": "airllm", "next": "https://evil.example/",
                                                       "csrf_token": csrf_token_of(client)})
    assert config_as_json(services.watcher.table)["airllm_enabled"] is True
    assert NOTICE not in page_text(client, "/connections")


def test_the_button_needs_the_csrf_token_and_changes_nothing_without_it(drifted):
    app, services = drifted
    response = app.test_client().post("/connections/use-environment", data={"target": "ollama"})
    assert response.status_code == 403
    assert services.watcher.refresh().ollama.host == "other.test"


def test_a_second_click_or_an_unknown_target_changes_nothing(drifted):
    app, services = drifted
    client = app.test_client()
    token = csrf_token_of(client)
    version = services.watcher.table.version
    for target in ("ollama", "ollama", "nodes"):
        response = client.post("/connections/use-environment", data={"target": target, "csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"] == "/connections"
    assert services.watcher.refresh().version == version + 1
