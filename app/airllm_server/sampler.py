"""Choosing one sequence's next token from its logits: greedy argmax, or Ollama's sampling with its own seed.

Each sequence owns a torch.Generator, so sequences sharing a sweep never disturb each other's random stream and a
request with a ``seed`` gets the same tokens whoever else is in the batch. Imports torch.
"""

from __future__ import annotations

import torch
from transformers import MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from .options import Sampling

PENALTIES = {"repeat_penalty", "presence_penalty", "frequency_penalty"}


class WindowedPenalty:
    """Ollama's repeat/presence/frequency penalties over the last ``last_n`` tokens (transformers' covers all)."""

    def __init__(self, repeat: float, presence: float, frequency: float, last_n: int):
        self.repeat, self.presence, self.frequency, self.last_n = repeat, presence, frequency, last_n

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        window = input_ids[:, -self.last_n:] if self.last_n > 0 else input_ids
        if self.repeat != 1.0:
            picked = torch.gather(scores, 1, window)
            picked = torch.where(picked < 0, picked * self.repeat, picked / self.repeat)
            scores = scores.scatter(1, window, picked)
        if self.presence or self.frequency:
            counts = torch.zeros_like(scores).scatter_add_(1, window, torch.ones_like(window, dtype=scores.dtype))
            scores = scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)
        return scores


class TokenChooser:
    """One sequence's sampler: penalties, then temperature, top_k, top_p and min_p (transformers' order)."""

    def __init__(self, sampling: Sampling):
        self.greedy = sampling.greedy
        self.processors = []
        # Greedy decoding is a pure argmax unless the request asked for penalties itself.
        if not sampling.greedy or (sampling.explicit & PENALTIES):
            s = sampling
            if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
                last_n = s.num_ctx if s.repeat_last_n < 0 else s.repeat_last_n
                self.processors.append(WindowedPenalty(s.repeat_penalty, s.presence_penalty, s.frequency_penalty,
                                                       last_n))
        if not sampling.greedy:
            self.processors.append(TemperatureLogitsWarper(sampling.temperature))
            if sampling.top_k > 0:
                self.processors.append(TopKLogitsWarper(sampling.top_k))
            if sampling.top_p < 1.0:
                self.processors.append(TopPLogitsWarper(sampling.top_p))
            if sampling.min_p > 0:
                self.processors.append(MinPLogitsWarper(sampling.min_p))
        self.generator = torch.Generator()
        if sampling.seed is not None:
            self.generator.manual_seed(sampling.seed)
        else:
            self.generator.seed()

    def choose(self, logits: torch.Tensor, history: list[int]) -> int:
        """The next token for a [vocab] row of logits, given every token of the sequence so far."""
        scores = logits.detach().to("cpu", torch.float32).unsqueeze(0)
        if self.processors:
            ids = torch.tensor([history], dtype=torch.long)
            for processor in self.processors:
                scores = processor(ids, scores)
        if self.greedy:
            return int(scores[0].argmax())
        probs = torch.softmax(scores[0], dim=-1)
        return int(torch.multinomial(probs, 1, generator=self.generator))
