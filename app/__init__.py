"""Ollama IntelliProxy.

This package file stays import-light on purpose: `python -m app.airllm_server` imports it on the GPU host,
which must not pull in the proxy (Flask, SQLAlchemy) or the proxy pull in torch.
"""


def create_app(overrides: dict | None = None):
    """Build the WSGI application that serves both ports (see app.factory)."""
    from .factory import create_app as _create_app

    return _create_app(overrides)
