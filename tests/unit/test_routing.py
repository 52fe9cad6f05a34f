from app.routing import AIRLLM, OLLAMA, OLLAMA_FALLBACK, Backend, RoutingTable, choose_backends, \
    get_model_endpoint, normalize_model_name

OLLAMA_BACKEND = Backend(OLLAMA, "127.0.0.1", 11434)
AIRLLM_BACKEND = Backend(AIRLLM, "gpu.local", 8000)


def table(**kwargs):
    return RoutingTable(ollama=OLLAMA_BACKEND, airllm=AIRLLM_BACKEND, **kwargs)


def test_normalisation():
    assert normalize_model_name("llama3") == "llama3:latest"
    assert normalize_model_name("Llama3:LATEST") == "llama3:latest"
    assert normalize_model_name("registry:5000/ns/model") == "registry:5000/ns/model:latest"
    assert normalize_model_name("hf.co/org/m:Q4") == "hf.co/org/m:q4"


def test_flagged_model_goes_to_airllm_with_ollama_as_fallback():
    routes = choose_backends("llama3", table(airllm_enabled=True, model_flags={"llama3:latest": True}))
    assert routes == [(AIRLLM_BACKEND, AIRLLM), (OLLAMA_BACKEND, OLLAMA_FALLBACK)]


def test_disabled_service_ignores_flags():
    assert choose_backends("llama3", table(model_flags={"llama3:latest": True})) == [(OLLAMA_BACKEND, OLLAMA)]


def test_global_default_applies_to_models_without_a_flag():
    routes = table(airllm_enabled=True, use_airllm_default=True, model_flags={"small:latest": False})
    assert choose_backends("big", routes)[0][1] == AIRLLM
    assert choose_backends("small", routes)[0][1] == OLLAMA
    assert choose_backends(None, routes)[0][1] == OLLAMA


def test_get_model_endpoint_and_ipv6_urls():
    assert get_model_endpoint("x", table()) == "http://127.0.0.1:11434"
    assert Backend(OLLAMA, "::1", 11434).url == "http://[::1]:11434"
