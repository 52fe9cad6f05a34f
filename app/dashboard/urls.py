"""Where clients reach the proxy, as seen from the browser that opened the dashboard."""
from __future__ import annotations

from flask import request


def browser_hostname() -> str:
    """The host part of the Host header the browser used (IPv6 literals keep their brackets)."""
    host = request.host
    if host.startswith("["):
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def proxy_base_url(settings: dict) -> str:
    """The proxy port on the same host the dashboard was reached by: http://<host>:<PROXY_PORT>."""
    return f"{request.scheme}://{browser_hostname()}:{settings['PROXY_PORT']}"
