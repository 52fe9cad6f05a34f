"""The dashboard face (port 9999): a Flask app with the config JSON API, health and the dashboard pages."""
from __future__ import annotations

from flask import Flask, jsonify

from .services import Services


def create_dashboard_app(services: Services) -> Flask:
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(services.settings)
    app.config["SECRET_KEY"] = services.settings["SECRET_KEY"]
    app.extensions["intelliproxy"] = services

    from .config_api import bp as config_api_bp

    app.register_blueprint(config_api_bp)

    @app.get("/health")
    def health():
        """The same health document as on the proxy port (for Docker's HEALTHCHECK)."""
        return jsonify(services.health.report())

    return app
