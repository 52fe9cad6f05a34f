"""The seed's config JSON API on the dashboard port: read and change targets and per-model flags."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .config_store import (apply_change, config_as_json, load_routing_table, set_airllm_service,
                           set_model_airllm, set_ollama_target)
from .dashboard.context import json_body, services

bp = Blueprint("config_api", __name__)


def _apply(change):
    """Save one validated change (apply_change) and answer with the whole config as this worker now sees it."""
    return jsonify({"status": "ok", **config_as_json(apply_change(services(), change))})


@bp.get("/config/airllm")
def get_config():
    """The whole routing config, read from the database (not this worker's snapshot)."""
    with services().session_factory() as session:
        return jsonify(config_as_json(load_routing_table(session)))


@bp.post("/config/ollama")
def update_ollama():
    """`{host, port}`: where Ollama runs."""
    body = json_body()
    return _apply(lambda s: set_ollama_target(s, body.get("host"), body.get("port")))


@bp.post("/config/airllm/service")
def update_airllm_service():
    """`{enabled, host, port}` (and optionally `use_airllm_default`): the AirLLM server."""
    body = json_body()
    return _apply(lambda s: set_airllm_service(s, body.get("enabled"), body.get("host"), body.get("port"),
                                               body.get("use_airllm_default")))


@bp.post("/config/model/airllm")
def update_model_flag():
    """`{model_name, enabled}`: route one model to the AirLLM server (or back to Ollama)."""
    body = json_body()
    return _apply(lambda s: set_model_airllm(s, body.get("model_name"), body.get("enabled")))
