"""JSON twins of the dashboard for scripts: GET /stats, GET /requests, POST /requests/clear."""
from __future__ import annotations

from flask import jsonify, redirect, render_template, request, url_for
from flask_htmx import make_response as htmx_response

from ..offload import in_transaction
from ..telemetry import stats
from ..validation import ValidationError
from . import bp
from .context import get_session, htmx, services
from .security import wants_html
from .requestlog import STATUS_CHOICES, LogFilter, backends_seen, clear_log, query_log, row_as_dict

LOG_CLEARED = "log-cleared"


@bp.get("/stats")
def stats_json():
    """`?range=all|hour|day` (default all): totals, and per model and backend; `series=1` adds the chart points."""
    range_name = request.args.get("range", "all")
    if range_name not in ("all", "hour", "day"):
        raise ValidationError("range", "must be all, hour or day")
    session = get_session()
    body = {
        "range": range_name,
        "totals": stats.totals(session),
        "models": [{"model": item.model or None, "backend": item.backend, **item.stats.as_dict()}
                   for item in stats.per_model(session, range_name)],
    }
    if request.args.get("series") in ("1", "true", "yes"):
        chart_range = range_name if range_name != "all" else "hour"
        body["series"] = stats.series(session, chart_range, request.args.get("model") or None)
    return jsonify(body)


@bp.get("/requests")
def requests_json():
    """The request log, newest first; filters `model` (substring), `backend`, `node`, `status`
    (ok|error|2xx|4xx|5xx|code), and `limit` (at most LOG_RETENTION)."""
    retention = services().settings["LOG_RETENTION"]
    flt = LogFilter.from_args(request.args, retention)
    rows = query_log(get_session(), flt)
    return jsonify({"requests": [row_as_dict(row) for row in rows], "count": len(rows), "retention": retention,
                    "prompts_stored": services().settings["STORE_PROMPTS"]})


@bp.post("/requests/clear")
def requests_clear():
    """Empty the request log (statistics are kept). JSON for scripts; the emptied rows for the log page."""
    deleted = in_transaction(services().session_factory, clear_log)  # off the event loop: it may wait for a lock
    if htmx and not htmx.boosted:
        body = render_template("dashboard/_log_rows.html", rows=[], flt=LogFilter(),
                               backends=backends_seen(get_session()), status_choices=STATUS_CHOICES,
                               retention=services().settings["LOG_RETENTION"],
                               store_prompts=services().settings["STORE_PROMPTS"], cleared=deleted)
        return htmx_response(body, trigger=LOG_CLEARED)
    if wants_html():  # the clear button without JavaScript: back to the (now empty) log
        return redirect(url_for("dashboard.request_log"), 303)
    return jsonify({"status": "ok", "deleted": deleted})
