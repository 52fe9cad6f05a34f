"""``python -m app.airllm_server``: run the AirLLM server under gunicorn, one process with threads.

One process because the model and its lock live in that process; threads (gthread) so /health, /api/tags and
/api/ps answer while a generation holds the device, and queued requests can wait without blocking anything.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from gunicorn.app.base import BaseApplication

from .config import Settings


class AirLLMServer(BaseApplication):
    """A gunicorn application that builds the Flask app in its single worker."""

    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        host = f"[{self.settings.bind}]" if ":" in self.settings.bind else self.settings.bind
        for key, value in {
            "bind": f"{host}:{self.settings.port}", "workers": 1, "worker_class": "gthread",
            "threads": self.settings.worker_threads, "timeout": self.settings.timeout, "graceful_timeout": 30,
            "keepalive": 5, "loglevel": self.settings.log_level.lower(), "accesslog": "-",
            "proc_name": "airllm-server",
        }.items():
            self.cfg.set(key, value)

    def load(self):
        from . import create_airllm_app

        return create_airllm_app()


def main(argv: list[str] | None = None) -> int:
    """Start the server, or with --check validate the registry and print it as JSON."""
    parser = argparse.ArgumentParser(prog="python -m app.airllm_server", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="validate AIRLLM_MODELS/AIRLLM_MODELS_FILE and exit")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.check:
        from .config import apply_process_env
        from .registry import load_registry

        apply_process_env(settings)
        registry = load_registry(settings.models, settings.models_file, settings.shards_dir)
        print(json.dumps({"models": {e.name: str(e.path or e.hub_id) for e in registry},
                          "broken": [{"name": b.name, "error": b.error} for b in registry.broken]}, indent=2))
        return 1 if registry.broken else 0
    AirLLMServer(settings).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
