"""The Nodes page: every Ollama node of the pool, live (state, VRAM, in flight, rates, errors), with forms to add,
edit, disable and remove nodes and a "Test connection" button. Writes go through config_store.apply_change."""
from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from flask_htmx import make_response as htmx_response

from ..config_store import apply_change, load_routing_table
from ..node_status import fleet_status, node_rows
from ..node_store import NodeConflict, NodeNotFound, add_node, remove_node, update_node
from ..routing import OLLAMA, Backend
from ..telemetry.node_stats import node_totals, node_rates
from ..validation import check_node_fields, validate_host, validate_port
from . import bp
from .context import get_session, htmx, render_page_or_fragment, services
from .services import check_connection
from .views import _collect

NODES_CHANGED = "nodes-changed"
FORM_FIELDS = ("name", "host", "port", "vram_gb", "num_parallel", "weight")


def _context(form: dict | None = None) -> dict:
    session = get_session()
    table = load_routing_table(session)
    rows = node_rows(table.nodes, fleet_status(services()), node_totals(session), node_rates(session))
    return {"rows": rows, "form": form or blank_form()}


def blank_form() -> dict:
    return {"node_id": None, "values": {"name": "", "host": "", "port": "11434", "vram_gb": "", "num_parallel": "1",
                                        "weight": "1", "enabled": True}, "errors": {}, "saved": None}


def _edit_form(node) -> dict:
    values = {"name": node.name, "host": node.host, "port": str(node.port),
              "vram_gb": "" if node.vram_gb is None else f"{node.vram_gb:g}", "num_parallel": str(node.num_parallel),
              "weight": f"{node.weight:g}", "enabled": node.enabled}
    return {"node_id": node.id, "values": values, "errors": {}, "saved": None}


def _typed() -> dict:
    """The form as typed; an empty name means "host:port", an empty VRAM size means unknown."""
    typed = {name: request.form.get(name, "").strip() for name in FORM_FIELDS}
    typed["enabled"] = "enabled" in request.form
    return typed


def _node(node_id: int):
    node = next((n for n in load_routing_table(get_session()).nodes if n.id == node_id), None)
    if node is None:
        abort(404)
    return node


@bp.get("/nodes")
def nodes():
    """The pool, refreshed every two seconds, and the form to add a node."""
    return render_page_or_fragment("dashboard/nodes.html", "dashboard/_node_rows.html", **_context())


@bp.get("/nodes/form")
def node_form():
    """The add form, or with `?id=` the edit form of that node (swapped in place of the form)."""
    node_id = request.args.get("id", type=int)
    form = blank_form() if node_id is None else _edit_form(_node(node_id))
    return render_page_or_fragment("dashboard/nodes.html", "dashboard/_node_form.html", **_context(form))


def _save(node_id: int | None):
    """Validate every field, save when all pass (a conflict shows on its field), answer with the form."""
    typed = _typed()
    body = {k: v for k, v in typed.items() if not (k == "name" and not v)}
    values, errors = check_node_fields(body)
    if not errors:
        try:
            apply_change(services(), (lambda s: add_node(s, values)) if node_id is None
                         else (lambda s: update_node(s, node_id, values)))
        except NodeConflict as exc:
            errors[exc.field] = exc.message
        except NodeNotFound:
            abort(404)
    if errors:
        form = {"node_id": node_id, "values": typed, "errors": errors, "saved": None}
    else:
        verb = "Added" if node_id is None else "Saved"
        form = {**blank_form(), "saved": f"{verb} {values['host']}:{values['port']}."}
    if htmx and not htmx.boosted:
        body_html = render_template("dashboard/_node_form.html", form=form)
        # 200 even with errors: htmx swaps only 2xx answers, and the form is what should show them.
        return htmx_response(body_html) if errors else htmx_response(body_html, trigger=NODES_CHANGED)
    return render_template("dashboard/nodes.html", **_context(form)), 400 if errors else 200


@bp.post("/nodes")
def node_create():
    """Add a node from the form."""
    return _save(None)


@bp.post("/nodes/<int:node_id>")
def node_update(node_id: int):
    """Save the edit form of one node."""
    return _save(node_id)


def _row_action(change):
    """Enable/disable/remove: the refreshed rows; a refused change (the last node) is a 409 the page flashes."""
    try:
        apply_change(services(), change)
    except NodeConflict as exc:
        return htmx_response(exc.message, 409) if htmx else (render_template("dashboard/nodes.html", **_context()), 409)
    except NodeNotFound:
        abort(404)
    if htmx and not htmx.boosted:
        return htmx_response(render_template("dashboard/_node_rows.html", **_context()), trigger=NODES_CHANGED)
    return redirect(url_for("dashboard.nodes"), 303)


@bp.post("/nodes/<int:node_id>/enabled")
def node_enabled(node_id: int):
    """Enable (`enabled=on`) or disable a node: a disabled node gets no new requests."""
    enabled = request.form.get("enabled") == "on"
    return _row_action(lambda s: update_node(s, node_id, {"enabled": enabled}))


@bp.post("/nodes/<int:node_id>/delete")
def node_delete(node_id: int):
    """Remove a node from the pool (never the last one)."""
    return _row_action(lambda s: remove_node(s, node_id))


@bp.post("/nodes/test")
def node_test():
    """Try the host and port typed in the form (saved or not): /api/version, model count, or the failure."""
    values, errors = _collect({"host": lambda: validate_host(request.form.get("host", ""), "host"),
                               "port": lambda: validate_port(request.form.get("port", ""), "port")})
    result = None if errors else check_connection(Backend(OLLAMA, values["host"], values["port"]))
    return render_template("dashboard/_test_result.html", which="node", errors=errors, result=result)
