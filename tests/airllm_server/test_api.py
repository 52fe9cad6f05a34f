"""The Ollama and OpenAI APIs of the real AirLLM server, driven by the official clients."""

from __future__ import annotations

import ollama
import openai
import pytest
import requests

from tests.support.tiny_model import chat_prompt_ids, greedy_reference

GREEDY = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


def test_root_version_and_head_answer_like_ollama(server):
    root = requests.get(server.url + "/")
    assert root.status_code == 200 and root.text == "Ollama is running"
    assert root.headers["Content-Type"].startswith("text/plain")
    for path in ("/", "/api/version", "/api/tags"):
        head = requests.head(server.url + path)
        assert head.status_code == 200 and head.content == b""
    assert requests.get(server.url + "/api/version").json()["version"]


def test_unknown_path_and_wrong_method_are_plain_text(server):
    missing = requests.get(server.url + "/api/nothing")
    assert (missing.status_code, missing.text) == (404, "404 page not found")
    wrong = requests.get(server.url + "/api/generate")
    assert (wrong.status_code, wrong.text) == (405, "405 method not allowed")


def test_tags_lists_valid_models_with_real_sizes(client, model_dir):
    models = {m.model: m for m in client.list().models}
    assert {"tiny:latest", "other:base"} <= set(models)
    assert not {"missing:latest", "bad-config:latest", "truncated:latest", "badopt:latest"} & set(models)
    tiny = models["tiny:latest"]
    assert tiny.size == (model_dir / "model.safetensors").stat().st_size
    assert tiny.details.family == "llama" and tiny.details.format == "safetensors"
    assert tiny.details.quantization_level == "F32"
    assert len(tiny.digest) == 64


def test_parameter_size_matches_the_real_model(client, model_dir):
    from transformers import AutoModelForCausalLM

    real = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(str(model_dir)).parameters())
    shown = client.show("tiny")
    assert shown.modelinfo["general.parameter_count"] == real
    assert shown.details.parameter_size == f"{real / 1e3:.0f}K"


def test_show_has_model_info_capabilities_and_template(client):
    shown = client.show("tiny")
    assert shown.capabilities == ["completion"]
    assert shown.modelinfo["general.architecture"] == "llama"
    assert shown.modelinfo["llama.block_count"] == 3
    assert shown.modelinfo["llama.context_length"] == 512
    assert "add_generation_prompt" in shown.template


def test_show_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.show("nope-xyz")
    assert err.value.status_code == 404
    assert err.value.error == "model 'nope-xyz:latest' not found"


def test_generate_greedy_tokens_equal_transformers(client, model_dir):
    prompt_ids = chat_prompt_ids(model_dir, [{"role": "user", "content": "Hello world"}])
    expected_ids, expected_text = greedy_reference(model_dir, prompt_ids, 12)
    reply = client.generate("tiny", "Hello world", options=GREEDY)
    assert reply.context[: len(prompt_ids)] == prompt_ids
    assert reply.context[len(prompt_ids):] == expected_ids
    assert reply.response == expected_text
    assert reply.done_reason == "length" and reply.eval_count == 12
    assert reply.prompt_eval_count == len(prompt_ids)
    assert reply.eval_duration > 0 and reply.total_duration >= reply.eval_duration + reply.prompt_eval_duration


def test_generate_stream_sends_one_chunk_per_token_and_same_text(client):
    whole = client.generate("tiny", "The quick brown fox", options=GREEDY).response
    chunks = list(client.generate("tiny", "The quick brown fox", options=GREEDY, stream=True))
    assert all(not c.done for c in chunks[:-1]) and chunks[-1].done
    assert "".join(c.response for c in chunks) == whole
    assert len([c for c in chunks[:-1] if c.response]) >= 8     # text flows per token, not per word
    final = chunks[-1]
    assert final.done_reason == "length" and final.eval_count == 12 and final.response == ""


def test_raw_generate_skips_the_template(client, model_dir):
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(model_dir))("Numbers like 1 2 3")["input_ids"]
    expected_ids, _ = greedy_reference(model_dir, ids, 6)
    reply = client.generate("tiny", "Numbers like 1 2 3", raw=True, options={"temperature": 0, "num_predict": 6})
    assert reply.prompt_eval_count == len(ids)
    assert reply.context is None
    assert reply.eval_count == len(expected_ids)


