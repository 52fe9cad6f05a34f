"""IntelliProxyLLM on the dashboard port: the JSON API (fallbacks, classify, performance test, attributes) and
the Routing and Performance pages with their HTMX fragments."""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_htmx import make_response as htmx_response
from sqlalchemy import select

from ..config_store import apply_change, load_routing_table
from ..dashboard.context import htmx, json_body, services
from ..models import RequestLog
from ..routing import normalize_model_name
from ..validation import ValidationError, validate_model_name
from . import perftest
from .attributes import CAPABILITIES, MODEL_CATEGORIES, reset_attributes, update_attributes, validate_attributes
from .catalog import stored_profiles_for_display
from .fallbacks import (chains_as_json, load_chains, load_timeout, replace_chains, save_timeout, set_chain,
                        validate_chains, validate_timeout)
from .stats import category_distribution

bp = Blueprint("intelli", __name__)
ROUTING_CHANGED = "routing-changed"


def _resolver():
    return services().extras["intelli"]


# -- JSON API -----------------------------------------------------------------------------------------------

@bp.get("/config/fallbacks")
def fallbacks_get():
    """`{"fallbacks": {model: fallback or [fallbacks]}, "timeout": seconds}`, from the database."""
    with services().session_factory() as session:
        return jsonify(chains_as_json(load_chains(session), load_timeout(session)))


@bp.post("/config/fallbacks")
def fallbacks_post():
    """Replace the whole map (and the first-byte timeout when given); a loop or a bad name is a 400."""
    body = json_body()
    if "fallbacks" not in body:
        raise ValidationError("fallbacks", "is required")
    chains = validate_chains(body["fallbacks"], _resolver().virtual_name)
    timeout = validate_timeout(body["timeout"]) if body.get("timeout") is not None else None

    def change(session):
        replace_chains(session, chains)
        if timeout is not None:
            save_timeout(session, timeout)

    apply_change(services(), change)
    with services().session_factory() as session:
        return jsonify({"status": "ok", **chains_as_json(load_chains(session), load_timeout(session))})


@bp.post("/classify")
def classify_post():
    """`{prompt | messages, system?, images?, tools?}` -> category, complexity, the chosen model and the scores."""
    body = json_body()
    request_body, path = _classify_request(body)
    return jsonify(_decision_json(path, request_body))


def _classify_request(body: dict) -> tuple[dict, str]:
    if isinstance(body.get("messages"), list) and body["messages"]:
        request_body = {k: body[k] for k in ("messages", "tools", "think") if k in body}
        return request_body, "/api/chat"
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValidationError("prompt", "give a prompt (string) or messages (list)")
    request_body = {k: body[k] for k in ("prompt", "system", "images", "tools", "think", "suffix") if k in body}
    return request_body, "/api/generate"


def _decision_json(path: str, request_body: dict) -> dict:
    resolver = _resolver()
    decision = resolver.decide(path, request_body, services().watcher.table)
    out = decision.as_dict()
    out["category"] = decision.classification.category
    out["complexity"] = decision.classification.complexity
    out["scores"] = {c.name: round(c.score, 2) for c in decision.ranked}
    return out


@bp.post("/performance-test")
def performance_test_post():
    """`{prompt, mode: direct|proxy|airllm|intelli|all, model?, max_tokens?}`: run, store, return the results."""
    body = json_body()
    return jsonify(_run_perf(body))


@bp.get("/performance-test")
def performance_test_list():
    """The latest stored runs, newest first."""
    with services().session_factory() as session:
        return jsonify({"runs": perftest.recent_runs(session, _limit())})


def _limit() -> int:
    try:
        return max(1, min(200, int(request.args.get("limit", 20))))
    except ValueError:
        return 20


def _run_perf(body: dict) -> dict:
    worker = services()
    with worker.session_factory() as session:  # the config as stored now, not this worker's snapshot
        table = load_routing_table(session)
    return perftest.run(worker.settings, table, _resolver(), worker.session_factory, body)


@bp.get("/config/model-attributes")
def attributes_get():
    """Every known model's attributes (installed ones first), as the selection uses them."""
    snapshot = _resolver().catalog.snapshot
    return jsonify({"models": [dict(p.as_dict(), installed=p.key in snapshot.models)
                               for p in stored_profiles_for_display(snapshot)]})


@bp.post("/config/model-attributes")
def attributes_post():
    """`{model, speed?, complexity?, categories?, capabilities?, bias?, enabled?}` or `{model, reset: true}`."""
    body = json_body()
    name = validate_model_name(body.get("model"), "model")
    if body.get("reset") is True:
        derived = _resolver().catalog.derived(name)
        apply_change(services(), lambda s: reset_attributes(s, name, derived))
    else:
        values = validate_attributes({k: v for k, v in body.items() if k != "model"})
        derived = _resolver().catalog.derived(name)
        apply_change(services(), lambda s: update_attributes(s, name, values, derived))
    profile = _profile(name)
    return jsonify({"status": "ok", "model": profile.as_dict() if profile else None})


