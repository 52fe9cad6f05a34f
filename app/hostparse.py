"""Parse OLLAMA_HOST the way Ollama's own clients do (ollama-python `_parse_host`, the Go CLI)."""
from __future__ import annotations

import urllib.parse


def parse_ollama_host(value: str | None, default_port: int = 11434) -> tuple[str, int]:
    """Return (host, port) for a bare host, `host:port`, `:port`, `[v6]:port` or a URL.

    A port written in the value wins; a scheme without a port means 80/443, as in ollama-python.
    The host comes back without IPv6 brackets. A path prefix, if any, is ignored here.
    """
    value = (value or "").strip()
    if not value:
        return "127.0.0.1", default_port
    scheme, _, rest = value.partition("://")
    if not rest:
        scheme, rest = "", value
    port = {"http": 80, "https": 443}.get(scheme.lower(), default_port)
    split = urllib.parse.urlsplit(f"{scheme or 'http'}://{rest}")
    try:
        explicit_port = split.port
    except ValueError:
        raise ValueError(f"invalid port in OLLAMA_HOST {value!r}") from None
    host = split.hostname or "127.0.0.1"
    return host, explicit_port or port
