"""Fixtures for IntelliProxyLLM: a realistic model set on a fake Ollama with per-model faults, and the app
built in-process by the real factory (proxy and dashboard, real database, real background refreshers)."""
from __future__ import annotations

import time

import pytest
from werkzeug.test import Client

from tests.support.fake_ollama import FakeOllama, _Handler
from tests.support.proxy_process import free_port

REALISTIC_MODELS = [
    {"name": "qwen2.5-coder:7b", "family": "qwen2", "parameter_size": "7.6B",
     "capabilities": ["completion", "tools", "insert"]},
    {"name": "deepseek-r1:14b", "family": "qwen2", "parameter_size": "14.8B", "capabilities": ["completion", "thinking"]},
    {"name": "llava:7b", "family": "llama", "parameter_size": "7.2B", "capabilities": ["completion", "vision"]},
    {"name": "llama3.2:3b", "family": "llama", "parameter_size": "3.2B", "capabilities": ["completion", "tools"]},
    {"name": "llama3.1:8b", "family": "llama", "parameter_size": "8.0B", "capabilities": ["completion", "tools"]},
    {"name": "nomic-embed-text:latest", "family": "nomic-bert", "parameter_size": "137M",
     "capabilities": ["embedding"]},
]


class _FaultyHandler(_Handler):
    """Per-model faults from the model entry's `faults`: status (answer that status), delay_ms (stay silent
    first), break_after (cut the stream after that many lines). Requests for other models are unaffected."""

    def _parse(self, body):
        req = super()._parse(body)
        if isinstance(req, dict):
            model = self.state.model(req.get("model") or "") if isinstance(req.get("model"), str) else None
            faults = (model or {}).get("faults") or {}
            if faults.get("delay_ms"):
                time.sleep(faults["delay_ms"] / 1000)
            options = req.setdefault("options", {}) if isinstance(req.get("options", {}), dict) else {}
            if "status" in faults:
                options["fake_status"] = req["fake_status"] = faults["status"]
            if "break_after" in faults:
                options["fake_break_after"] = req["fake_break_after"] = faults["break_after"]
        return req


def faulty_ollama(name: str, models: list) -> FakeOllama:
    """A FakeOllama whose models may carry `faults`."""
    fake = FakeOllama(name, models=models)
    fake.server.RequestHandlerClass = type(f"Faulty_{name}", (_FaultyHandler,), {"state": fake.state})
    return fake.start()


def set_faults(fake: FakeOllama, model: str, **faults) -> None:
    entry = fake.state.model(model)
    if faults:
        entry["faults"] = faults
    else:
        entry.pop("faults", None)


LOOPBACK = {"REMOTE_ADDR": "127.0.0.1"}


class InProcess:
    """The real app (create_app) driven by werkzeug's test client on its proxy and dashboard ports."""

    def __init__(self, dispatcher):
        self.app = dispatcher
        self.services = dispatcher.services
        settings = self.services.settings
        self.proxy = Client(dispatcher)
        self.proxy_base = f"http://127.0.0.1:{settings['PROXY_PORT']}"
        self.dashboard = Client(dispatcher)
        self.dashboard_base = f"http://127.0.0.1:{settings['DASHBOARD_PORT']}"
        self.resolver = self.services.extras["intelli"]

    def post(self, path: str, json=None, **kw):
        """The whole reply, read and closed (closing files the request record, as a WSGI server does)."""
        response = self.proxy.post(path, json=json, base_url=self.proxy_base, **kw)
        response.get_data()
        response.close()
        return response

    def get(self, path: str, **kw):
        return self.proxy.get(path, base_url=self.proxy_base, **kw)

    def dash_get(self, path: str, **kw):
        return self.dashboard.get(path, base_url=self.dashboard_base, environ_base=LOOPBACK, **kw)

    def dash_post(self, path: str, **kw):
        return self.dashboard.post(path, base_url=self.dashboard_base, environ_base=LOOPBACK, **kw)

    def refresh(self) -> None:
        self.services.watcher.refresh(force=True)
        self.resolver.catalog.refresh_models()

    def flush(self) -> None:
        self.services.recorder.flush()

    def close(self) -> None:
        self.resolver.catalog.stop()
        self.services.watcher.stop()
        self.services.recorder.stop()
        self.services.engine.dispose()


def build_in_process(tmp_path, ollama: FakeOllama, airllm: FakeOllama | None = None, **overrides) -> InProcess:
    from app.factory import create_app

    settings = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'intelli.db'}",
        "SEED_OLLAMA_HOST": "127.0.0.1", "SEED_OLLAMA_PORT": ollama.port,
        "SEED_AIRLLM_HOST": "127.0.0.1", "SEED_AIRLLM_PORT": airllm.port if airllm else free_port(),
        "SEED_AIRLLM_ENABLED": False, "SEED_USE_AIRLLM_DEFAULT": False,
        "PROXY_PORT": free_port(), "DASHBOARD_PORT": free_port(), "PROXY_API_KEYS": frozenset(),
        "ADMIN_TOKEN": "", "TRUSTED_PROXY_HOPS": 0, "TELEMETRY_FLUSH_SECONDS": 3600.0,
        "CATALOG_POLL_SECONDS": 3600.0, "CONFIG_POLL_SECONDS": 3600.0, "STORE_PROMPTS": False,
        "CLASSIFIER_MODEL": "", "SECRET_KEY": "test-secret",
    }
    settings.update(overrides)
    harness = InProcess(create_app(settings))
    assert harness.resolver.catalog.wait_ready(10)
    harness.refresh()
    return harness


@pytest.fixture(scope="module")
def realistic_ollama():
    fake = faulty_ollama("ollama", REALISTIC_MODELS)
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def second_ollama():
    """Another upstream (the AirLLM server's place) with a model the first one lacks."""
    fake = faulty_ollama("airllm", [
        {"name": "llama3.1:70b", "family": "llama", "parameter_size": "70.6B", "capabilities": ["completion"]},
        {"name": "llama3.2:3b", "family": "llama", "parameter_size": "3.2B", "capabilities": ["completion", "tools"]},
    ])
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def app_in_process(tmp_path_factory, realistic_ollama, second_ollama):
    harness = build_in_process(tmp_path_factory.mktemp("intelli"), realistic_ollama, second_ollama)
    yield harness
    harness.close()
