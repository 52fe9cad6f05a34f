"""Model attributes: speed, complexity, categories and capabilities, derived from /api/show and the name.

Derivation is deterministic, so every worker derives the same profile for the same model; the database keeps
one row per model (inserted when a model first appears) that operators edit in the dashboard. An edited row is
never re-derived; "reset" writes the derived values back into it (and clears `edited`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import ModelAttributes, utcnow
from ..routing import normalize_model_name
from ..validation import ValidationError
from .classifier import CATEGORIES

CAPABILITIES = ("completion", "tools", "vision", "thinking", "insert", "embedding")
MODEL_CATEGORIES = tuple(c for c in CATEGORIES)  # what a model can be good at

_CODE = re.compile(r"coder|codellama|starcoder|codegemma|codestral|devstral|codeqwen|sqlcoder|granite-code|"
                   r"stable-code|opencoder|wizardcoder|deepcoder|(^|[/:-])code")
_MATH = re.compile(r"math|mathstral|qwq|deepseek-r1|phi4-reasoning|openthinker|exaone-deep|deepscaler")
_REASONING = re.compile(r"(^|[/:.-])r1\b|qwq|reason|think|magistral|openthinker|marco-o1|exaone-deep|deepscaler|"
                        r"smallthinker|cogito")
_VISION = re.compile(r"llava|vision|-vl\b|vl:|moondream|minicpm-v|bakllava|llama3\.2-vision|granite3\.2-vision")
_EMBED = re.compile(r"embed|nomic-bert|bge-|bge:|mxbai|minilm|snowflake-arctic-embed|paraphrase-multilingual")
_MULTILINGUAL = re.compile(r"qwen|mistral|mixtral|gemma|aya|command-r|llama3\.[1-3]|llama4|granite3|glm|"
                           r"phi4|babel|salamandra")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([bmk])\b", re.IGNORECASE)
_MOE = re.compile(r"(\d+)\s*x\s*(\d+(?:\.\d+)?)\s*b", re.IGNORECASE)
_ACTIVE = re.compile(r"[-_:]a(\d+(?:\.\d+)?)b\b", re.IGNORECASE)
_NAME_SIZE = re.compile(r"[:\-_](\d+(?:\.\d+)?)b\b", re.IGNORECASE)


@dataclass(frozen=True)
class ModelProfile:
    """One model as the selection sees it (immutable; the catalog swaps whole snapshots)."""

    name: str  # as Ollama lists it (e.g. `qwen2.5-coder:7b`)
    family: str
    parameter_b: float | None
    speed: int
    complexity: int
    categories: tuple
    capabilities: frozenset
    bias: int = 0
    enabled: bool = True
    edited: bool = False
    stored: bool = False  # a database row exists

    @property
    def key(self) -> str:
        return normalize_model_name(self.name)

    @property
    def chat_capable(self) -> bool:
        return "completion" in self.capabilities

    def as_dict(self) -> dict:
        return {"name": self.name, "family": self.family, "parameter_b": self.parameter_b, "speed": self.speed,
                "complexity": self.complexity, "categories": list(self.categories),
                "capabilities": sorted(self.capabilities), "bias": self.bias, "enabled": self.enabled,
                "edited": self.edited}


def parse_parameter_size(text: str | None) -> float | None:
    """`7.6B` -> 7.6, `137M` -> 0.137, `8x7B` -> 56 (billions); None when unreadable."""
    if not text:
        return None
    moe = _MOE.search(text)
    if moe:
        return float(moe.group(1)) * float(moe.group(2))
    match = _SIZE.search(text)
    if not match:
        return None
    value = float(match.group(1))
    return {"b": value, "m": value / 1000, "k": value / 1e6}[match.group(2).lower()]


def _speed(active_b: float | None) -> int:
    if active_b is None:
        return 5
    for limit, speed in ((1.5, 10), (3.5, 9), (5, 8), (9, 7), (14, 5), (24, 4), (40, 3), (80, 2)):
        if active_b <= limit:
            return speed
    return 1


def _complexity(params_b: float | None) -> int:
    if params_b is None:
        return 5
    for limit, value in ((1.5, 3), (3.5, 4), (5, 5), (9, 6), (24, 7), (40, 8), (80, 9)):
        if params_b <= limit:
            return value
    return 10


def derive_profile(name: str, show: dict | None = None, tag: dict | None = None) -> ModelProfile:
    """A profile from `/api/show` (capabilities, details) and the list entry, falling back to name hints."""
    lower = name.lower()
    details = (show or {}).get("details") or (tag or {}).get("details") or {}
    family = str(details.get("family") or "")
    params = parse_parameter_size(details.get("parameter_size"))
    if params is None:
        hint = _NAME_SIZE.search(lower)
        params = float(hint.group(1)) if hint else None
    active = _ACTIVE.search(lower)
    active_b = float(active.group(1)) if active else params

    caps = (show or {}).get("capabilities")
    if isinstance(caps, list) and caps:
        capabilities = {str(c) for c in caps}
    elif _EMBED.search(lower) or _EMBED.search(family.lower()):
        capabilities = {"embedding"}
    else:
        capabilities = {"completion"} | ({"vision"} if _VISION.search(lower) else set())
    if "bert" in family.lower() and "completion" not in capabilities:
        capabilities.add("embedding")

    categories: list[str] = []
    if "embedding" in capabilities and "completion" not in capabilities:
        return ModelProfile(name, family, params, _speed(active_b), 1, ("embedding",), frozenset(capabilities))
    code = bool(_CODE.search(lower))
    specialist = bool(_REASONING.search(lower) or _MATH.search(lower))  # r1, qwq, mathstral...: slow at chat
    reasoning = specialist or "thinking" in capabilities
    if "vision" in capabilities:
        categories.append("vision")
    if code:
        categories.append("code")
    if reasoning and not code and not (_MATH.search(lower) and not _REASONING.search(lower)):
        categories += ["reasoning", "math"]
    elif _MATH.search(lower):
        categories += ["math", "reasoning"]
    if not code and not specialist:
        categories.append("general")
        big_enough = params is None or params >= 3
        if big_enough:
            categories.append("creative")
        if big_enough and (_MULTILINGUAL.search(lower) or _MULTILINGUAL.search(family.lower()) or "aya" in lower):
            categories.append("translation")
    speed = _speed(active_b)
    if "thinking" in capabilities and reasoning:
        speed = max(1, speed - 1)  # thinking models spend tokens before the answer
    complexity = _complexity(params) + (1 if "thinking" in capabilities else 0)
    ordered = tuple(dict.fromkeys(categories))
    return ModelProfile(name, family, params, speed, min(10, complexity), ordered, frozenset(capabilities))


# -- the database -------------------------------------------------------------------------------------------

def profile_from_row(row: ModelAttributes, name: str | None = None) -> ModelProfile:
    return ModelProfile(name or row.name, row.family or "", row.parameter_b, row.speed, row.complexity,
                        tuple(json.loads(row.categories or "[]")), frozenset(json.loads(row.capabilities or "[]")),
                        row.bias, row.enabled, row.edited, stored=True)


def load_rows(session: Session) -> dict[str, ModelAttributes]:
    return {row.name: row for row in session.scalars(select(ModelAttributes))}


def _derived_values(profile: ModelProfile) -> dict:
    """A row's columns holding `profile`'s derived values, unedited."""
    return {"family": profile.family[:64], "parameter_b": profile.parameter_b, "speed": profile.speed,
            "complexity": profile.complexity, "categories": json.dumps(list(profile.categories)),
            "capabilities": json.dumps(sorted(profile.capabilities)), "bias": 0, "enabled": True, "edited": False,
            "updated_at": utcnow()}


def store_derived(session_factory, profiles: list[ModelProfile]) -> int:
    """Insert rows for models seen for the first time (another worker may race us: that one wins)."""
    added = 0
    for profile in profiles:
        try:
            with session_factory.begin() as session:
                if session.get(ModelAttributes, profile.key) is not None:
                    continue
                session.add(ModelAttributes(name=profile.key, **_derived_values(profile)))
            added += 1
        except IntegrityError:
            pass
    return added


def _int_in(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, f"must be a whole number from {low} to {high}")
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(field, f"must be a whole number from {low} to {high}")
    return value


def _names(value, field: str, allowed: tuple) -> list[str]:
    if isinstance(value, str):
        value = [v for v in re.split(r"[,\s]+", value) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(field, "must be a list of names")
    out = []
    for item in value:
        item = item.strip().lower()
        if item not in allowed:
            raise ValidationError(field, f"unknown value {item!r} (allowed: {', '.join(allowed)})")
        if item not in out:
            out.append(item)
    return out


def validate_attributes(data: dict) -> dict:
    """Check an edit (JSON or form fields); returns the normalised values of the fields given."""
    out = {}
    if "speed" in data:
        out["speed"] = _int_in(data["speed"], "speed", 1, 10)
    if "complexity" in data:
        out["complexity"] = _int_in(data["complexity"], "complexity", 1, 10)
    if "bias" in data:
        out["bias"] = _int_in(data["bias"], "bias", -50, 50)
    if "categories" in data:
        out["categories"] = _names(data["categories"], "categories", MODEL_CATEGORIES + ("embedding",))
    if "capabilities" in data:
        caps = _names(data["capabilities"], "capabilities", CAPABILITIES)
        if not caps:
            raise ValidationError("capabilities", "a model needs at least one capability")
        out["capabilities"] = caps
    if "enabled" in data:
        value = data["enabled"]
        out["enabled"] = value if isinstance(value, bool) else str(value).lower() in {"1", "true", "on", "yes"}
    if not out:
        raise ValidationError("speed", "nothing to change")
    return out


def update_attributes(session: Session, name: str, values: dict, derived: ModelProfile | None) -> ModelAttributes:
    """Apply validated values to a model's row (created from `derived` if missing) and mark it edited."""
    key = normalize_model_name(name)
    row = session.get(ModelAttributes, key)
    if row is None:
        if derived is None:
            raise ValidationError("name", f"unknown model {name!r}")
        row = ModelAttributes(name=key, **_derived_values(derived))
        session.add(row)
    for field_name, value in values.items():
        setattr(row, field_name, json.dumps(value) if field_name in ("categories", "capabilities") else value)
    row.edited = True
    row.updated_at = utcnow()
    return row


def reset_attributes(session: Session, name: str, derived: ModelProfile | None) -> None:
    """Throw the operator's edits away: the row gets `derived` (what the catalog derived from /api/show and the
    name; every worker derives the same) back, unedited. Without a derived profile (the model is no longer
    listed) the row is deleted, and the model's derived values apply should it come back."""
    key = normalize_model_name(name)
    row = session.get(ModelAttributes, key)
    if derived is None:
        if row is not None:
            session.delete(row)
        return
    if row is None:
        session.add(ModelAttributes(name=key, **_derived_values(derived)))
        return
    for column, value in _derived_values(derived).items():
        setattr(row, column, value)


def effective_profile(derived: ModelProfile, stored: ModelProfile | None) -> ModelProfile:
    """The stored values win (they are the derived ones unless edited); the name as Ollama lists it is kept."""
    if stored is None:
        return derived
    return replace(stored, name=derived.name)
