"""Model management over the pool: which node(s) a pull, delete, copy, push, create or blob upload goes to.

Pure decisions over the worker's node views (what each lists); the relay carries them out.
- `/api/pull`: the node the placement rule would use for that model, or the node named in `X-IntelliProxy-Node`
  (`all`: every up node in turn).
- `/api/delete`: every node that lists the model.
- `/api/copy`, `/api/push`, `/api/show`: a node that lists the model.
- `/api/blobs/<digest>` and the `/api/create` that uses it: the same node (remembered on the shared board).
"""
from __future__ import annotations

import re

from ..routing import NodeConfig, normalize_model_name

NODE_HEADER = "HTTP_X_INTELLIPROXY_NODE"
ALL_NODES = "all"
MANAGEMENT_PATHS = frozenset({"/api/pull", "/api/delete", "/api/copy", "/api/push", "/api/create"})
_DIGEST = re.compile(r"^sha256[:-][0-9a-fA-F]{64}$")


class UnknownNode(Exception):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"no Ollama node named {name!r} (X-IntelliProxy-Node); nodes: {', '.join(known) or 'none'}")
        self.message = str(self)


def named_node(environ, views) -> NodeConfig | str | None:
    """The node a client named in X-IntelliProxy-Node (`all` for every node), or None."""
    wanted = (environ.get(NODE_HEADER) or "").strip()
    if not wanted:
        return None
    if wanted.lower() == ALL_NODES:
        return ALL_NODES
    for view in views:
        if view.config.name == wanted or f"{view.config.host}:{view.config.port}" == wanted:
            return view.config
    raise UnknownNode(wanted, [v.config.name for v in views])


def nodes_listing(model: str | None, views) -> list[NodeConfig]:
    """Enabled nodes whose /api/tags has the model, up ones first."""
    if not model:
        return []
    key = normalize_model_name(model)
    found = [v for v in views if v.config.enabled and key in v.listed]
    return [v.config for v in sorted(found, key=lambda v: (not v.up, v.config.id))]


def management_model(path: str, body: dict) -> str | None:
    """The model a management call is about (the source of a copy)."""
    if path == "/api/copy":
        value = body.get("source")
    else:
        value = body.get("model") or body.get("name")
    return value if isinstance(value, str) and value else None


def blob_digest(path: str) -> str | None:
    digest = path[len("/api/blobs/"):]
    return digest if _DIGEST.match(digest) else None


def create_blob_digests(body: dict) -> list[str]:
    """The digests a /api/create uses (`files` and `adapters`: name -> sha256:...)."""
    out = []
    for field in ("files", "adapters"):
        value = body.get(field)
        if isinstance(value, dict):
            out.extend(d for d in value.values() if isinstance(d, str))
    return out
