"""Errors as Ollama shapes them: ``{"error": "..."}`` natively, the OpenAI envelope under /v1, text 404/405."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
BUSY = "server busy, please try again.  maximum pending requests exceeded"
OPENAI_TYPES = {400: "invalid_request_error", 404: "not_found_error", 501: "not_supported_error"}


class ApiError(Exception):
    """An error with the HTTP status it should be answered with."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class ClientGone(Exception):
    """The client disconnected while its request waited; nobody is left to answer."""


def openai_body(status: int, message: str) -> dict:
    """OpenAI's error envelope, as Ollama's /v1 layer builds it."""
    return {"error": {"message": message, "type": OPENAI_TYPES.get(status, "api_error"), "param": None, "code": None}}


def error_response(status: int, message: str, headers: dict | None = None) -> Response:
    """Render an error for the current path's audience."""
    if request.path.startswith("/v1/"):
        resp = jsonify(openai_body(status, message))
    else:
        resp = jsonify({"error": message})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def init_app(app: Flask) -> None:
    """Register one handler per error kind."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError):
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(ClientGone)
    def client_gone(exc: ClientGone):
        return error_response(499, "request canceled")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Ollama (gin) answers unknown paths and wrong methods in plain text; Flask's HTML pages break clients.
        if exc.code == 404:
            return Response("404 page not found", 404, mimetype="text/plain")
        if exc.code == 405:
            return Response("405 method not allowed", 405, mimetype="text/plain")
        return error_response(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")
