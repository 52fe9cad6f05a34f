"""Dashboard pages and the fragments HTMX swaps into them. Views stay thin: services and queries do the work."""
from __future__ import annotations

import time

from flask import abort, render_template, request
from flask_htmx import make_response as htmx_response

from ..config_store import (apply_change, load_routing_table, set_airllm_service, set_model_airllm,
                            set_ollama_target)
from ..health import APP_VERSION
from ..routing import Backend, normalize_model_name
from ..telemetry import stats
from ..validation import ValidationError, validate_bool, validate_host, validate_model_name, validate_port
from . import bp
from .context import get_session, htmx, render_page_or_fragment, services
from .requestlog import STATUS_CHOICES, LogFilter, backends_seen, nodes_seen, query_log
from .services import check_connection, filter_models, merged_models, probe, probe_both
from .urls import proxy_base_url

CONFIG_CHANGED = "config-changed"


def _table():
    """The routing config as stored now (not this worker's snapshot, which may be half a second old)."""
    return load_routing_table(get_session())


# -- Overview -----------------------------------------------------------------------------------------------------

@bp.get("/")
def overview():
    """Backend health, what is loaded, the AirLLM queue and the totals; the health part refreshes itself."""
    table = _table()
    ollama, airllm = probe_both(table)
    session = get_session()
    last_hour = stats.Aggregate()
    for item in stats.per_model(session, "hour"):
        last_hour.add(item.stats)
    svc = services()
    proxy = {"version": APP_VERSION, "uptime_s": time.time() - svc.health.started, "config_version": table.version,
             "proxy_url": proxy_base_url(svc.settings)}
    return render_page_or_fragment("dashboard/overview.html", "dashboard/_overview.html", table=table,
                                   ollama=ollama, airllm=airllm, totals=stats.totals(session),
                                   last_hour=last_hour, proxy=proxy)


# -- Connections --------------------------------------------------------------------------------------------------

