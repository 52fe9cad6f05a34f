"""The dashboard's backend probes (requests, mocked with `responses`) and the merged model list."""
from __future__ import annotations

import requests

from app.dashboard.services import Probe, describe_error, filter_models, human_size, merged_models, probe
from app.health import probe_backend
from app.proxy.upstream import UpstreamClient
from app.routing import Backend, RoutingTable
from tests.support.proxy_process import free_port

from .conftest import serve_models, tag

OLLAMA = Backend("ollama", "ollama.test", 11434)
AIRLLM = Backend("airllm", "airllm.test", 8000)


def routing(enabled=True, flags=None, default=False):
    return RoutingTable(ollama=OLLAMA, airllm=AIRLLM, airllm_enabled=enabled, use_airllm_default=default,
                        model_flags=flags or {}, version=1)


def test_probe_reads_version_models_loaded_and_airllm_queue(upstreams):
    serve_models(upstreams, AIRLLM.url, [tag("big:70b")], loaded=["big:70b"], version="0.2",
                 health={"status": "ready", "queue": {"depth": 3, "running": None}})
    result = probe(AIRLLM)
    assert (result.reachable, result.version, result.error) == (True, "0.2", None)
    assert [m["name"] for m in result.models] == ["big:70b"] and [m["name"] for m in result.loaded] == ["big:70b"]
    assert result.queue == {"depth": 3, "running": None}
    assert result.rtt_ms is not None and result.rtt_ms >= 0
    assert [c.request.url for c in upstreams.calls] == [f"{AIRLLM.url}/api/version", f"{AIRLLM.url}/api/tags",
                                                        f"{AIRLLM.url}/api/ps", f"{AIRLLM.url}/health"]


def test_probe_uses_a_short_timeout(upstreams):
    serve_models(upstreams, OLLAMA.url, [])
    probe(OLLAMA)
    assert all(call.request.req_kwargs["timeout"] == (2.0, 4.0) for call in upstreams.calls)


def test_probe_reports_the_exact_failure_and_stops(upstreams):
    result = probe(OLLAMA)
    assert not result.reachable and result.error == "cannot connect to http://ollama.test:11434: connection refused"
    assert len(upstreams.calls) == 1  # no point asking for lists from a dead host
    upstreams.get(f"{OLLAMA.url}/api/version", body="<html>not ollama</html>")
    assert "did not answer with JSON" in probe(OLLAMA).error
    upstreams.replace("GET", f"{OLLAMA.url}/api/version", body=requests.ConnectTimeout("slow"))
    assert probe(OLLAMA).error == "cannot connect to http://ollama.test:11434: connection timed out after 2 s"
    upstreams.replace("GET", f"{OLLAMA.url}/api/version", body=requests.ReadTimeout("slow"))
    assert probe(OLLAMA).error == "no valid answer from http://ollama.test:11434: no answer within 4 s"


def test_dashboard_and_health_word_a_refused_connection_alike():
    """The Connections page and /health show the same text for the same dead port (real sockets, no mock)."""
    dead = Backend("ollama", "127.0.0.1", free_port())
    expected = f"cannot connect to http://127.0.0.1:{dead.port}: connection refused"
    assert probe(dead).error == expected
    assert probe_backend(UpstreamClient(), dead)["error"] == expected


def test_describe_error_names_dns_failures():
    exc = requests.ConnectionError("HTTPConnectionPool(host='x', port=1): Max retries exceeded (Caused by "
                                   "NameResolutionError(\"<urllib3.connection.HTTPConnection object at 0x7f>: "
                                   "Failed to resolve 'x' ([Errno -2] Name or service not known)\"))")
    assert describe_error(exc).startswith("name resolution failed (Failed to resolve 'x'")


def up(name, models, loaded=()):
    return Probe(name, f"http://{name}", reachable=True, models=[tag(m) for m in models],
                 loaded=[tag(m) for m in loaded])


