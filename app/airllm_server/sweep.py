"""One sweep: every active sequence through the model with each layer loaded once (the step of continuous batching).

The new tokens of all sequences are packed into one row (``[1, total_tokens, hidden]``). Embeddings, norms,
projections and the MLP then run as one matmul over all of them, so a layer is loaded (airllm's forward hooks) and
its weights are read once per step, however many sequences share it. Attention alone runs per sequence, against
that sequence's own KV cache and positions: each sequence sees exactly its own tokens, with no padding, which is
why its greedy tokens equal those it gets alone (tests/airllm_server/test_batching.py).

Works for decoders laid out like Llama (``model.embed_tokens``, ``model.layers``, ``model.norm``,
``model.rotary_emb``, ``lm_head``): Llama, Mistral, Qwen2, Qwen3 and their kin. Sliding-window attention is not
applied (full attention within num_ctx). Imports torch: only loaded after runtime.heavy_imports().
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

ATTENTION = "airllm_packed"


class SweepCanceled(Exception):
    """Raised between layers when every sequence of the sweep has been abandoned."""


class UnsupportedModel(Exception):
    """The model's module layout is not one the sweep can drive."""


@dataclass
class Slot:
    """One sequence's part of a sweep: the tokens to feed and its KV cache (layer index -> (keys, values))."""

    new_ids: list[int]
    position: int                                   # tokens already in the cache
    cache: dict = field(default_factory=dict)


def packed_attention(module, query, key, value, attention_mask, packed: list[Slot] | None = None, **kwargs):
    """Attention for a packed row: split it per sequence, extend each sequence's cache, attend, join again."""
    if packed is None:          # called by transformers' own forward/generate: plain sdpa
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    outputs, start = [], 0
    for slot in packed:
        end = start + len(slot.new_ids)
        k, v = key[:, :, start:end], value[:, :, start:end]
        past = slot.cache.get(module.layer_idx)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        slot.cache[module.layer_idx] = (k, v)
        # A prompt pass starts from an empty cache, so sdpa's causal mask (aligned top-left) is exact; a decode
        # step has one query that may see everything.
        out, _ = sdpa_attention_forward(module, query[:, :, start:end], k, v, None, dropout=0.0,
                                        scaling=kwargs.get("scaling"))
        outputs.append(out)
        start = end
    return torch.cat(outputs, dim=1), None


AttentionInterface.register(ATTENTION, packed_attention)


class Sweeper:
    """Drives one airllm model module by module over a batch of slots."""

    def __init__(self, airllm_model):
        hf = getattr(airllm_model, "model", None)
        base = getattr(hf, "model", None)
        needed = ("embed_tokens", "layers", "norm", "rotary_emb")
        if base is None or not all(hasattr(base, n) for n in needed) or not hasattr(hf, "lm_head"):
            raise UnsupportedModel(f"{type(hf).__name__} is not laid out like Llama (embed_tokens, layers, norm, "
                                   "rotary_emb, lm_head); the AirLLM server cannot batch it")
        self.hf, self.base = hf, base
        self.device = airllm_model.device
        self.layer_names = list(getattr(airllm_model, "layer_names", []))
        for layer in base.layers:
            layer.self_attn.config._attn_implementation = ATTENTION
        hf.config._attn_implementation = ATTENTION

    @property
    def module_count(self) -> int:
        """Modules one sweep visits: embeddings, every decoder layer, the final norm and lm_head."""
        return len(self.base.layers) + 3

    def run(self, slots: list[Slot], before_module: Callable[[int], None] | None = None) -> torch.Tensor:
        """Feed every slot's new tokens; return the next-token logits of each slot ([len(slots), vocab], float32).

        ``before_module(i)`` runs before module i is loaded (a progress report, or SweepCanceled to abandon it).
        Each slot's cache grows by its new tokens; ``position`` is left for the caller to advance.
        """
        check = before_module or (lambda i: None)
        ids = [t for s in slots for t in s.new_ids]
        positions = [p for s in slots for p in range(s.position, s.position + len(s.new_ids))]
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        position_ids = torch.tensor([positions], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            check(0)
            hidden = self.base.embed_tokens(input_ids)
            rotary = self.base.rotary_emb(hidden, position_ids=position_ids)
            for i, layer in enumerate(self.base.layers, 1):
                check(i)
                hidden = layer(hidden, attention_mask=None, position_ids=position_ids, position_embeddings=rotary,
                               packed=slots)
            last, total = [], 0
            for s in slots:
                total += len(s.new_ids)
                last.append(total - 1)
            check(len(self.base.layers) + 1)
            hidden = self.base.norm(hidden[:, last])
            check(len(self.base.layers) + 2)
            logits = self.hf.lm_head(hidden)
        return logits[0].float()
