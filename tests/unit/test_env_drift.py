"""app.env_drift: which environment values the stored config does not use, and how they are worded."""
from __future__ import annotations

from app.config import load_settings
from app.env_drift import drift
from app.routing import AIRLLM, OLLAMA, Backend, RoutingTable


def stored(ollama=("127.0.0.1", 11434), airllm=("localhost", 8000), enabled=False, default=False) -> RoutingTable:
    return RoutingTable(ollama=Backend(OLLAMA, *ollama), airllm=Backend(AIRLLM, *airllm), airllm_enabled=enabled,
                        use_airllm_default=default, model_flags={}, version=7)


def test_nothing_set_in_the_environment_never_drifts():
    assert drift(load_settings({}), stored(ollama=("gpu-box", 1234), enabled=True)) == []


def test_the_same_values_do_not_drift():
    env = {"OLLAMA_HOST": "http://gpu-box:11434", "AIRLLM_HOST": "localhost", "AIRLLM_ENABLED": "false"}
    assert drift(load_settings(env), stored(ollama=("gpu-box", 11434))) == []


def test_ollama_host_differs_and_is_worded_for_the_log():
    [item] = drift(load_settings({"OLLAMA_HOST": "gpu-box"}), stored())
    assert (item.target, item.variables) == ("ollama", ("OLLAMA_HOST",))
    assert dict(item.env) == {"host": "gpu-box", "port": 11434}
    assert (item.env_text, item.stored_text) == ("gpu-box:11434", "127.0.0.1:11434")
    assert item.describe() == (
        "The environment (OLLAMA_HOST) names the Ollama target gpu-box:11434, but the stored 127.0.0.1:11434 is in "
        "use: the environment only seeds an empty database. To switch, press \"Use the environment's value\" on the "
        "dashboard's Overview or Connections page")


def test_a_port_alone_compares_the_port_only():
    [item] = drift(load_settings({"OLLAMA_PORT": "11500"}), stored(ollama=("gpu-box", 11434)))
    assert dict(item.env) == {"port": 11500} and (item.env_text, item.stored_text) == ("gpu-box:11500", "gpu-box:11434")
    assert drift(load_settings({"OLLAMA_PORT": "11434"}), stored(ollama=("gpu-box", 11434))) == []
    [both] = drift(load_settings({"OLLAMA_HOST": "gpu-box", "OLLAMA_PORT": "11500"}), stored())
    assert both.variables == ("OLLAMA_HOST", "OLLAMA_PORT") and both.env_text == "gpu-box:11500"


def test_airllm_variables_compare_only_what_they_set():
    env = {"AIRLLM_ENABLED": "true", "AIRLLM_HOST": "fd00::5", "OLLAMA_USE_AIRLLM": "1"}
    [item] = drift(load_settings(env), stored(airllm=("localhost", 9000)))
    assert (item.target, item.variables) == ("airllm", ("AIRLLM_ENABLED", "AIRLLM_HOST", "OLLAMA_USE_AIRLLM"))
    assert dict(item.env) == {"enabled": True, "host": "fd00::5", "use_airllm_default": True}
    assert dict(item.stored) == {"enabled": False, "host": "localhost", "use_airllm_default": False}
    assert item.env_text == "enabled, [fd00::5]:9000, AirLLM by default"  # the port is the stored one: not set
    assert item.stored_text == "disabled, localhost:9000, Ollama by default"


def test_both_targets_are_reported_ollama_first():
    env = {"OLLAMA_HOST": "a:1", "AIRLLM_PORT": "8001"}
    assert [d.target for d in drift(load_settings(env), stored())] == ["ollama", "airllm"]


def test_blank_variables_count_as_unset():
    assert load_settings({"OLLAMA_HOST": "  ", "AIRLLM_PORT": ""})["SEED_FROM_ENV"] == frozenset()


def test_a_node_pool_in_the_environment_is_not_read_as_one_ollama_target():
    env = {"OLLAMA_HOSTS": "gpu-a:11434,gpu-b:11434", "OLLAMA_HOST": "gpu-c", "AIRLLM_PORT": "8001"}
    assert [d.target for d in drift(load_settings(env), stored())] == ["airllm"]
