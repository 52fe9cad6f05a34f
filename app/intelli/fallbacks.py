"""Fallback chains: per model, the models to try next when it fails before its first byte.

Stored in the database (one row per model), read by every worker into its in-memory snapshot. Chains are
followed transitively (A -> [B], B -> [C] tries A, B, C), so a loop (A -> B -> A) is rejected when saved.
The JSON shape is the original project's: `{"fallbacks": {model: fallback or [fallbacks]}, "timeout": s}`.
"""
from __future__ import annotations

import json

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..models import FallbackChain, IntelliSettings, utcnow
from ..routing import normalize_model_name
from ..validation import ValidationError, validate_model_name

DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
MAX_CHAIN = 8  # models tried for one request at most, the requested one included
SETTINGS_ROW_ID = 1


def validate_timeout(value, field: str = "timeout") -> float:
    if isinstance(value, bool) or value is None:
        raise ValidationError(field, f"must be a number of seconds between 0.1 and {MAX_TIMEOUT:g}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValidationError(field, "must be a number of seconds") from None
    if not isinstance(value, (int, float)) or not 0.1 <= value <= MAX_TIMEOUT:
        raise ValidationError(field, f"must be a number of seconds between 0.1 and {MAX_TIMEOUT:g}")
    return float(value)


def validate_chains(raw, virtual_name: str) -> dict[str, list[str]]:
    """`{model: fallback | [fallbacks]}` -> `{normalised model: [fallbacks as written]}`; loops rejected."""
    if not isinstance(raw, dict):
        raise ValidationError("fallbacks", "must be an object mapping a model to its fallback(s)")
    virtual = normalize_model_name(virtual_name)
    chains: dict[str, list[str]] = {}
    for model, value in raw.items():
        key = normalize_model_name(validate_model_name(model, "fallbacks"))
        if key == virtual:
            raise ValidationError("fallbacks", f"{virtual_name} chooses its own fallbacks; it cannot have a chain")
        if key in chains:
            raise ValidationError("fallbacks", f"{model!r} is listed twice")
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list):
            raise ValidationError("fallbacks", f"the fallback of {model!r} must be a model name or a list of them")
        cleaned, seen = [], set()
        for entry in entries:
            name = validate_model_name(entry, f"fallbacks.{model}")
            norm = normalize_model_name(name)
            if norm == virtual:
                raise ValidationError("fallbacks", f"{virtual_name} cannot be a fallback")
            if norm == key:
                raise ValidationError("fallbacks", f"loop: {model} falls back to itself")
            if norm in seen:
                raise ValidationError("fallbacks", f"{name!r} appears twice in the chain of {model!r}")
            seen.add(norm)
            cleaned.append(name)
        if len(cleaned) >= MAX_CHAIN:
            raise ValidationError("fallbacks", f"the chain of {model!r} is longer than {MAX_CHAIN - 1} models")
        if cleaned:
            chains[key] = cleaned
    loop = find_loop(chains)
    if loop:
        raise ValidationError("fallbacks", "loop: " + " -> ".join(loop))
    return chains


def find_loop(chains: dict[str, list[str]]) -> list[str] | None:
    """A cycle in the graph model -> fallback (as the list of models on it), or None."""
    graph = {k: [normalize_model_name(v) for v in vs] for k, vs in chains.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if state.get(start) is None:
            found = visit(start)
            if found:
                return found
    return None


def expand_chain(model: str, chains: dict[str, tuple]) -> list[str]:
    """The models to try for `model`, in order: itself, then its chain depth-first, each once, at most MAX_CHAIN."""
    order: list[str] = []
    seen: set[str] = set()

    def add(name: str) -> None:
        key = normalize_model_name(name)
        if key in seen or len(order) >= MAX_CHAIN:
            return
        seen.add(key)
        order.append(name)
        for nxt in chains.get(key, ()):
            add(nxt)

    add(model)
    return order


# -- the database -------------------------------------------------------------------------------------------

def load_chains(session: Session) -> dict[str, tuple]:
    return {row.model: tuple(json.loads(row.chain)) for row in session.scalars(select(FallbackChain))}


def load_timeout(session: Session) -> float:
    row = session.get(IntelliSettings, SETTINGS_ROW_ID)
    return row.fallback_timeout if row is not None else DEFAULT_TIMEOUT


def save_timeout(session: Session, timeout: float) -> None:
    row = session.get(IntelliSettings, SETTINGS_ROW_ID)
    if row is None:
        session.add(IntelliSettings(id=SETTINGS_ROW_ID, fallback_timeout=timeout, updated_at=utcnow()))
    else:
        row.fallback_timeout, row.updated_at = timeout, utcnow()


def replace_chains(session: Session, chains: dict[str, list[str]]) -> None:
    """Replace the whole map (what `POST /config/fallbacks` means)."""
    session.execute(delete(FallbackChain))
    now = utcnow()
    for model, entries in chains.items():
        session.add(FallbackChain(model=model, chain=json.dumps(entries), updated_at=now))


def set_chain(session: Session, model: str, entries: list[str], virtual_name: str) -> str:
    """Set (or with an empty list, remove) one model's chain, checking the whole map for loops."""
    current = {k: list(v) for k, v in load_chains(session).items()}
    key = normalize_model_name(validate_model_name(model, "model"))
    current.pop(key, None)
    merged = dict(current)
    if entries:
        merged[model] = entries
    chains = validate_chains(merged, virtual_name)
    replace_chains(session, chains)
    return key


def chains_as_json(chains: dict[str, tuple], timeout: float) -> dict:
    """The original's shape: a single fallback as a string, longer chains as lists."""
    return {"fallbacks": {k: (v[0] if len(v) == 1 else list(v)) for k, v in sorted(chains.items())},
            "timeout": timeout}
