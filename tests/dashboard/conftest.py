"""Fixtures for the dashboard: the real factory's dashboard Flask app on a temp SQLite database, Flask test
clients (plain, HTMX, remote), `responses` standing in for Ollama and the AirLLM server, and record helpers."""
from __future__ import annotations

import time

import pytest
import responses
from flask import template_rendered
from jinja2 import StrictUndefined

from app.factory import create_app
from app.telemetry.records import RequestRecord

OLLAMA = "http://ollama.test:11434"
AIRLLM = "http://airllm.test:8000"


def tag(name: str, family: str = "llama", params: str = "8.0B", quant: str = "Q4_K_M", size: int = 4_900_000_000):
    """One /api/tags entry in Ollama's shape."""
    return {"name": name, "model": name, "size": size, "digest": "0" * 64, "modified_at": "2026-01-01T00:00:00Z",
            "details": {"format": "gguf", "family": family, "families": [family], "parameter_size": params,
                        "quantization_level": quant}}


def make_app(tmp_path, **overrides):
    settings = {
        "TESTING": True,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'dash.db'}",
        "SECRET_KEY": "test-secret",
        "SEED_OLLAMA_HOST": "ollama.test", "SEED_OLLAMA_PORT": 11434,
        "SEED_AIRLLM_HOST": "airllm.test", "SEED_AIRLLM_PORT": 8000,
        "TELEMETRY_FLUSH_SECONDS": 3600.0,  # tests flush by hand
        "CONFIG_POLL_SECONDS": 3600.0,
        "NODE_PROBES": False,  # the pool's background probes would look up ollama.test for the rest of the run
    }
    settings.update(overrides)
    dispatcher = create_app(settings)
    app = dispatcher.dashboard_app.app
    app.jinja_env.undefined = StrictUndefined  # a fragment missing a variable fails loudly
    return dispatcher, app


def close_app(dispatcher) -> None:
    """Stop what create_app started (IntelliProxyLLM's catalog refresher, which would otherwise poll ollama.test
    for the rest of the run, the config watcher, the telemetry flusher) and close the database connections."""
    svc = dispatcher.services
    intelli = svc.extras.get("intelli")
    if intelli is not None:
        intelli.catalog.stop()
    fleet = svc.extras.get("fleet")
    if fleet is not None:
        fleet.stop()
    svc.watcher.stop()
    svc.recorder.stop()
    svc.engine.dispose()


@pytest.fixture
def dispatcher_and_app(tmp_path):
    dispatcher, app = make_app(tmp_path)
    yield dispatcher, app
    close_app(dispatcher)


@pytest.fixture
def app(dispatcher_and_app):
    return dispatcher_and_app[1]


@pytest.fixture
def services(dispatcher_and_app):
    return dispatcher_and_app[0].services


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def htmx_client(app):
    client = app.test_client()
    client.environ_base["HTTP_HX_REQUEST"] = "true"
    return client


def csrf_token_of(client) -> str:
    """The CSRF token of a test client's session (the one every page puts in <body hx-headers>)."""
    client.get("/connections")  # a page: it puts the token in <body hx-headers> and the session
    with client.session_transaction() as session:
        return session["csrf"]


@pytest.fixture
def csrf(htmx_client):
    """A CSRF token for `htmx_client`'s session."""
    return csrf_token_of(htmx_client)


@pytest.fixture
def upstreams():
    """Ollama and the AirLLM server as `responses` mocks; an unregistered URL is 'connection refused'."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def serve_models(rsps, base: str, models: list[dict], loaded: list[str] = (), version: str = "0.12.0",
                 health: dict | None = None):
    rsps.get(f"{base}/api/version", json={"version": version})
    rsps.get(f"{base}/api/tags", json={"models": models})
    rsps.get(f"{base}/api/ps", json={"models": [m for m in models if m["name"] in loaded]})
    if health is not None:
        rsps.get(f"{base}/health", json=health)


@pytest.fixture
def rendered(app):
    """Names of the templates rendered during the test (Flask's template_rendered signal)."""
    names: list[str] = []

    def record(sender, template, context, **extra):
        names.append(template.name)

    template_rendered.connect(record, app)
    yield names
    template_rendered.disconnect(record, app)


def record(model="llama3.2:1b", backend="ollama", status=200, duration_ms=120.0, ttfb_ms=15.0, streamed=True,
           eval_count=40, eval_duration_ns=800_000_000, prompt_tokens=12, error=None, prompt=None, endpoint="/api/chat",
           started_wall=None, client="127.0.0.1"):
    """A finished RequestRecord as the proxy would submit it."""
    r = RequestRecord(method="POST", endpoint=endpoint, client=client, model=model, backend=backend, status=status)
    if started_wall is not None:
        r.started_wall = started_wall
    r.started = time.perf_counter() - duration_ms / 1000
    r.first_byte = None if ttfb_ms is None else r.started + ttfb_ms / 1000
    r.finished = r.started + duration_ms / 1000
    r.streamed, r.error, r.prompt = streamed, error, prompt
    r.eval_count, r.eval_duration_ns, r.prompt_tokens = eval_count, eval_duration_ns, prompt_tokens
    return r


class FleetStatus:
    """A fixed answer in place of the routing engine (`services.extras["fleet"]`): the dashboard only calls
    status(), {node id: {state, probe_ms, last_error, models, loaded, in_flight, waiting, loads_observed}}, and
    the engine's own answer depends on live probes of hosts that do not exist here."""

    def __init__(self, status: dict):
        self._status = status

    def status(self) -> dict:
        return self._status


@pytest.fixture
def fleet(services, monkeypatch):
    """`fleet(status)` shows that status on the dashboard; `fleet(None)`: as without a routing engine. The real
    engine is put back after the test (before the app is closed)."""
    def use(status: dict | None) -> None:
        monkeypatch.setitem(services.extras, "fleet", None if status is None else FleetStatus(status))

    return use


def submit(services, *records):
    for r in records:
        services.recorder.submit(r)
    assert services.recorder.flush() == len(records)
