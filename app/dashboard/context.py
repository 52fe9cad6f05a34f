"""Per-request helpers shared by the dashboard's views: services, the DB session, page-or-fragment rendering."""
from __future__ import annotations

from flask import current_app, g, jsonify, make_response, render_template, request
from flask_htmx import HTMX
from sqlalchemy.orm import Session

from ..validation import ValidationError

htmx = HTMX()


def services():
    """The worker's long-lived objects (settings, session factory, config watcher, recorder)."""
    return current_app.extensions["intelliproxy"]


def json_body() -> dict:
    """The request's JSON object body, or a ValidationError naming `body` (answered as 400 by web.py)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationError("body", "expected a JSON object")
    return body


def validation_error_json(exc: ValidationError):
    """A field that failed validation, for scripts: `400 {"error": "<field>: <why>", "field": "<field>"}`."""
    return jsonify({"error": str(exc), "field": exc.field}), 400


def get_session() -> Session:
    """One read session per request, created on first use and closed at teardown (flaskr's get_db)."""
    if "db_session" not in g:
        g.db_session = services().session_factory()
    return g.db_session


def close_session(_exc=None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def render_page_or_fragment(page: str, fragment: str, status: int = 200, **context):
    """Full page for navigation (including hx-boost and plain form posts), bare fragment for htmx swaps."""
    template = fragment if htmx and not htmx.boosted else page
    response = make_response(render_template(template, **context), status)
    response.vary.add("HX-Request")  # one URL, two bodies
    return response
