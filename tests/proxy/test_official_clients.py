"""The official `ollama` and `openai` clients against the real proxy (gunicorn + gevent) and a fake upstream."""
from __future__ import annotations

import hashlib

import ollama
import openai
import pytest


@pytest.fixture
def client(proxy):
    return ollama.Client(host=proxy.proxy_url)


@pytest.fixture
def oai(proxy):
    return openai.OpenAI(base_url=f"{proxy.proxy_url}/v1", api_key="ollama", max_retries=0)


def test_list_shows_upstream_models(client):
    names = [m.model for m in client.list().models]
    assert "llama3.2:1b" in names and "qwen2.5-coder:7b" in names


def test_show_returns_model_info_and_capabilities(client):
    shown = client.show("llama3.2:1b")
    assert shown.modelinfo is not None and "completion" in shown.capabilities


def test_generate_non_streaming(client):
    result = client.generate(model="llama3.2:1b", prompt="hi", options={"num_predict": 3})
    assert result.done and result.response == "ollama-0 ollama-1 ollama-2 "
    assert result.eval_count == 3


def test_generate_streaming_yields_every_chunk(client):
    parts = list(client.generate(model="llama3.2:1b", prompt="hi", stream=True, options={"num_predict": 4}))
    assert [p.response for p in parts[:-1]] == [f"ollama-{i} " for i in range(4)]
    assert parts[-1].done and parts[-1].done_reason == "stop"


def test_chat_streaming_and_not(client):
    messages = [{"role": "user", "content": "hello"}]
    whole = client.chat(model="llama3.2:1b", messages=messages, options={"num_predict": 2})
    assert whole.message.role == "assistant" and whole.message.content == "ollama-0 ollama-1 "
    parts = list(client.chat(model="llama3.2:1b", messages=messages, stream=True, options={"num_predict": 2}))
    assert "".join(p.message.content for p in parts) == "ollama-0 ollama-1 "
    assert all(p.message.role == "assistant" for p in parts)


def test_ps_lists_loaded_model(client):
    client.generate(model="llama3.2:1b", prompt="load me")
    assert "llama3.2:1b" in [m.model for m in client.ps().models]


def test_embed_and_legacy_embeddings(client):
    assert len(client.embed(model="nomic-embed-text", input=["a", "b"]).embeddings) == 2
    assert client.embeddings(model="nomic-embed-text", prompt="a").embedding == [0.1, 0.2, 0.3]


def test_pull_progress_copy_and_delete(client):
    progress = [p.status for p in client.pull("tinyllama:latest", stream=True)]
    assert progress[0] == "pulling manifest" and progress[-1] == "success"
    assert client.copy("tinyllama:latest", "tinyllama-copy:latest").status == "success"
    assert client.delete("tinyllama-copy:latest").status == "success"
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("tinyllama-copy:latest")
    assert err.value.status_code == 404


def test_unknown_model_raises_404_response_error(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.show("nope-xyz")
    assert err.value.status_code == 404 and "not found" in err.value.error
    with pytest.raises(ollama.ResponseError) as err:
        list(client.generate(model="nope-xyz", prompt="hi", stream=True))
    assert err.value.status_code == 404


def test_mid_stream_error_line_raises_status_minus_one(client):
    with pytest.raises(ollama.ResponseError) as err:
        for _ in client.generate(model="llama3.2:1b", prompt="hi", stream=True,
                                 options={"num_predict": 5, "fake_error_after": 2}):
            pass
    assert err.value.status_code == -1 and "crashed" in err.value.error


def test_upstream_breaking_mid_stream_raises_instead_of_truncating(client):
    received = []
    with pytest.raises(ollama.ResponseError) as err:
        for part in client.generate(model="llama3.2:1b", prompt="hi", stream=True,
                                    options={"num_predict": 5, "fake_break_after": 2}):
            received.append(part.response)
    assert received == ["ollama-0 ", "ollama-1 "]
    assert err.value.status_code == -1 and "interrupted" in err.value.error


def test_blob_upload_passes_through(client, fake_ollama, tmp_path):
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"\x00\x01binary" * 300_000)  # 2.4 MB: larger than MAX_REQUEST_MB, blobs are exempt
    digest = client.create_blob(blob)
    assert digest == "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest()
    assert fake_ollama.state.blobs[digest] == blob.stat().st_size


def test_openai_chat_completion_and_stream(oai):
    reply = oai.chat.completions.create(model="llama3.2:1b", messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=3)
    assert reply.choices[0].message.content == "ollama-0 ollama-1 ollama-2 " and reply.usage.total_tokens == 6
    stream = oai.chat.completions.create(model="llama3.2:1b", messages=[{"role": "user", "content": "hi"}],
                                         max_tokens=3, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ollama-0 ollama-1 ollama-2 "
    assert chunks[-1].usage.completion_tokens == 3


def test_openai_models_and_errors(oai):
    assert "llama3.2:1b" in [m.id for m in oai.models.list()]
    assert oai.models.retrieve("llama3.2:1b").id == "llama3.2:1b"
    with pytest.raises(openai.NotFoundError) as err:
        oai.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["type"] == "not_found_error"
    with pytest.raises(openai.BadRequestError):
        oai.chat.completions.create(model="llama3.2:1b", messages=[])


def test_openai_stream_broken_mid_way_ends_with_error_frame(proxy):
    import requests

    response = requests.post(f"{proxy.proxy_url}/v1/chat/completions", stream=True, timeout=10, json={
        "model": "llama3.2:1b", "stream": True, "max_tokens": 5, "fake_break_after": 2,
        "messages": [{"role": "user", "content": "hi"}]})
    frames = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert frames[-1].startswith(b'data: {"error": {"message": "upstream stream interrupted')
    assert b"data: [DONE]" not in frames


def test_default_client_reads_ollama_host(proxy, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{proxy.proxy_port}")
    assert "llama3.2:1b" in [m.model for m in ollama.Client().list().models]
