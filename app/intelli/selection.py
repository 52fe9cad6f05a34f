"""Pick a model for a classified request: hard capability filters, then a deterministic, explained score.

Score terms (points): category fit (0-40), complexity fit (up to 25, big penalties for a model too weak, small
ones for overkill), speed (0-20, weighted up for simple prompts), already loaded in /api/ps (+8; a big
unloaded model for a simple prompt -10), health (up to -40 for recent failures), language (+4 for a
multilingual model on a non-English prompt), and the operator's bias. Ties break by name, so the same request
and the same state always give the same answer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .attributes import ModelProfile
from .classifier import EMBEDDING, Classification, RequestFeatures

BIG_MODEL_B = 14.0  # swapping in a model above this many billion parameters for a small prompt costs a load


@dataclass
class Candidate:
    name: str
    score: float = 0.0
    parts: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    excluded: str | None = None

    def as_dict(self) -> dict:
        return {"model": self.name, "score": round(self.score, 2), "parts": {k: round(v, 2) for k, v in
                                                                           self.parts.items()},
                "reasons": self.reasons, "excluded": self.excluded}


@dataclass
class Decision:
    classification: Classification
    requirements: frozenset
    ranked: list  # eligible candidates, best first
    excluded: list  # candidates that cannot serve the request, with why

    @property
    def chosen(self) -> Candidate | None:
        return self.ranked[0] if self.ranked else None

    def summary(self, limit: int = 3) -> str:
        """One line for the request log."""
        c = self.classification
        if not self.chosen:
            return f"{c.category}, complexity {c.complexity}: no eligible model"
        top = self.chosen
        others = ", ".join(f"{x.name} {x.score:.0f}" for x in self.ranked[1:limit])
        return (f"chose {top.name} for {c.category}, complexity {c.complexity} ({c.source}); score "
                f"{top.score:.0f}: " + "; ".join(top.reasons[:4]) + (f" | runners-up: {others}" if others else ""))

    def as_dict(self) -> dict:
        return {"classification": self.classification.as_dict(), "requirements": sorted(self.requirements),
                "chosen": self.chosen.name if self.chosen else None,
                "candidates": [c.as_dict() for c in self.ranked],
                "excluded": [c.as_dict() for c in self.excluded]}


def _missing(profile: ModelProfile, requirements: frozenset) -> str | None:
    if not profile.enabled:
        return "disabled for IntelliProxyLLM"
    if "embedding" in requirements:
        return None if "embedding" in profile.capabilities else "not an embedding model"
    if not profile.chat_capable:
        return "embedding-only model" if "embedding" in profile.capabilities else "cannot generate text"
    missing = sorted(requirements - profile.capabilities)
    return f"lacks {', '.join(missing)}" if missing else None


def score_candidate(profile: ModelProfile, c: Classification, features: RequestFeatures, loaded: bool,
                    penalty: float, via_airllm: bool) -> Candidate:
    cand = Candidate(profile.name)
    parts, reasons = cand.parts, cand.reasons
    category = c.category
    cats = profile.categories
    if category == EMBEDDING:
        parts["category"] = 40.0
    elif category in cats:
        rank = cats.index(category)
        parts["category"] = 40.0 - 4 * min(rank, 3)
        reasons.append(f"good at {category} (+{parts['category']:.0f})")
    elif category == "vision":
        parts["category"] = 20.0  # vision-capable (filtered) but not tagged for it
        reasons.append("can see images (+20)")
    elif "general" in cats:
        parts["category"] = 15.0
        reasons.append(f"general model for {category} (+15)")
    else:
        parts["category"] = 0.0
        reasons.append(f"specialised in {', '.join(cats[:2]) or 'nothing'}, not {category} (+0)")

    need, able = c.complexity, profile.complexity
    if able >= need:
        parts["complexity"] = 25.0 - 2.0 * (able - need)
        reasons.append(f"handles complexity {need} (capacity {able}, {parts['complexity']:+.0f})")
    else:
        parts["complexity"] = 25.0 - 9.0 * (need - able)
        reasons.append(f"complexity {need} above its capacity {able} ({parts['complexity']:+.0f})")

    speed = 1 if via_airllm else profile.speed
    weight = 0.4 + 1.6 * (10 - need) / 9  # 2.0 for trivial prompts, 0.4 for the hardest
    parts["speed"] = speed * weight
    reasons.append(f"speed {speed}{' (AirLLM)' if via_airllm else ''} ({parts['speed']:+.1f})")

    if loaded:
        parts["loaded"] = 8.0
        reasons.append("already loaded (+8)")
    elif (profile.parameter_b or 0) > BIG_MODEL_B and need <= 4:
        parts["loaded"] = -10.0
        reasons.append("would load a big model for a simple prompt (-10)")
    if penalty > 0:
        parts["health"] = -40.0 * penalty
        reasons.append(f"failed recently ({parts['health']:+.0f})")
    if c.language != "en" and "translation" in cats:
        parts["language"] = 4.0
        reasons.append(f"multilingual, prompt in {c.language} (+4)")
    if category == "translation" and "translation" not in cats and c.language != "en":
        parts["language"] = -4.0
    if profile.bias:
        parts["bias"] = float(profile.bias)
        reasons.append(f"operator bias ({profile.bias:+d})")
    cand.score = sum(parts.values())
    return cand


def select(features: RequestFeatures, classification: Classification, snapshot, health, table,
           now: float | None = None) -> Decision:
    """Rank every model in the snapshot for this request; ineligible ones are listed with the reason."""
    requirements = features.requirements
    ranked, excluded = [], []
    for key in sorted(snapshot.models):
        profile = snapshot.models[key]
        why_not = _missing(profile, requirements)
        if why_not:
            excluded.append(Candidate(profile.name, excluded=why_not))
            continue
        cand = score_candidate(profile, classification, features, key in snapshot.loaded,
                               health.penalty(key, now), table.uses_airllm(profile.name))
        ranked.append(cand)
    ranked.sort(key=lambda cand: (-round(cand.score, 6), cand.name))
    return Decision(classification, requirements, ranked, excluded)