def _collect(checks: dict) -> tuple[dict, dict]:
    """Run each field's validator (from app.validation); values that passed and an error per field that did not."""
    values, errors = {}, {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except ValidationError as exc:
            errors[name] = exc.message
    return values, errors


@bp.get("/connections")
def connections():
    """The Ollama target and the AirLLM service, each with its own form and test button."""
    table = _table()
    return render_template("dashboard/connections.html", ollama_form=_ollama_form(table),
                           airllm_form=_airllm_form(table))


def _ollama_form(table, values=None, errors=None, saved=False) -> dict:
    values = values or {"host": table.ollama.host, "port": str(table.ollama.port)}
    return {"values": values, "errors": errors or {}, "saved": saved}


def _airllm_form(table, values=None, errors=None, saved=False) -> dict:
    values = values or {"enabled": table.airllm_enabled, "host": table.airllm.host, "port": str(table.airllm.port),
                        "use_airllm_default": table.use_airllm_default}
    return {"values": values, "errors": errors or {}, "saved": saved}


@bp.post("/connections/ollama")
def connections_ollama():
    """Save the Ollama host and port; inline errors and nothing saved when a field is invalid."""
    typed = {"host": request.form.get("host", ""), "port": request.form.get("port", "")}
    values, errors = _collect({"host": lambda: validate_host(typed["host"], "host"),
                               "port": lambda: validate_port(typed["port"], "port")})
    if not errors:
        apply_change(services(), lambda s: set_ollama_target(s, values["host"], values["port"]))
    table = _table()
    form = _ollama_form(table, None if not errors else typed, errors, saved=not errors)
    return _form_response("dashboard/_ollama_form.html", form, table, saved=not errors, ollama_form=form,
                          airllm_form=_airllm_form(table))


@bp.post("/connections/airllm")
def connections_airllm():
    """Save the AirLLM service: enabled, host, port, and the default for models without their own switch."""
    typed = {"enabled": "enabled" in request.form, "host": request.form.get("host", ""),
             "port": request.form.get("port", ""), "use_airllm_default": "use_airllm_default" in request.form}
    values, errors = _collect({"host": lambda: validate_host(typed["host"], "host"),
                               "port": lambda: validate_port(typed["port"], "port")})
    if not errors:
        apply_change(services(), lambda s: set_airllm_service(s, typed["enabled"], values["host"], values["port"],
                                                              typed["use_airllm_default"]))
    table = _table()
    form = _airllm_form(table, None if not errors else typed, errors, saved=not errors)
    return _form_response("dashboard/_airllm_form.html", form, table, saved=not errors, airllm_form=form,
                          ollama_form=_ollama_form(table))


def _form_response(fragment: str, form: dict, table, saved: bool, **forms):
    if htmx and not htmx.boosted:
        body = render_template(fragment, form=form)
        # 200 even with errors: htmx swaps only 2xx answers, and the form is what should show them.
        return htmx_response(body, trigger=CONFIG_CHANGED) if saved else htmx_response(body)
    return render_template("dashboard/connections.html", **forms), 200 if saved else 400


@bp.post("/connections/<any(ollama, airllm):which>/test")
def connections_test(which: str):
    """Try the host and port typed in the form (saved or not): version and model count, or the exact failure."""
    values, errors = _collect({"host": lambda: validate_host(request.form.get("host", ""), "host"),
                               "port": lambda: validate_port(request.form.get("port", ""), "port")})
    result = None if errors else check_connection(Backend(which, values["host"], values["port"]))
    return render_template("dashboard/_test_result.html", which=which, errors=errors, result=result)


# -- Models -------------------------------------------------------------------------------------------------------

def _model_context(query: str = "") -> dict:
    table = _table()
    ollama, airllm = probe_both(table)
    rows = merged_models(table, ollama, airllm)
    return {"table": table, "ollama": ollama, "airllm": airllm, "rows": filter_models(rows, query),
            "total": len(rows), "query": query}


@bp.get("/models")
def models():
    """The merged model list with per-model AirLLM switches; the filter box swaps only the rows."""
    query = request.args.get("q", "").strip()[:200]
    return render_page_or_fragment("dashboard/models.html", "dashboard/_model_rows.html", **_model_context(query))


@bp.post("/models/airllm")
def model_airllm():
    """Switch AirLLM on or off for one model (the checkbox); answers with that model's row only."""
    try:
        name = validate_model_name(request.form.get("model"), "model")
        enabled = validate_bool(request.form.get("enabled", "off"), "enabled")
    except ValidationError as exc:
        return htmx_response(str(exc), 400)
    apply_change(services(), lambda s: set_model_airllm(s, name, enabled))
    context = _model_context()
    row = next((r for r in context["rows"] if r.key == normalize_model_name(name)), None)
    if row is None:
        abort(404)
    if htmx and not htmx.boosted:
        return htmx_response(render_template("dashboard/_model_row.html", row=row, **context),
                             trigger=CONFIG_CHANGED)
    return render_template("dashboard/models.html", **context)


# -- Statistics ---------------------------------------------------------------------------------------------------

RANGE_LABELS = {"all": "All time", "hour": "Last hour", "day": "Last day"}
CHART_RANGES = {"hour": "Last hour", "day": "Last day"}


def _choice(name: str, allowed, default: str) -> str:
    value = request.args.get(name, default)
    return value if value in allowed else default


@bp.get("/statistics")
def statistics():
    """Per model and backend: requests, errors, latency, TTFT, tokens/s; the table refreshes itself."""
    session = get_session()
    range_name = _choice("range", RANGE_LABELS, "all")
    rows = stats.per_model(session, range_name)
    groups: dict[str, list] = {}
    for item in rows:
        groups.setdefault(item.model, []).append(item)
    return render_page_or_fragment("dashboard/statistics.html", "dashboard/_stats_table.html",
                                   range_name=range_name, range_labels=RANGE_LABELS, groups=groups,
                                   combined={m: _combine(items) for m, items in groups.items()},
                                   chart=_chart_context(session), chart_ranges=CHART_RANGES,
                                   models=stats.model_names(session))


def _combine(items) -> stats.Aggregate:
    total = stats.Aggregate()
    for item in items:
        total.add(item.stats)
    return total


def _chart_context(session) -> dict:
    range_name = _choice("chart", CHART_RANGES, "hour")
    model = request.args.get("model", "").strip()[:256]
    return {"range": range_name, "model": model, "data": stats.series(session, range_name, model or None)}


@bp.get("/statistics/charts")
def statistics_charts():
    """The chart data for the chosen range and model (the charts redraw from it)."""
    session = get_session()
    return render_page_or_fragment("dashboard/statistics.html", "dashboard/_charts.html",
                                   range_name="all", range_labels=RANGE_LABELS, groups={}, combined={},
                                   chart=_chart_context(session), chart_ranges=CHART_RANGES,
                                   models=stats.model_names(session))


# -- Request log --------------------------------------------------------------------------------------------------

@bp.get("/log")
def request_log():
    """The last requests, newest first; the rows refresh every two seconds with the filters applied."""
    retention = services().settings["LOG_RETENTION"]
    try:
        flt = LogFilter.from_args(request.args, retention)
    except ValidationError:
        flt = LogFilter(limit=retention)
    session = get_session()
    return render_page_or_fragment("dashboard/log.html", "dashboard/_log_rows.html",
                                   rows=query_log(session, flt), flt=flt, backends=backends_seen(session),
                                   nodes=nodes_seen(session),
                                   status_choices=STATUS_CHOICES, retention=retention,
                                   store_prompts=services().settings["STORE_PROMPTS"])


# -- API ----------------------------------------------------------------------------------------------------------

@bp.get("/api-reference")
def api_reference():
    """How to point curl, the ollama CLI, ollama-python and the OpenAI SDK at this proxy."""
    svc = services()
    listed = probe(_table().ollama).models or []
    example_model = next((m["name"] for m in listed if "embed" not in m["name"]), None) or "llama3.2"
    return render_template("dashboard/api.html", proxy_url=proxy_base_url(svc.settings),
                           needs_key=bool(svc.settings["PROXY_API_KEYS"]), model=request.args.get("model")
                           or example_model, dashboard_url=request.host_url.rstrip("/"))