def _profile(name: str):
    snapshot = _resolver().catalog.snapshot
    key = normalize_model_name(name)
    return snapshot.models.get(key) or snapshot.stored.get(key)


# -- the Routing page ---------------------------------------------------------------------------------------

def _routing_context(**extra) -> dict:
    resolver = _resolver()
    snapshot = resolver.catalog.snapshot
    with services().session_factory() as session:
        chains = load_chains(session)
        timeout = load_timeout(session)
        distribution = category_distribution(session)
    context = {"virtual_name": resolver.virtual_name, "snapshot": snapshot,
               "profiles": stored_profiles_for_display(snapshot), "chains": chains, "timeout": timeout,
               "distribution": distribution, "categories": MODEL_CATEGORIES + ("embedding",),
               "capabilities": CAPABILITIES, "classifier_model": resolver.refiner.model if resolver.refiner else None,
               "chain_form": {"values": {"model": "", "chain": ""}, "errors": {}, "saved": False},
               "timeout_form": {"values": {"timeout": f"{timeout:g}"}, "errors": {}, "saved": False},
               "try_form": {"values": {"prompt": "", "system": "", "image": False, "tools": False}, "errors": {}},
               "decision": None, "recent": _recent_decisions()}
    context.update(extra)
    return context


def _recent_decisions(limit: int = 10) -> list:
    with services().session_factory() as session:
        return session.scalars(select(RequestLog).where(RequestLog.requested_model.is_not(None))
                               .order_by(RequestLog.id.desc()).limit(limit)).all()


@bp.get("/routing")
def routing():
    """Try a prompt and see the decision; model attributes; fallback chains; the category distribution."""
    return render_template("intelli/routing.html", **_routing_context())


@bp.post("/routing/try")
def routing_try():
    """Classify and rank a typed prompt (nothing is sent to a model)."""
    values = {"prompt": request.form.get("prompt", ""), "system": request.form.get("system", ""),
              "image": "image" in request.form, "tools": "tools" in request.form}
    errors, decision = {}, None
    if not values["prompt"].strip():
        errors["prompt"] = "Type a prompt to classify."
    else:
        body = {"prompt": values["prompt"][:20000]}
        if values["system"].strip():
            body["system"] = values["system"]
        if values["image"]:
            body["images"] = ["(image)"]
        if values["tools"]:
            body["tools"] = [{"type": "function", "function": {"name": "example", "parameters": {}}}]
        decision = _resolver().decide("/api/generate", body, services().watcher.table)
    form = {"values": values, "errors": errors}
    if htmx and not htmx.boosted:
        return render_template("intelli/_try.html", try_form=form, decision=decision,
                               virtual_name=_resolver().virtual_name)
    return render_template("intelli/routing.html", **_routing_context(try_form=form, decision=decision))


@bp.get("/routing/model")
def routing_model():
    """One model's row, read-only or (`edit=1`) as a form."""
    profile = _profile(request.args.get("model", ""))
    if profile is None:
        return htmx_response("unknown model", 404)
    template = "intelli/_attr_form.html" if request.args.get("edit") else "intelli/_attr_row.html"
    return render_template(template, p=profile, snapshot=_resolver().catalog.snapshot,
                           form=_attr_form(profile), categories=MODEL_CATEGORIES + ("embedding",),
                           capabilities=CAPABILITIES, focus=True)


def _attr_form(profile, values=None, errors=None) -> dict:
    values = values or {"speed": str(profile.speed), "complexity": str(profile.complexity), "bias": str(profile.bias),
                        "categories": list(profile.categories), "capabilities": sorted(profile.capabilities),
                        "enabled": profile.enabled}
    return {"values": values, "errors": errors or {}}


