"""Headers, ports, unknown paths and bad input: the proxy is transparent and says clearly what is wrong."""
from __future__ import annotations

import http.client
import json

import requests


def test_root_and_head_probes(proxy):
    response = requests.get(f"{proxy.proxy_url}/", timeout=5)
    assert response.text == "Ollama is running" and response.headers["Content-Type"].startswith("text/plain")
    for path in ("/", "/api/version", "/api/tags"):
        head = requests.head(f"{proxy.proxy_url}{path}", timeout=5)
        assert head.status_code == 200 and head.content == b""


def test_host_header_is_rewritten_for_a_strict_upstream(proxy, fake_ollama):
    fake_ollama.reset()
    response = requests.get(f"{proxy.proxy_url}/api/version?ts=1700000000", timeout=5,
                            headers={"Host": "ollama.example.com"})
    assert response.status_code == 200, "a bare 403 means the proxy forwarded the public Host header"
    seen = fake_ollama.requests_to("/api/version")[-1]
    assert seen.headers["Host"] == f"127.0.0.1:{fake_ollama.port}" and seen.query == "ts=1700000000"


def test_authorization_passes_and_hop_by_hop_headers_are_dropped(proxy, fake_ollama):
    fake_ollama.reset()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.proxy_port, timeout=5)
    conn.request("GET", "/api/tags", headers={"Authorization": "Bearer secret", "Connection": "keep-alive, X-Drop",
                                              "X-Drop": "1", "Keep-Alive": "timeout=5", "X-Keep": "yes"})
    response = conn.getresponse()
    response.read()
    assert response.status == 200 and response.getheader("X-IntelliProxy-Backend") == "ollama"
    assert response.getheader("Keep-Alive") is None
    seen = fake_ollama.requests_to("/api/tags")[-1].headers
    assert seen["Authorization"] == "Bearer secret" and seen["X-Keep"] == "yes"
    assert "X-Drop" not in seen and "Keep-Alive" not in seen
    conn.close()


def test_unknown_paths_are_forwarded_not_answered_with_html(proxy):
    response = requests.get(f"{proxy.proxy_url}/api/does-not-exist", timeout=5)
    assert response.status_code == 404 and response.text == "404 page not found"


def test_only_the_api_surface_is_relayed_and_the_rest_gets_a_logged_404(proxy, fake_ollama):
    fake_ollama.reset()
    probes = [("GET", "/config/airllm"), ("POST", "/config/ollama"), ("GET", "/metrics"), ("GET", "/favicon.ico"),
              ("GET", "/api"), ("GET", "/v1"), ("GET", "/api/../config/airllm"), ("GET", "/v1/./models")]
    for method, path in probes:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.proxy_port, timeout=5)
        conn.request(method, path, body=b"{}" if method == "POST" else None)  # sent as written: no dot removal
        response = conn.getresponse()
        assert response.status == 404, path
        assert response.getheader("Content-Type") == "application/json; charset=utf-8"
        message = f"{path} is not part of the Ollama or OpenAI API"
        error = json.loads(response.read())["error"]
        assert (error["message"] == message and error["type"] == "not_found_error" if path.startswith("/v1/")
                else error == message), path
        conn.close()
    proxy.wait_for_log(lambda r: r["endpoint"] == "/api/../config/airllm" and r["status"] == 404)
    relayed = {r.path for r in fake_ollama.state.received}
    assert not relayed & ({path for _, path in probes} | {"/models"}), relayed


def test_config_is_not_reachable_on_the_proxy_port_and_proxy_not_on_the_dashboard_port(proxy):
    assert requests.get(f"{proxy.proxy_url}/config/airllm", timeout=5).status_code == 404
    assert requests.post(f"{proxy.proxy_url}/config/ollama", json={"host": "evil", "port": 1},
                         timeout=5).status_code == 404
    assert requests.get(f"{proxy.dashboard_url}/api/tags", timeout=5).status_code == 404
    # The face is chosen by the socket the request arrived on, never by what the client writes in Host.
    disguised = requests.get(f"{proxy.proxy_url}/config/airllm", timeout=5,
                             headers={"Host": f"127.0.0.1:{proxy.dashboard_port}"})
    assert disguised.status_code == 404 and "ollama_host" not in disguised.text
    assert requests.get(f"{proxy.dashboard_url}/config/airllm", timeout=5).status_code == 200


def test_health_on_both_ports(proxy, fake_ollama):
    for url in (proxy.proxy_url, proxy.dashboard_url):
        report = requests.get(f"{url}/health", timeout=5).json()
        assert report["proxy"]["status"] == "ok"
        assert report["ollama"]["reachable"] is True and report["ollama"]["version"] == "0.12.0-ollama"
        assert report["ollama"]["rtt_ms"] >= 0


def test_malformed_json_gets_400_in_each_api_shape(proxy):
    native = requests.post(f"{proxy.proxy_url}/api/chat", data=b'{"model": ', timeout=5)
    assert native.status_code == 400 and "invalid JSON" in native.json()["error"]
    openai_style = requests.post(f"{proxy.proxy_url}/v1/chat/completions", data=b"[1,2", timeout=5)
    assert openai_style.status_code == 400
    assert openai_style.json()["error"]["type"] == "invalid_request_error"


def test_deeply_nested_json_gets_400_in_each_api_shape_and_is_logged(proxy):
    nested = b'{"model": "llama3.2:1b", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    native = requests.post(f"{proxy.proxy_url}/api/generate", data=nested, timeout=10)
    assert native.status_code == 400
    assert native.json() == {"error": "invalid JSON in request body: nested too deeply"}
    openai_style = requests.post(f"{proxy.proxy_url}/v1/chat/completions", data=b"[" * 100_000, timeout=10)
    assert openai_style.status_code == 400 and openai_style.json()["error"]["type"] == "invalid_request_error"
    for endpoint in ("/api/generate", "/v1/chat/completions"):
        row = proxy.wait_for_log(lambda r, e=endpoint: r["endpoint"] == e and r["status"] == 400
                                 and "nested too deeply" in (r["error"] or ""))
        assert row["method"] == "POST"


def test_wrong_types_and_non_object_bodies(proxy):
    response = requests.post(f"{proxy.proxy_url}/api/generate", json={"model": 42, "prompt": "x"}, timeout=5)
    assert response.status_code == 400 and response.json() == {"error": "model must be a string, not int"}
    response = requests.post(f"{proxy.proxy_url}/api/generate", json=["model"], timeout=5)
    assert response.status_code == 400 and "JSON object" in response.json()["error"]


def test_missing_model_goes_to_ollama_which_answers_as_ollama_does(proxy):
    response = requests.post(f"{proxy.proxy_url}/api/chat", json={}, timeout=5)
    assert response.status_code == 400 and response.json() == {"error": "model is required"}
    empty = requests.post(f"{proxy.proxy_url}/api/chat", data=b"", timeout=5)
    assert empty.status_code == 400 and empty.json() == {"error": "missing request body"}


def test_oversized_json_body_gets_413(proxy):
    body = json.dumps({"model": "llama3.2:1b", "prompt": "x" * (1024 * 1024 + 10)})
    response = requests.post(f"{proxy.proxy_url}/api/generate", data=body, timeout=10)
    assert response.status_code == 413 and "MAX_REQUEST_MB" in response.json()["error"]
    response = requests.post(f"{proxy.proxy_url}/v1/chat/completions", data=body, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["type"] == "invalid_request_error"