def test_system_prompt_goes_through_the_template(client, model_dir):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    prompt_ids = chat_prompt_ids(model_dir, messages)
    reply = client.generate("tiny", "Hello", system="Be brief.", options=GREEDY)
    assert reply.context[: len(prompt_ids)] == prompt_ids


def test_chat_greedy_matches_transformers_stream_and_not(client, model_dir):
    messages = [{"role": "user", "content": "How are you today?"}, {"role": "assistant", "content": "Fine."},
                {"role": "user", "content": "And the system?"}]
    _, expected_text = greedy_reference(model_dir, chat_prompt_ids(model_dir, messages), 12)
    reply = client.chat("tiny", messages=messages, options=GREEDY)
    assert reply.message.role == "assistant" and reply.message.content == expected_text
    assert reply.done_reason == "length"
    chunks = list(client.chat("tiny", messages=messages, options=GREEDY, stream=True))
    assert all(c.message.role == "assistant" for c in chunks)
    assert "".join(c.message.content for c in chunks) == expected_text
    assert chunks[-1].done and chunks[-1].eval_count == 12


def test_stop_sequence_cuts_the_text(client):
    full = client.generate("tiny", "Hello", options={"temperature": 0, "num_predict": 20}).response
    stop = full[6:9]
    assert stop and stop in full
    cut = client.generate("tiny", "Hello", options={"temperature": 0, "num_predict": 20, "stop": [stop]})
    assert cut.response == full[: full.index(stop)]
    assert cut.done_reason == "stop"


def test_seed_makes_sampling_reproducible(client):
    options = {"temperature": 1.0, "top_k": 50, "top_p": 0.95, "seed": 42, "num_predict": 15}
    first = client.generate("tiny", "Hello", options=options).response
    assert client.generate("tiny", "Hello", options=options).response == first


def test_base_model_without_template_serves_raw_generate_but_not_chat(client):
    assert client.generate("other:base", "Hello", options=GREEDY).eval_count == 12
    with pytest.raises(ollama.ResponseError) as err:
        client.chat("other:base", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 400 and "does not support chat" in err.value.error


def test_prompt_longer_than_context_is_400(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("other:base", "Hello world " * 200, options={"num_predict": 1})
    assert err.value.status_code == 400
    assert "prompt is too long" in err.value.error and "256" in err.value.error


def test_format_json_is_a_clear_400(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("tiny", "Hello", format="json")
    assert err.value.status_code == 400 and "format" in err.value.error


def test_request_errors_match_ollama(server):
    assert requests.post(server.url + "/api/chat", json={}).json() == {"error": "model is required"}
    empty = requests.post(server.url + "/api/chat", data=b"")
    assert (empty.status_code, empty.json()) == (400, {"error": "missing request body"})
    bad = requests.post(server.url + "/api/generate", data=b"{oops")
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    unknown = requests.post(server.url + "/api/generate", json={"model": "nope", "prompt": "x"})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'nope' not found"})
    raw = requests.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "x", "raw": True,
                                                           "system": "s"})
    assert raw.json() == {"error": "raw mode does not support template, system, or context"}
    keep = requests.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "x", "keep_alive": "5 min"})
    assert keep.status_code == 400


def test_stream_default_is_ndjson_and_errors_come_before_it(server):
    resp = requests.post(server.url + "/api/generate", json={"model": "tiny", "prompt": "Hi",
                                                            "options": {"num_predict": 3}})
    assert resp.headers["Content-Type"] == "application/x-ndjson"
    lines = [line for line in resp.text.split("\n") if line]
    assert len(lines) >= 2 and '"done": true' in lines[-1]


def test_empty_prompt_loads_and_keep_alive_zero_unloads(client, server):
    loaded = client.generate("tiny", "")
    assert loaded.done and loaded.done_reason == "load"
    assert [m.model for m in client.ps().models] == ["tiny:latest"]
    unloaded = client.generate("tiny", "", keep_alive=0)
    assert unloaded.done_reason == "unload"
    assert client.ps().models == []
    assert server.health()["resident_model"] is None


