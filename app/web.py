"""The dashboard face (port 9999): a Flask app with the pages, their JSON twins, the config API, /metrics, /health.

Every route goes through app.dashboard.security: ADMIN_TOKEN (session cookie or Bearer) or loopback-only,
CSRF on state changes, and the security headers.
"""
from __future__ import annotations

import secrets

from flask import Flask, jsonify
from sqlalchemy.exc import IntegrityError

from .models import AppSecret
from .proxy.timeouts import ClientTimeout
from .services import Services
from .validation import ValidationError

SESSION_SECRET_NAME = "dashboard_session_key"


def create_dashboard_app(services: Services) -> Flask:
    """Build the dashboard's Flask app for one worker."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(services.settings)
    app.config["SECRET_KEY"] = services.settings.get("SECRET_KEY") or shared_secret(services.session_factory)
    app.extensions["intelliproxy"] = services

    from .config_api import bp as config_api_bp
    from .dashboard import bp as dashboard_bp
    from .dashboard import security
    from .dashboard.auth import bp as auth_bp
    from .dashboard.context import close_session, htmx, validation_error_json
    from .dashboard.filters import init_app as init_filters
    from .metrics import bp as metrics_bp

    htmx.init_app(app)
    security.init_app(app)
    init_filters(app)
    app.teardown_appcontext(close_session)
    app.register_error_handler(ValidationError, validation_error_json)
    app.register_error_handler(ClientTimeout, lambda exc: (jsonify({"error": str(exc)}), 408))
    app.register_blueprint(config_api_bp)
    from . import nodes_api

    nodes_api.init_app(app)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(metrics_bp)
    from .intelli.views import bp as intelli_bp

    app.register_blueprint(intelli_bp)
    from .dashboard.airllm_panel import bp as airllm_panel_bp

    app.register_blueprint(airllm_panel_bp)

    @app.get("/health")
    def health():
        """The same health document as on the proxy port (for Docker's HEALTHCHECK); open like the proxy's."""
        return jsonify(services.health.report())

    return app


def shared_secret(session_factory) -> str:
    """The session-signing key every worker and replica shares when SECRET_KEY is not set: made once, kept in
    the database, so a browser signed in through one worker stays signed in on the others and across restarts."""
    with session_factory() as session:
        row = session.get(AppSecret, SESSION_SECRET_NAME)
        if row is not None:
            return row.value
    try:
        with session_factory.begin() as session:
            session.add(AppSecret(name=SESSION_SECRET_NAME, value=secrets.token_hex(32)))
    except IntegrityError:  # another worker made it first
        pass
    with session_factory() as session:
        return session.get(AppSecret, SESSION_SECRET_NAME).value
