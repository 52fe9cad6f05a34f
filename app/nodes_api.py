"""The node pool's JSON API on the dashboard port: `GET/POST /config/nodes`, `PATCH/DELETE /config/nodes/<id>`.

Same access and CSRF rules as the seed's config API (app/config_api.py): JSON bodies only, every write through
config_store.apply_change, so every worker routes with the new pool within a poll.
"""
from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy.exc import IntegrityError

from .config_store import apply_change, load_routing_table
from .dashboard.context import json_body, services
from .node_status import fleet_status, node_json
from .node_store import NodeConflict, NodeNotFound, add_node, remove_node, update_node
from .validation import validate_node_fields

bp = Blueprint("nodes_api", __name__)


def _answer(table, node_id: int, status: int = 200):
    """The node as this worker now sees it, with the engine's live view."""
    node = next(n for n in table.nodes if n.id == node_id)
    return jsonify(node_json(node, fleet_status(services()).get(node_id))), status


@bp.get("/config/nodes")
def nodes_list():
    """Every node, ordered by id, read from the database, with its live state (`unknown` without the engine)."""
    with services().session_factory() as session:
        table = load_routing_table(session)
    live = fleet_status(services())
    return jsonify({"nodes": [node_json(node, live.get(node.id)) for node in table.nodes]})


@bp.post("/config/nodes")
def node_create():
    """`{host, port[, name, enabled, vram_gb, num_parallel, weight]}` → 201 and the node."""
    fields = validate_node_fields(json_body())
    created = []
    table = apply_change(services(), lambda s: created.append(add_node(s, fields).id))
    return _answer(table, created[0], 201)


@bp.patch("/config/nodes/<int:node_id>")
def node_update(node_id: int):
    """Any subset of the node's fields."""
    fields = validate_node_fields(json_body(), partial=True)
    table = apply_change(services(), lambda s: update_node(s, node_id, fields))
    return _answer(table, node_id)


@bp.delete("/config/nodes/<int:node_id>")
def node_delete(node_id: int):
    """Remove a node (409 for the last one, or the last enabled one)."""
    removed = []
    apply_change(services(), lambda s: removed.append(remove_node(s, node_id)))
    return jsonify({"status": "ok", "deleted": {"id": node_id, "name": removed[0]}})


def conflict_json(exc: NodeConflict):
    """409 in the config API's error shape: `{"error": "<field>: <why>", "field": "<field>"}`."""
    return jsonify({"error": str(exc), "field": exc.field}), 409


def not_found_json(exc: NodeNotFound):
    return jsonify({"error": str(exc)}), 404


@bp.errorhandler(IntegrityError)
def integrity_conflict(_exc: IntegrityError):
    """Two workers adding the same node (or slot) at the same instant: the second loses, nothing changes."""
    return jsonify({"error": "the node conflicts with a change made at the same time: reload and retry"}), 409


def init_app(app) -> None:
    """Register the API and its error handlers (a conflict is also answered as 409 by POST /config/ollama)."""
    app.register_blueprint(bp)
    app.register_error_handler(NodeConflict, conflict_json)
    app.register_error_handler(NodeNotFound, not_found_json)
