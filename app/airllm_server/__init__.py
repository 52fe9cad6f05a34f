"""The AirLLM server: a separate Flask app serving big models layer by layer behind the Ollama API.

Importing this package is light (no torch, transformers or airllm); the engine imports them on first use.
It never imports the proxy's modules, and the proxy never imports it.
"""

from __future__ import annotations

import logging

from flask import Flask

from .config import Settings, apply_process_env

log = logging.getLogger(__name__)


def create_airllm_app(overrides: dict | None = None) -> Flask:
    """Build the app. ``overrides`` replaces Settings fields (lower case) or sets Flask config (upper case)."""
    overrides = dict(overrides or {})
    flask_config = {k: overrides.pop(k) for k in list(overrides) if k.isupper()}
    settings = Settings.from_env().with_overrides(overrides)
    apply_process_env(settings)

    from . import errors, openai_views, views
    from .engine import Engine
    from .registry import load_registry

    app = Flask(__name__)
    app.config.update(flask_config, AIRLLM_SETTINGS=settings, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.url_map.strict_slashes = False
    registry = load_registry(settings.models, settings.models_file, settings.shards_dir)
    app.extensions["airllm_engine"] = Engine(settings, registry)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(openai_views.bp)
    return app