@bp.post("/routing/model")
def routing_model_save():
    """Save one model's attributes (validated; the form comes back with errors) or reset them (`reset`)."""
    name = request.form.get("model", "")
    profile = _profile(name)
    if profile is None:
        return htmx_response("unknown model", 404)
    snapshot = _resolver().catalog.snapshot
    # focus: the row that comes back puts the keyboard focus on its Edit button (htmx honours autofocus)
    context = {"snapshot": snapshot, "categories": MODEL_CATEGORIES + ("embedding",), "capabilities": CAPABILITIES,
               "focus": True}
    if "reset" in request.form:
        derived = _resolver().catalog.derived(name)  # what the catalog already knows: no network here
        apply_change(services(), lambda s: reset_attributes(s, name, derived))
        profile = _profile(name)
        if profile is None:  # neither installed nor stored any more: its row goes
            return htmx_response("", trigger=ROUTING_CHANGED)
        return htmx_response(render_template("intelli/_attr_row.html", p=profile, **context),
                             trigger=ROUTING_CHANGED)
    typed = {"speed": request.form.get("speed", ""), "complexity": request.form.get("complexity", ""),
             "bias": request.form.get("bias", "0"), "categories": request.form.getlist("categories"),
             "capabilities": request.form.getlist("capabilities"), "enabled": "enabled" in request.form}
    errors = {}
    values = {}
    for field in typed:
        try:
            values.update(validate_attributes({field: typed[field]}))
        except ValidationError as exc:
            errors[exc.field] = exc.message
    if errors:
        return render_template("intelli/_attr_form.html", p=profile, form=_attr_form(profile, typed, errors),
                               **context)
    derived = _resolver().catalog.derived(name)
    apply_change(services(), lambda s: update_attributes(s, name, values, derived))
    profile = _profile(name) or profile
    return htmx_response(render_template("intelli/_attr_row.html", p=profile, **context), trigger=ROUTING_CHANGED)


@bp.post("/routing/fallbacks")
def routing_fallbacks_save():
    """Set one model's chain (comma-separated; empty removes it); loops and bad names come back as errors."""
    typed = {"model": request.form.get("model", "").strip(), "chain": request.form.get("chain", "")}
    entries = [e.strip() for e in typed["chain"].replace("\n", ",").split(",") if e.strip()]
    errors = {}
    try:
        validate_model_name(typed["model"], "model")
        apply_change(services(), lambda s: set_chain(s, typed["model"], entries, _resolver().virtual_name))
    except ValidationError as exc:
        errors["model" if exc.field == "model" else "chain"] = exc.message
    form = {"values": typed if errors else {"model": "", "chain": ""}, "errors": errors, "saved": not errors}
    return _fallbacks_response(chain_form=form)


@bp.post("/routing/fallbacks/delete")
def routing_fallbacks_delete():
    """Remove one model's chain."""
    model = request.form.get("model", "")
    apply_change(services(), lambda s: set_chain(s, model, [], _resolver().virtual_name))
    return _fallbacks_response()


@bp.post("/routing/fallbacks/timeout")
def routing_timeout_save():
    """The first-byte timeout, in seconds, for every fallback."""
    typed = {"timeout": request.form.get("timeout", "")}
    errors = {}
    try:
        timeout = validate_timeout(typed["timeout"])
        apply_change(services(), lambda s: save_timeout(s, timeout))
    except ValidationError as exc:
        errors["timeout"] = exc.message
    return _fallbacks_response(timeout_form={"values": typed, "errors": errors, "saved": not errors})


def _fallbacks_response(**forms):
    context = _routing_context(**forms)
    if htmx and not htmx.boosted:
        return htmx_response(render_template("intelli/_fallbacks.html", **context), trigger=ROUTING_CHANGED)
    return render_template("intelli/routing.html", **context)


@bp.get("/routing/categories")
def routing_categories():
    """The category distribution fragment (refreshes itself)."""
    with services().session_factory() as session:
        distribution = category_distribution(session)
    return render_template("intelli/_categories.html", distribution=distribution)


# -- the Performance page -----------------------------------------------------------------------------------

@bp.get("/performance")
def performance():
    """Run a prompt over each route and compare; earlier runs below."""
    with services().session_factory() as session:
        runs = perftest.recent_runs(session)
    form = {"values": {"prompt": "", "mode": "all", "model": "", "max_tokens": str(perftest.DEFAULT_TOKENS)},
            "errors": {}}
    return render_template("intelli/performance.html", runs=runs, form=form, **_perf_choices())


def _perf_choices() -> dict:
    return {"modes": ("all",) + perftest.TARGETS, "labels": perftest.TARGET_LABELS,
            "models": sorted(p.name for p in _resolver().catalog.snapshot.models.values() if p.chat_capable)}


@bp.post("/performance/run")
def performance_run():
    """Run the test typed in the form; the form (with errors) and the runs list come back."""
    typed = {"prompt": request.form.get("prompt", ""), "mode": request.form.get("mode", "all"),
             "model": request.form.get("model", ""), "max_tokens": request.form.get("max_tokens", "")}
    errors, latest = {}, None
    try:
        latest = _run_perf({**typed, "model": typed["model"] or None,
                            "max_tokens": typed["max_tokens"] or perftest.DEFAULT_TOKENS})
    except ValidationError as exc:
        errors[exc.field] = exc.message
    with services().session_factory() as session:
        runs = perftest.recent_runs(session)
    context = {"runs": runs, "form": {"values": typed, "errors": errors}, "latest": latest, **_perf_choices()}
    if htmx and not htmx.boosted:
        return render_template("intelli/_performance_body.html", **context)
    return render_template("intelli/performance.html", **context), 400 if errors else 200

