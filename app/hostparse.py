"""Parse OLLAMA_HOST the way Ollama's own clients do (ollama-python `_parse_host`, the Go CLI)."""
from __future__ import annotations

import urllib.parse
from dataclasses import dataclass


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


@dataclass(frozen=True)
class NodeSpec:
    """One item of OLLAMA_HOSTS: where a node runs and what the operator says about it."""

    host: str
    port: int
    name: str | None = None  # None: `host:port`
    vram_gb: float | None = None
    num_parallel: int = 1
    weight: float = 1.0

    @property
    def node_name(self) -> str:
        """The name given, else `host:port` (unique, since no two nodes share a host and port)."""
        return self.name if self.name is not None else default_node_name(self.host, self.port)


def default_node_name(host: str, port: int) -> str:
    return f"{host}:{port}"[-64:]


_NODE_OPTIONS = ("name", "vram_gb", "num_parallel", "weight")


def parse_ollama_hosts(value: str | None, default_port: int = 11434) -> list[NodeSpec]:
    """Parse OLLAMA_HOSTS: comma-separated `[http://]host:port[?name=N&vram_gb=G&num_parallel=P&weight=W]`.

    Raises ValueError naming the bad item (an https:// scheme, a bad port, an unknown or invalid option).
    The values are only parsed here; app.validation checks their ranges when the pool is seeded.
    """
    specs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        address, _, query = item.partition("?")
        if address.lower().startswith("https://"):
            raise ValueError(f"OLLAMA_HOSTS item {item!r} uses https://, but IntelliProxy talks plain HTTP to "
                             "Ollama: give the node's own HTTP address")
        if not address.strip():
            raise ValueError(f"OLLAMA_HOSTS item {item!r} has no host")
        try:
            host, port = parse_ollama_host(address, default_port)
        except ValueError:
            raise ValueError(f"OLLAMA_HOSTS item {item!r} has an invalid port") from None
        options = {}
        try:
            pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise ValueError(f"OLLAMA_HOSTS item {item!r}: options must look like ?vram_gb=24&num_parallel=2") from None
        for key, raw in pairs:
            if key not in _NODE_OPTIONS:
                raise ValueError(f"OLLAMA_HOSTS item {item!r}: unknown option {key!r} "
                                 f"(known: {', '.join(_NODE_OPTIONS)})")
            options[key] = raw
        specs.append(NodeSpec(host=host, port=port, **_typed_options(item, options)))
    return specs


def _typed_options(item: str, options: dict) -> dict:
    typed: dict = {}
    for key, cast in (("name", str), ("vram_gb", float), ("num_parallel", int), ("weight", float)):
        if key in options:
            try:
                typed[key] = cast(options[key])
            except ValueError:
                kind = "a whole number" if cast is int else "a number"
                raise ValueError(f"OLLAMA_HOSTS item {item!r}: {key} must be {kind}, got {options[key]!r}") from None
    return typed
