"""PROXY_API_KEYS: the proxy port wants a Bearer key (not forwarded upstream); liveness probes stay open; guessing
keys (or the dashboard's ADMIN_TOKEN) is throttled per client address."""
from __future__ import annotations

import ollama
import openai
import pytest
import requests

from tests.support.proxy_process import ProxyProcess
from tests.support.source_address import client_from

ADMIN_TOKEN = "admin-token-for-the-throttle-test"


@pytest.fixture(scope="module")
def locked_proxy(tmp_path_factory, fake_ollama):
    server = ProxyProcess(tmp_path_factory.mktemp("keys") / "k.db", workers=1, env={
        "OLLAMA_HOST": f"127.0.0.1:{fake_ollama.port}", "PROXY_API_KEYS": "key-one, key-two",
        "ADMIN_TOKEN": ADMIN_TOKEN}).start()
    yield server
    server.stop()


def test_missing_or_wrong_key_gets_401_in_each_api_shape(locked_proxy):
    native = requests.get(f"{locked_proxy.proxy_url}/api/tags", timeout=5)
    assert native.status_code == 401 and native.json() == {"error": "unauthorized: missing or invalid API key"}
    wrong = requests.post(f"{locked_proxy.proxy_url}/v1/chat/completions", timeout=5,
                          headers={"Authorization": "Bearer nope"}, json={"model": "x", "messages": []})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"


def test_liveness_probes_stay_open(locked_proxy):
    assert requests.get(f"{locked_proxy.proxy_url}/", timeout=5).text == "Ollama is running"
    assert requests.head(f"{locked_proxy.proxy_url}/", timeout=5).status_code == 200
    assert requests.get(f"{locked_proxy.proxy_url}/health", timeout=5).status_code == 200


def test_official_clients_with_a_key_work_and_the_key_stays_here(locked_proxy, fake_ollama, monkeypatch):
    monkeypatch.setenv("OLLAMA_API_KEY", "key-two")
    fake_ollama.reset()
    assert "llama3.2:1b" in [m.model for m in ollama.Client(host=locked_proxy.proxy_url).list().models]
    assert "Authorization" not in fake_ollama.requests_to("/api/tags")[-1].headers
    oai = openai.OpenAI(base_url=f"{locked_proxy.proxy_url}/v1", api_key="key-one", max_retries=0)
    assert oai.chat.completions.create(model="llama3.2:1b", messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=1).choices[0].message.content == "ollama-0 "
    monkeypatch.setenv("OLLAMA_API_KEY", "wrong")
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=locked_proxy.proxy_url).list()
    assert err.value.status_code == 401


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_key_guessing_gets_429_in_each_api_shape_and_good_clients_are_not_slowed(locked_proxy):
    url = locked_proxy.proxy_url
    guesser, good = client_from("127.0.0.21"), client_from("127.0.0.22")
    for attempt in range(10):
        assert guesser.get(f"{url}/api/tags", headers=bearer(f"guess-{attempt}"), timeout=5).status_code == 401
        assert good.get(f"{url}/api/tags", headers=bearer("key-one"), timeout=5).status_code == 200
    native = guesser.get(f"{url}/api/tags", headers=bearer("key-one"), timeout=5)  # blocked: even the right key
    assert native.status_code == 429 and "too many failed authentication" in native.json()["error"]
    assert 1 <= int(native.headers["Retry-After"]) <= 60
    openai_shape = guesser.post(f"{url}/v1/chat/completions", headers=bearer("guess"), timeout=5,
                                json={"model": "llama3.2:1b", "messages": [{"role": "user", "content": "x"}]})
    assert openai_shape.status_code == 429 and openai_shape.json()["error"]["type"] == "rate_limit_error"
    assert "Retry-After" in openai_shape.headers
    assert guesser.get(f"{url}/health", timeout=5).status_code == 200  # probes stay open
    timed = [good.get(f"{url}/api/tags", headers=bearer("key-two"), timeout=5) for _ in range(5)]
    assert all(r.status_code == 200 for r in timed)
    # No pause for clients with a right key (the login form pauses 1 s after a wrong token; this is well below).
    assert max(r.elapsed.total_seconds() for r in timed) < 0.8


def test_admin_token_guessing_on_the_dashboard_port_gets_429(locked_proxy):
    url = locked_proxy.dashboard_url
    guesser, good = client_from("127.0.0.23"), client_from("127.0.0.24")
    for attempt in range(10):
        assert guesser.get(f"{url}/stats", headers=bearer(f"guess-{attempt}"), timeout=5).status_code == 401
    refused = guesser.get(f"{url}/stats", headers=bearer(ADMIN_TOKEN), timeout=5)
    assert refused.status_code == 429 and "too many failed authentication" in refused.json()["error"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert good.get(f"{url}/stats", headers=bearer(ADMIN_TOKEN), timeout=5).status_code == 200
