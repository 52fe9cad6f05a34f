"""The proxy's package and the AirLLM server's light modules never import torch."""

from __future__ import annotations

import subprocess
import sys

from tests.support.airllm_process import REPO_ROOT

LIGHT = ["app", "app.airllm_server", "app.airllm_server.config", "app.airllm_server.registry",
         "app.airllm_server.checkpoint", "app.airllm_server.engine", "app.airllm_server.views",
         "app.airllm_server.openai_views", "app.airllm_server.catalog", "app.airllm_server.batcher",
         "app.airllm_server.policy", "app.airllm_server.admission", "app.airllm_server.lifecycle",
         "app.airllm_server.tokenizers", "app.airllm_server.generation", "app.airllm_server.reporting",
         "app.airllm_server.runtime", "app.dashboard.airllm_panel"]


def test_importing_app_and_light_server_modules_does_not_load_torch():
    code = ("import importlib, sys\n"
            f"for name in {LIGHT!r}:\n    importlib.import_module(name)\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'airllm') if m in sys.modules)\n"
            "print(','.join(heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
