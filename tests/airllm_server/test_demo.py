"""The README's demo path: build the demo model with the script, serve it on CPU, flag it, see the AirLLM backend."""

from __future__ import annotations

import subprocess
import sys

import requests

from tests.conftest import wait_for_config_propagation
from tests.support.airllm_process import REPO_ROOT, AirLLMProcess


def test_demo_model_served_by_airllm_through_the_proxy(tmp_path, proxy, reset_routing):
    folder = tmp_path / "demo-model"
    made = subprocess.run([sys.executable, "scripts/make_demo_model.py", str(folder)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    assert f'AIRLLM_MODELS="demo={folder}"' in made.stdout
    with AirLLMProcess({"demo": folder}, shards_dir=tmp_path / "shards", env={"AIRLLM_DEVICE": "cpu"}) as server:
        dashboard = proxy.dashboard_url
        assert requests.post(f"{dashboard}/config/airllm/service", json={
            "enabled": True, "host": "127.0.0.1", "port": server.port}, timeout=5).ok
        assert requests.post(f"{dashboard}/config/model/airllm", json={"model_name": "demo", "enabled": True},
                             timeout=5).ok
        wait_for_config_propagation()
        reply = requests.post(f"{proxy.proxy_url}/api/generate", json={
            "model": "demo", "prompt": "Hello", "stream": False, "options": {"num_predict": 5}}, timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.headers["X-IntelliProxy-Backend"] == "airllm"
        assert reply.json()["eval_count"] >= 1