def test_merged_list_marks_sources_locations_and_loaded():
    rows = {r.key: r for r in merged_models(routing(flags={"big:70b": True}),
                                            up("ollama", ["Llama3:latest", "small:1b"], loaded=["small:1b"]),
                                            up("airllm", ["big:70b", "llama3"], loaded=["big:70b"]))}
    assert set(rows) == {"llama3:latest", "small:1b", "big:70b"}  # llama3 and Llama3:latest are one model
    assert rows["llama3:latest"].on_ollama and rows["llama3:latest"].on_airllm
    assert rows["big:70b"].airllm_only and rows["big:70b"].runs_on == "AirLLM" and rows["big:70b"].warnings == []
    assert rows["small:1b"].loaded_on == ["Ollama"] and rows["big:70b"].loaded_on == ["AirLLM"]


def test_warnings():
    ollama = up("ollama", ["a:1", "b:1"])
    airllm = up("airllm", ["a:1", "only:70b"])
    rows = {r.key: r for r in merged_models(routing(flags={"b:1": True, "ghost:1": True}), ollama, airllm)}
    assert rows["b:1"].warnings == ["The AirLLM server does not list this model: requests fall back to Ollama."]
    assert rows["b:1"].runs_on == "Ollama (fallback)"
    assert rows["only:70b"].warnings == ["Only the AirLLM server has this model, but its AirLLM switch (last column) "
                                         "is off: requests go to Ollama and fail until the switch is on."]
    assert "Neither Ollama nor the AirLLM server lists this model." in rows["ghost:1"].warnings
    assert rows["a:1"].warnings == []
    disabled = {r.key: r for r in merged_models(routing(enabled=False, flags={"a:1": True}), ollama, airllm)}
    assert disabled["a:1"].warnings[0].startswith("AirLLM is on for this model, but the AirLLM service is disabled")
    assert disabled["a:1"].runs_on == "Ollama"
    down = Probe("airllm", "http://airllm", reachable=False, error="connection refused")
    rows = {r.key: r for r in merged_models(routing(flags={"a:1": True}), ollama, down)}
    assert rows["a:1"].warnings == ["The AirLLM server is unreachable: requests for this model fall back to Ollama."]


def test_airllm_only_model_warnings_name_what_to_turn_on():
    ollama, airllm = up("ollama", ["a:1"]), up("airllm", ["only:70b"])
    service_off = {r.key: r for r in merged_models(routing(enabled=False), ollama, airllm)}
    assert service_off["only:70b"].warnings == [
        "Only the AirLLM server has this model, but its AirLLM switch (last column) is off: requests go to Ollama "
        "and fail until the switch is on and the AirLLM service is enabled (Connections page)."]
    switched_on = {r.key: r for r in merged_models(routing(enabled=False, flags={"only:70b": True}), ollama, airllm)}
    assert switched_on["only:70b"].warnings == [
        "AirLLM is on for this model, but the AirLLM service is disabled (Connections page): requests go to Ollama, "
        "which does not have it, and fail."]
    routed = {r.key: r for r in merged_models(routing(flags={"only:70b": True}), ollama, airllm)}
    assert routed["only:70b"].warnings == []


def test_default_switch_applies_to_models_without_their_own():
    rows = {r.key: r for r in merged_models(routing(default=True, flags={"b:1": False}),
                                            up("ollama", ["a:1", "b:1"]), up("airllm", ["a:1", "b:1"]))}
    assert (rows["a:1"].airllm, rows["a:1"].flag, rows["a:1"].runs_on) == (True, None, "AirLLM")
    assert (rows["b:1"].airllm, rows["b:1"].flag, rows["b:1"].runs_on) == (False, False, "Ollama")


def test_filter_matches_every_word_in_name_family_or_location():
    rows = merged_models(routing(), up("ollama", ["qwen2.5-coder:7b", "llama3:8b"]), up("airllm", ["big:70b"]))
    assert [r.key for r in filter_models(rows, "CODER")] == ["qwen2.5-coder:7b"]
    assert [r.key for r in filter_models(rows, "llama 8b")] == ["llama3:8b"]
    assert [r.key for r in filter_models(rows, "airllm")] == ["big:70b"]
    assert [r.key for r in filter_models(rows, "")] == [r.key for r in rows]


def test_human_size():
    assert (human_size(None), human_size(512), human_size(4_920_000_000)) == ("—", "512 B", "4.9 GB")
