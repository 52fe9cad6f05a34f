"""The pool of Ollama nodes in the database: seeding, reading into NodeConfig, validated changes.

Like every routing-config change, the writers here run inside `config_store.apply_change`, which bumps the
config version so every worker swaps in a new RoutingTable (with its `nodes`) within a poll. The first node
(lowest id) is also the seed's single Ollama target: its address is copied onto the proxy_config row, so
readers of `ollama_host`/`ollama_port` stay right.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .hostparse import NodeSpec, default_node_name
from .models import OllamaNode, ProxyConfig, utcnow
from .routing import NodeConfig
from .validation import ValidationError

MAX_NODES = 64  # slots of the routing engine's shared in-flight board


class NodeConflict(ValidationError):
    """A change the pool cannot take (a duplicate address or name, the last node): answered with 409, and shown
    on the Nodes page's form like any other field error."""


class NodeNotFound(LookupError):
    """No node has that id: answered with 404."""


def node_config(row: OllamaNode) -> NodeConfig:
    return NodeConfig(id=row.id, name=row.name, host=row.host, port=row.port, enabled=row.enabled,
                      vram_gb=row.vram_gb, num_parallel=row.num_parallel, weight=row.weight, slot=row.slot)


def node_json_config(node: NodeConfig) -> dict:
    """A node's configured fields, as the config API shows them."""
    return {"id": node.id, "name": node.name, "host": node.host, "port": node.port, "enabled": node.enabled,
            "vram_gb": node.vram_gb, "num_parallel": node.num_parallel, "weight": node.weight}


def load_nodes(session: Session) -> tuple[NodeConfig, ...]:
    """Every node, ordered by id (the first is the seed's Ollama target)."""
    return tuple(node_config(row) for row in session.execute(select(OllamaNode).order_by(OllamaNode.id)).scalars())


def free_slot(used) -> int | None:
    """The smallest board slot no node holds, or None when all MAX_NODES are taken."""
    taken = set(used)
    return next((slot for slot in range(MAX_NODES) if slot not in taken), None)


def find_conflict(nodes, candidate: dict, node_id: int | None = None) -> NodeConflict | None:
    """Why `candidate` (a node's complete fields) cannot join `nodes` beside the others, or None."""
    for other in nodes:
        if other.id == node_id:
            continue
        if (other.host, other.port) == (candidate["host"], candidate["port"]):
            return NodeConflict("host", f"node {other.name!r} already uses {candidate['host']}:{candidate['port']}")
        if other.name == candidate["name"]:
            return NodeConflict("name", f"another node is already named {candidate['name']!r}")
    return None


def _check(session: Session, candidate: dict, node_id: int | None = None) -> None:
    conflict = find_conflict(load_nodes(session), candidate, node_id)
    if conflict is not None:
        raise conflict


def add_node(session: Session, fields: dict) -> OllamaNode:
    """Insert a node from validated fields (app.validation.validate_node_fields); the name defaults to host:port."""
    candidate = {"enabled": True, "vram_gb": None, "num_parallel": 1, "weight": 1.0, **fields}
    candidate.setdefault("name", default_node_name(candidate["host"], candidate["port"]))
    _check(session, candidate)
    slot = free_slot(session.execute(select(OllamaNode.slot)).scalars())
    if slot is None:
        raise NodeConflict("host", f"the pool is full: at most {MAX_NODES} nodes")
    now = utcnow()
    row = OllamaNode(**candidate, slot=slot, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    _sync_first_node(session)
    return row


def _get(session: Session, node_id: int) -> OllamaNode:
    row = session.get(OllamaNode, node_id)
    if row is None:
        raise NodeNotFound(f"no node with id {node_id}")
    return row


def update_node(session: Session, node_id: int, fields: dict) -> OllamaNode:
    """Change some fields of a node. A name that was the default `host:port` follows a new address."""
    row = _get(session, node_id)
    candidate = {name: getattr(row, name) for name in ("name", "host", "port", "enabled")}
    candidate.update(fields)
    if "name" not in fields and row.name == default_node_name(row.host, row.port):
        candidate["name"] = default_node_name(candidate["host"], candidate["port"])
    _check(session, candidate, node_id)
    if not candidate["enabled"] and row.enabled and not _others_enabled(session, node_id):
        raise NodeConflict("enabled", "at least one node must stay enabled")
    for name, value in {**fields, "name": candidate["name"]}.items():
        setattr(row, name, value)
    row.updated_at = utcnow()
    session.flush()
    _sync_first_node(session)
    return row


def _others_enabled(session: Session, node_id: int) -> bool:
    query = select(OllamaNode.id).where(OllamaNode.id != node_id, OllamaNode.enabled.is_(True)).limit(1)
    return session.execute(query).first() is not None


def remove_node(session: Session, node_id: int) -> str:
    """Delete a node (never the last one, nor the last enabled one). Returns its name."""
    row = _get(session, node_id)
    if session.execute(select(OllamaNode.id).where(OllamaNode.id != node_id).limit(1)).first() is None:
        raise NodeConflict("id", "cannot remove the last node: the proxy needs at least one Ollama node "
                                 "(change its address instead)")
    if row.enabled and not _others_enabled(session, node_id):
        raise NodeConflict("id", "cannot remove the last enabled node: enable another one first")
    name = row.name
    session.delete(row)
    session.flush()
    _sync_first_node(session)
    return name


def set_first_node_target(session: Session, host: str, port: int) -> None:
    """`POST /config/ollama`: point the first node at a validated address (creating it in an empty pool)."""
    first = session.execute(select(OllamaNode).order_by(OllamaNode.id).limit(1)).scalar()
    if first is None:
        add_node(session, {"host": host, "port": port})
    else:
        update_node(session, first.id, {"host": host, "port": port})


def seed_nodes(session: Session, specs) -> None:
    """Insert the seed's nodes (OLLAMA_HOSTS, or the single OLLAMA_HOST) into an empty pool."""
    for spec in specs:
        add_node(session, {"name": spec.node_name, "host": spec.host, "port": spec.port, "vram_gb": spec.vram_gb,
                           "num_parallel": spec.num_parallel, "weight": spec.weight})


def single_node(host: str, port: int) -> tuple[NodeSpec]:
    return (NodeSpec(host=host, port=port),)


def _sync_first_node(session: Session) -> None:
    """Copy the first node's address onto the proxy_config row (read by older code and the seed's API)."""
    first = session.execute(select(OllamaNode.host, OllamaNode.port).order_by(OllamaNode.id).limit(1)).first()
    if first is not None:
        session.execute(update(ProxyConfig).values(ollama_host=first.host, ollama_port=first.port))
