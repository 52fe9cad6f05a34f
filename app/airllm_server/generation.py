"""One sequence's decoding, fed a token at a time: text deltas, stop sequences, limits and how it ended.

Pure Python (no torch): the batcher picks the tokens and hands them to ``Sequence.accept``; the request's thread
reads the events.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from .options import Sampling


class IncrementalDecoder:
    """Token ids in, text deltas out, one token at a time (the prefix/read-offset scheme TGI uses).

    Decoding a lone token loses context (SentencePiece's leading space, multi-token UTF-8 characters), so each
    step decodes a short window and emits what it adds; an incomplete character (U+FFFD at the end) waits.
    """

    def __init__(self, tokenizer, lock: threading.Lock):
        self.tokenizer = tokenizer
        self.lock = lock
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        with self.lock:
            return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token_id: int) -> str:
        """Add one token and return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        prefix = self._decode(self.ids[self.prefix_offset:self.read_offset])
        text = self._decode(self.ids[self.prefix_offset:])
        if len(text) > len(prefix) and not text.endswith("\ufffd"):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix):]
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end)."""
        prefix = self._decode(self.ids[self.prefix_offset:self.read_offset])
        text = self._decode(self.ids[self.prefix_offset:])
        self.prefix_offset = self.read_offset = len(self.ids)
        return text[len(prefix):] if len(text) > len(prefix) else ""


class StopMatcher:
    """Ollama's stop sequences: the text stops before the first match, and a possible match's start is held back."""

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""

    def feed(self, delta: str) -> tuple[str, bool]:
        """Return (text safe to emit, whether a stop sequence was hit)."""
        if not self.stops:
            return delta, False
        self.pending += delta
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.pending = self.pending[:min(hits)], ""
            return out, True
        hold = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        out = self.pending[:len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold:]
        return out, False

    def flush(self) -> str:
        """Text held back when generation ends without a match."""
        out, self.pending = self.pending, ""
        return out


@dataclass
class Outcome:
    """How a generation ended, with Ollama's counts and durations (ns)."""

    done_reason: str                 # stop | length | canceled | error
    prompt_eval_count: int
    eval_count: int
    prompt_eval_duration: int
    eval_duration: int
    output_ids: list[int]
    error: str | None = None


class Sequence:
    """One request's generation state. Events: ("text", str) as tokens decode, then one ("done", Outcome)."""

    def __init__(self, prompt_ids: list[int], sampling: Sampling, max_new_tokens: int, tokenizer,
                 tokenizer_lock: threading.Lock, events: queue.Queue | None = None):
        self.prompt_ids = list(prompt_ids)
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        self.decoder = IncrementalDecoder(tokenizer, tokenizer_lock)
        self.stopper = StopMatcher(sampling.stop)
        self.eos_ids: set[int] = set()             # the resident model's, set when the sequence joins a batch
        self.events: queue.Queue = events if events is not None else queue.Queue()
        self.generated: list[int] = []
        self.done_reason: str | None = None
        self.started: float | None = None          # its prompt pass began
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self.finished = False
        self.outcome: Outcome | None = None
        self.slot = None                            # the batcher's sweep slot (KV cache)
        self.chooser = None                         # the batcher's token sampler

    @property
    def history(self) -> list[int]:
        """Prompt and generated tokens, what penalties look at."""
        return self.prompt_ids + self.generated

    def accept(self, token: int) -> bool:
        """Record one token, stream its text, and return True when the sequence is complete."""
        now = time.perf_counter()
        if self.first_token_at is None:
            self.first_token_at = now
        self.last_token_at = now
        self.generated.append(token)
        if token in self.eos_ids:
            self.done_reason = "stop"
            return True
        text, hit = self.stopper.feed(self.decoder.push(token))
        if text:
            self.events.put(("text", text))
        if hit:
            self.done_reason = "stop"
            return True
        if len(self.generated) >= self.max_new_tokens:
            self.done_reason = "length"
            return True
        return False

    def end(self, reason: str | None = None, error: str | None = None) -> "Outcome":
        """Finish: flush held-back text (unless canceled or failed) and post the outcome; idempotent."""
        if self.finished:
            return self.outcome
        self.finished = True
        if reason is not None:
            self.done_reason = reason
        tail = self.decoder.flush()
        if self.done_reason not in ("stop", "canceled", "error"):
            text, hit = self.stopper.feed(tail)
            tail = text if hit else text + self.stopper.flush()
            self.done_reason = "stop" if hit else (self.done_reason or "length")
        elif self.done_reason != "canceled":
            tail = ""
        if tail:
            self.events.put(("text", tail))
        self.outcome = self._outcome(error)
        self.events.put(("done", self.outcome))
        return self.outcome

    def _outcome(self, error: str | None) -> Outcome:
        end = time.perf_counter()
        started = self.started or end
        first = self.first_token_at or end
        eval_ns = int(((self.last_token_at or first) - first) * 1e9) if len(self.generated) > 1 else 0
        return Outcome(done_reason=self.done_reason or "stop", prompt_eval_count=len(self.prompt_ids),
                       eval_count=len(self.generated), prompt_eval_duration=max(int((first - started) * 1e9), 0),
                       eval_duration=max(eval_ns, 0), output_ids=list(self.generated), error=error)


def eos_ids(generation_config, tokenizer) -> set[int]:
    """Every end-of-sequence id the model's generation config and tokenizer name."""
    ids = set()
    for value in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids
