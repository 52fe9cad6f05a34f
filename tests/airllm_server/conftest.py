"""Fixtures for the AirLLM server: tiny models built offline once, and the real server as a subprocess."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("airllm")
pytest.importorskip("torch")

from tests.support.airllm_process import AirLLMProcess  # noqa: E402
from tests.support.tiny_model import build_tiny_model  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "airllm: needs torch + airllm; starts the AirLLM server as a subprocess")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/airllm_server" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.airllm)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """The tiny random Llama (3 layers, ~160k parameters) with a chat template."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory):
    """A second tiny model (different seed, no chat template) for switching and base-model behaviour."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "other", seed=1, chat_template=False)


@pytest.fixture(scope="session")
def bad_dirs(tmp_path_factory, model_dir):
    """Broken checkpoint folders, one per failure the issue names."""
    root = tmp_path_factory.mktemp("bad")
    bad_config = root / "bad-config"
    shutil.copytree(model_dir, bad_config)
    (bad_config / "config.json").write_text("{not json", encoding="utf-8")
    truncated = root / "truncated"
    shutil.copytree(model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    unknown = root / "unknown-arch"
    shutil.copytree(model_dir, unknown)
    config = json.loads((unknown / "config.json").read_text(encoding="utf-8"))
    config.update(model_type="nosuchmodel", architectures=["NoSuchModelForCausalLM"])
    (unknown / "config.json").write_text(json.dumps(config), encoding="utf-8")
    later = root / "breaks-later"
    shutil.copytree(model_dir, later)
    return {"missing": root / "does-not-exist", "bad-config": bad_config, "truncated": truncated,
            "unknown-arch": unknown, "breaks-later": later}


@pytest.fixture(scope="session")
def server(tmp_path_factory, model_dir, other_model_dir, bad_dirs):
    """One AirLLM server for the whole session: two good models, broken ones, and a waiting line of one."""
    registry = tmp_path_factory.mktemp("cfg") / "models.toml"
    registry.write_text(
        '[models."other:base"]\n'
        f'path = "{other_model_dir}"\n'
        'context_length = 256\n'
        '[models."unknown-arch"]\n'
        f'path = "{bad_dirs["unknown-arch"]}"\n'
        '[models."badopt"]\n'
        f'path = "{model_dir}"\n'
        'dtype = "float8"\n', encoding="utf-8")
    models = {"tiny": model_dir, "missing": bad_dirs["missing"], "bad-config": bad_dirs["bad-config"],
              "truncated": bad_dirs["truncated"], "breaks-later": bad_dirs["breaks-later"]}
    with AirLLMProcess(models, models_file=registry, shards_dir=tmp_path_factory.mktemp("shards"),
                       env={"AIRLLM_MAX_QUEUE": "1", "AIRLLM_MAX_BATCH": "2", "AIRLLM_THREADS": "10"}) as proc:
        yield proc
