"""Who may use the dashboard port, CSRF protection and security headers.

Access:
- ADMIN_TOKEN set: every page, fragment, JSON twin and config-API call needs either a session cookie from the
  login form (browsers) or `Authorization: Bearer <ADMIN_TOKEN>` (scripts). `/health`, `/login` and `/static/`
  stay open (Docker/Kubernetes probes, the login page and its CSS).
- ADMIN_TOKEN unset: only loopback clients are served, and only under a loopback Host name (so a DNS-rebinding
  page in the operator's browser cannot talk to it either). Every page says so. A request that carries
  X-Forwarded-For or Forwarded while TRUSTED_PROXY_HOPS is 0 is refused too: it came through a reverse proxy
  (nginx on the same host connects from loopback), so every client behind that proxy would look local.

Guessing: wrong tokens (Bearer header or login form) count per client address; after 10 a minute that address
gets 429 with Retry-After, even with the right token, until the oldest failure is a minute old (app.auth_throttle,
per worker). Session cookies are signed, so requests carrying one are never throttled.

CSRF, for POST/PUT/PATCH/DELETE:
- A request authenticated by the Bearer header needs no token: browsers never add that header on their own.
- A request with a JSON body (`Content-Type: application/json`) needs no token: a cross-site page cannot send
  one without a CORS preflight, and this app never answers preflights. Scripts that POST JSON to the config
  API from loopback keep working unchanged. Neither does a POST with no body and no Content-Type, nor any
  request to the config API, which acts on JSON bodies only and answers anything else with its own 400.
- Everything else (HTMX posts, plain form posts) must carry the session's token, in the `X-CSRF-Token` header
  (HTMX adds it from `hx-headers` on <body>) or in a `csrf_token` form field.
- Independently, a state change whose Origin is another site, or that the browser marks
  `Sec-Fetch-Site: cross-site`, is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (Flask, Response, current_app, g, jsonify, make_response, redirect, render_template, request,
                   session, url_for)
from flask.sessions import SecureCookieSessionInterface

from ..auth_throttle import FailureThrottle

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_ENDPOINTS = frozenset({"static", "health", "auth.login"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})
# Blueprints whose state changes read JSON bodies only (request.get_json without force): a form-encoded
# cross-site post cannot change anything there, so they keep their own 400 answer instead of a CSRF 403.
JSON_ONLY_BLUEPRINTS = frozenset({"config_api", "nodes_api"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
LOGIN_FAILURE_DELAY_S = 1.0

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, with the Secure flag whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def init_app(app: Flask) -> None:
    """Install the session settings, the access guard, CSRF checks and the response headers."""
    app.session_interface = _SessionInterface()
    app.config.update(
        SESSION_COOKIE_NAME="intelliproxy_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
    )
    app.extensions["auth_throttle"] = FailureThrottle()
    app.before_request(_guard)
    app.after_request(_add_headers)

    @app.context_processor
    def _security_context():
        return {"csrf_token": csrf_token, "admin_token_set": admin_token_set(),
                "signed_in": bool(g.get("auth_via") == "session")}


def admin_token_set() -> bool:
    return bool(current_app.config.get("ADMIN_TOKEN"))


def csrf_token() -> str:
    """This session's CSRF token, created on first use."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _token_fingerprint(token: str) -> str:
    """What a signed-in session holds: changes when ADMIN_TOKEN changes, so old sessions stop working."""
    key = current_app.secret_key.encode() if isinstance(current_app.secret_key, str) else current_app.secret_key
    return hmac.new(key, b"admin:" + token.encode(), hashlib.sha256).hexdigest()


def check_admin_token(candidate: str) -> bool:
    expected = current_app.config.get("ADMIN_TOKEN") or ""
    return bool(expected) and hmac.compare_digest(candidate.encode(), expected.encode())


def sign_in() -> None:
    """Start a fresh session for a browser that gave the right token (a new CSRF token too)."""
    session.clear()
    session.permanent = True
    session["auth"] = _token_fingerprint(current_app.config["ADMIN_TOKEN"])
    session["csrf"] = secrets.token_urlsafe(32)


def sign_out() -> None:
    session.clear()


def retry_after_failures() -> int | None:
    """Seconds this client must wait after too many wrong admin tokens, or None when it may try now."""
    return current_app.extensions["auth_throttle"].retry_after(request.remote_addr or "")


def count_failure() -> None:
    current_app.extensions["auth_throttle"].failed(request.remote_addr or "")


def failure_limit_message(seconds: int) -> str:
    return current_app.extensions["auth_throttle"].message(seconds)


def too_many_failures(seconds: int) -> Response:
    """429 with Retry-After: a page for browsers, JSON for scripts."""
    message = failure_limit_message(seconds)
    if wants_html():
        response = make_response(render_template("dashboard/refused.html", message=message), 429)
    else:
        response = jsonify({"error": message})
        response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


