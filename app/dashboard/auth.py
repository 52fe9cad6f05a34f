"""Sign-in with ADMIN_TOKEN for browsers (scripts send `Authorization: Bearer` instead)."""
from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for

from .security import (admin_token_set, check_admin_token, count_failure, failed_login_pause, failure_limit_message,
                       retry_after_failures, sign_in, sign_out)

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL (no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; a right token sets the session cookie and goes on to the page asked for."""
    if not admin_token_set():
        return redirect(url_for("dashboard.overview"))
    next_url = _safe_next(request.values.get("next"))
    if request.method == "POST":
        wait = retry_after_failures()
        if wait is not None:  # refused before the token is even compared: the limit is on guesses
            page = render_template("dashboard/login.html", next_url=next_url, error=failure_limit_message(wait))
            response = make_response(page, 429)
            response.headers["Retry-After"] = str(wait)
            return response
        if check_admin_token(request.form.get("token", "")):
            sign_in()
            return redirect(next_url, 303)
        count_failure()
        failed_login_pause()
        return render_template("dashboard/login.html", next_url=next_url, error="That token is not right."), 401
    return render_template("dashboard/login.html", next_url=next_url, error=None)


@bp.post("/logout")
def logout():
    """End the browser session."""
    sign_out()
    return redirect(url_for("auth.login"), 303)