def test_switching_models_keeps_one_resident(client, server):
    client.generate("tiny", "Hello", options={"num_predict": 2})
    assert server.health()["resident_model"] == "tiny:latest"
    client.generate("other:base", "Hello", options={"num_predict": 2})
    health = server.health()
    assert health["resident_model"] == "other:base"
    ps = client.ps().models
    assert [m.model for m in ps] == ["other:base"] and ps[0].size_vram == 0 and ps[0].expires_at


def test_keep_alive_expiry_unloads_the_model(client, server):
    import time

    client.generate("tiny", "Hello", options={"num_predict": 2}, keep_alive="1s")
    deadline = time.monotonic() + 15
    while server.health()["resident_model"] is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.health()["resident_model"] is None


def test_openai_chat_completions(server, model_dir):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama")
    messages = [{"role": "user", "content": "Hello world"}]
    _, expected = greedy_reference(model_dir, chat_prompt_ids(model_dir, messages), 10)
    reply = oa.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=10)
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 10
    stream = oa.chat.completions.create(model="tiny", messages=messages, temperature=0, max_tokens=10, stream=True,
                                        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.total_tokens == reply.usage.total_tokens


def test_openai_sse_ends_with_done_and_errors_use_the_envelope(server):
    resp = requests.post(server.url + "/v1/chat/completions", json={
        "model": "tiny", "stream": True, "max_tokens": 3, "messages": [{"role": "user", "content": "Hi"}]})
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    frames = [f for f in resp.text.split("\n\n") if f]
    assert all(f.startswith("data: ") for f in frames) and frames[-1] == "data: [DONE]"
    missing = requests.post(server.url + "/v1/chat/completions", json={"model": "nope", "messages": [
        {"role": "user", "content": "Hi"}]})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    empty = requests.post(server.url + "/v1/chat/completions", json={"model": "tiny", "messages": []})
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "invalid_request_error"


def test_openai_models(server):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama")
    assert {"tiny:latest", "other:base"} <= {m.id for m in oa.models.list()}
    assert oa.models.retrieve("tiny:latest").id == "tiny:latest"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("nope")


def test_malformed_stream_options_is_a_400_before_any_device_time_and_the_next_request_runs(server):
    for bad in (True, "yes", [1]):
        resp = requests.post(server.url + "/v1/chat/completions", json={
            "model": "tiny", "stream": True, "stream_options": bad, "max_tokens": 2,
            "messages": [{"role": "user", "content": "Hi"}]}, timeout=30)
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and "stream_options" in error["message"]
    assert server.health()["queue"]["batch_size"] == 0 and server.health()["queue"]["depth"] == 0
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", timeout=60, max_retries=0)
    reply = oa.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], max_tokens=2)
    assert reply.usage.completion_tokens == 2


def test_openai_completions_are_served(server, model_dir):
    prompt_ids = chat_prompt_ids(model_dir, [{"role": "user", "content": "Hello world"}])
    _, expected = greedy_reference(model_dir, prompt_ids, 8)
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)
    reply = oa.completions.create(model="tiny", prompt="Hello world", temperature=0, max_tokens=8)
    assert reply.object == "text_completion" and reply.choices[0].text == expected
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.prompt_tokens == len(prompt_ids) and reply.usage.completion_tokens == 8
    chunks = list(oa.completions.create(model="tiny", prompt="Hello world", temperature=0, max_tokens=8,
                                        stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == expected
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens == 8


@pytest.mark.parametrize("path", ["/api/embed", "/api/embeddings"])
def test_ollama_embedding_endpoints_say_they_are_not_supported(server, path):
    resp = requests.post(server.url + path, json={"model": "tiny", "input": "Hello", "prompt": "Hello"})
    assert resp.status_code == 501
    assert set(resp.json()) == {"error"}
    assert "not supported by the AirLLM backend" in resp.json()["error"] and path in resp.json()["error"]


def test_openai_embeddings_say_they_are_not_supported(server):
    oa = openai.OpenAI(base_url=server.url + "/v1", api_key="ollama", max_retries=0)
    with pytest.raises(openai.APIStatusError) as err:
        oa.embeddings.create(model="tiny", input="Hello")
    assert err.value.status_code == 501
    body = err.value.response.json()["error"]
    assert body["type"] == "not_supported_error" and "not supported by the AirLLM backend" in body["message"]