def failed_login_pause() -> None:
    """Slow down guessing (cooperative under gevent: only this request waits)."""
    time.sleep(LOGIN_FAILURE_DELAY_S)


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def host_is_loopback(host: str) -> bool:
    """Whether a Host header names this machine by a loopback name or address (the port is ignored)."""
    host = host.strip().lower()
    if host.startswith("["):
        name = host[1:host.find("]")] if "]" in host else host[1:]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in LOOPBACK_NAMES or is_loopback(name)


def forwarded_by_untrusted_proxy(headers, trusted_hops: int) -> bool:
    """A reverse proxy's headers on a request whose sender we cannot see past (no hops are trusted)."""
    return trusted_hops <= 0 and ("X-Forwarded-For" in headers or "Forwarded" in headers)


def _guard():
    """Runs before every request of the dashboard port."""
    g.auth_via = None
    if request.endpoint == "health":
        return None
    if not admin_token_set():
        if forwarded_by_untrusted_proxy(request.headers, current_app.config.get("TRUSTED_PROXY_HOPS", 0)):
            return _refuse(FORWARDED_REFUSAL)
        if not is_loopback(request.remote_addr) or not host_is_loopback(request.host):
            return _refuse(REMOTE_REFUSAL)
        g.auth_via = "loopback"
    else:
        outcome = _authenticate()
        if isinstance(outcome, Response):
            return outcome
        if outcome is None and request.endpoint not in OPEN_ENDPOINTS:
            return _ask_to_sign_in()
        g.auth_via = outcome
    if request.method in UNSAFE_METHODS:
        return _check_csrf()
    return None


def _authenticate() -> str | Response | None:
    """'bearer' or 'session' when authenticated; None when not; a 401 for a wrong Bearer token (429 after
    too many)."""
    header = request.headers.get("Authorization", "")
    if header:
        wait = retry_after_failures()
        if wait is not None:
            return too_many_failures(wait)
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and check_admin_token(token.strip()):
            return "bearer"
        count_failure()
        return _unauthorized_json("invalid admin token")
    stored = session.get("auth")
    if stored and hmac.compare_digest(stored, _token_fingerprint(current_app.config["ADMIN_TOKEN"])):
        return "session"
    return None


def wants_html() -> bool:
    """A browser navigation or an HTMX request, rather than a script that wants JSON."""
    if request.headers.get("HX-Request") == "true":
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html" and request.accept_mimetypes[best] > request.accept_mimetypes["application/json"]


def _unauthorized_json(message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="IntelliProxy dashboard"'
    return response


def _ask_to_sign_in() -> Response:
    if request.headers.get("HX-Request") == "true":
        # htmx follows HX-Redirect whatever the status: the page goes to the login form.
        response = make_response("sign-in required", 401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    if wants_html() and request.method == "GET":
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return _unauthorized_json("sign-in required: send Authorization: Bearer <ADMIN_TOKEN>")


REMOTE_REFUSAL = ("This dashboard answers only clients on this machine (loopback), because ADMIN_TOKEN is not "
                  "set. Set ADMIN_TOKEN to open it to other machines, or use an SSH tunnel.")
FORWARDED_REFUSAL = ("This request came through a reverse proxy (it carries X-Forwarded-For or Forwarded), but "
                     "ADMIN_TOKEN is not set and TRUSTED_PROXY_HOPS is 0, so every client behind that proxy would "
                     "look like this machine. Set ADMIN_TOKEN, or set TRUSTED_PROXY_HOPS to the number of proxies "
                     "in front of the dashboard so the real client address is checked.")


def _refuse(message: str) -> Response:
    """403 with the reason, as a page for browsers and JSON for scripts."""
    if wants_html():
        response = make_response(render_template("dashboard/refused.html", message=message), 403)
    else:
        response = jsonify({"error": message})
        response.status_code = 403
    return response


def _same_origin(origin: str) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == request.host.lower()


def _check_csrf() -> Response | None:
    origin = request.headers.get("Origin")
    # "null" is what sandboxed frames and file:// pages send: never a legitimate dashboard page.
    if request.headers.get("Sec-Fetch-Site") == "cross-site" or (origin and not _same_origin(origin)):
        return _csrf_failure("cross-site request refused")
    if g.auth_via == "bearer" or request.mimetype == "application/json" or _bodyless():
        return None
    if request.blueprint in JSON_ONLY_BLUEPRINTS:
        return None  # it answers anything but a JSON body with its own 400, before changing anything
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    expected = session.get("csrf") or ""
    if expected and sent and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    return _csrf_failure("missing or invalid CSRF token: reload the page and try again")


def _bodyless() -> bool:
    """No body and no Content-Type (`curl -X POST .../requests/clear`): a browser sends that cross-site only with
    an Origin header, which the check above has already refused."""
    return not request.mimetype and not request.content_length and "Transfer-Encoding" not in request.headers


def _csrf_failure(message: str) -> Response:
    if request.headers.get("HX-Request") == "true":
        response = make_response(message, 403)
        response.mimetype = "text/plain"
        return response
    if wants_html():
        return make_response(render_template("dashboard/refused.html", message=message), 403)
    response = jsonify({"error": message})
    response.status_code = 403
    return response


def _add_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    response.vary.add("Cookie")
    return response
