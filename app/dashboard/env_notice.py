"""The dashboard's notice about environment values the stored config does not use (app.env_drift), and its
one-click "use the environment's value"."""
from __future__ import annotations

from flask import redirect, request, url_for

from ..config_store import apply_change, load_routing_table
from ..env_drift import drift, use_environment
from . import bp
from .context import get_session, services

# Pages that show the notice (templates/dashboard/_env_drift.html); the button sends the reader back to theirs.
NOTICE_PAGES = ("dashboard.overview", "dashboard.connections")


def env_drift() -> list:
    """What the notice lists, for the stored config as it is now (called only by the pages that include it)."""
    return drift(services().settings, load_routing_table(get_session()))


@bp.app_context_processor
def _notice_context() -> dict:
    return {"env_drift": env_drift}


@bp.post("/connections/use-environment")
def use_environment_value():
    """Store the environment's value for one target (`ollama` or `airllm`); nothing to do once they agree."""
    item = next((d for d in env_drift() if d.target == request.form.get("target")), None)
    if item is not None:
        apply_change(services(), lambda session: use_environment(session, item))
    back = request.form.get("next")
    return redirect(url_for(back if back in NOTICE_PAGES else "dashboard.connections"), code=303)
