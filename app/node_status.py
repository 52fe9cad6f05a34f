"""What the config API and the Nodes page show of each node: its configuration joined with the routing engine's
live view (`services.extras["fleet"].status()`, keyed by node id) and the per-node statistics.

Pure functions over plain values: no Flask, no database.
"""
from __future__ import annotations

from dataclasses import dataclass

from .node_store import node_json_config
from .routing import NodeConfig

GB = 1e9  # Ollama reports size_vram in bytes; operators give vram_gb in decimal GB, as `ollama ps` shows them


def fleet_status(services) -> dict[int, dict]:
    """The routing engine's live status per node id, or {} when no engine runs (then every state is unknown)."""
    fleet = services.extras.get("fleet")
    return fleet.status() if fleet is not None else {}


def node_state(node: NodeConfig, live: dict | None) -> str:
    """up, down or disabled from the engine; `unknown` for an enabled node the engine has not reported."""
    if not node.enabled:
        return "disabled"
    return live.get("state", "unknown") if live else "unknown"


def _loaded(live: dict | None) -> list[dict]:
    """The engine's `loaded` entries that name a model (`{"name", "size_vram"}`)."""
    return [entry for entry in (live or {}).get("loaded") or [] if isinstance(entry, dict) and entry.get("name")]


def node_json(node: NodeConfig, live: dict | None) -> dict:
    """One node for `GET /config/nodes` (and the Nodes page): `loaded` is the names only, as in /api/ps."""
    live = live or {}
    return {
        **node_json_config(node),
        "state": node_state(node, live),
        "models": list(live.get("models") or []),
        "loaded": [entry["name"] for entry in _loaded(live)],
        "in_flight": live.get("in_flight", 0),
        "waiting": live.get("waiting", 0),
        "probe_ms": live.get("probe_ms"),
        "last_error": live.get("last_error"),
        "loads_observed": live.get("loads_observed", 0),
    }


@dataclass(frozen=True)
class VramBar:
    """One loaded model as a bar: `used_gb` of the node's `max_gb` (the whole of what is loaded when unknown)."""

    name: str
    used_gb: float
    max_gb: float


def vram_bars(node: NodeConfig, live: dict | None) -> tuple[list[VramBar], float, float | None]:
    """Bars for the loaded models, the GB they use together, and the node's vram_gb (None when not given)."""
    loaded = [(entry["name"], max(float(entry.get("size_vram") or 0), 0.0) / GB) for entry in _loaded(live)]
    used = sum(size for _name, size in loaded)
    scale = node.vram_gb or used or 1.0
    return [VramBar(name, round(size, 2), scale) for name, size in loaded], round(used, 2), node.vram_gb


def node_rows(nodes, live: dict, totals: dict, rates: dict) -> list[dict]:
    """What the Nodes page shows per node: node_json, the VRAM bars, and the request statistics by name."""
    rows = []
    for node in nodes:
        status = live.get(node.id)
        bars, used_gb, vram_gb = vram_bars(node, status)
        rows.append({"node": node, "info": node_json(node, status), "bars": bars, "used_gb": used_gb,
                     "vram_gb": vram_gb, "totals": totals.get(node.name) or {"requests": 0, "errors": 0},
                     "rate": rates.get(node.name) or {"requests_per_min": 0.0, "errors_per_min": 0.0}})
    return rows
