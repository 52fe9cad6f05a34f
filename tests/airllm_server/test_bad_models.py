"""Broken registry entries and bad model folders give clear errors, and the server keeps serving the others."""

from __future__ import annotations

import ollama
import pytest


def test_health_reports_broken_entries_with_their_cause(server):
    broken = {b["name"]: b["error"] for b in server.health()["broken"]}
    assert "does not exist" in broken["missing:latest"]
    assert "not valid JSON" in broken["bad-config:latest"]
    assert "truncated" in broken["truncated:latest"]
    assert "dtype must be one of" in broken["badopt:latest"]
    assert "tiny:latest" in server.health()["models"]


@pytest.mark.parametrize("name, cause", [("missing", "does not exist"), ("bad-config", "not valid JSON"),
                                         ("truncated", "truncated")])
def test_requests_for_a_broken_entry_name_the_cause(server, name, cause):
    with pytest.raises(ollama.ResponseError) as err:
        ollama.Client(host=server.url).generate(name, "Hello")
    assert err.value.status_code == 500
    assert f"model '{name}:latest' is unavailable" in err.value.error and cause in err.value.error


def test_unknown_architecture_fails_to_load_with_a_clear_error(server):
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("unknown-arch", "Hello", options={"num_predict": 2})
    assert err.value.status_code == 500
    assert "failed to load model 'unknown-arch:latest'" in err.value.error
    assert "nosuchmodel" in err.value.error
    assert client.generate("tiny", "Hello", options={"num_predict": 2}).eval_count == 2


def test_weights_truncated_after_start_are_caught_at_load(server, bad_dirs):
    weights = bad_dirs["breaks-later"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    client = ollama.Client(host=server.url)
    with pytest.raises(ollama.ResponseError) as err:
        client.generate("breaks-later", "Hello", options={"num_predict": 2})
    assert err.value.status_code == 500 and "truncated" in err.value.error
    assert server.health()["last_error"] and "truncated" in server.health()["last_error"]
    assert client.generate("tiny", "Hello", options={"num_predict": 2}).eval_count == 2
