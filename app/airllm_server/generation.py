"""One generation on a worker thread, streamed token by token, cancellable within one layer.

Imports torch and transformers: only the engine imports this module, and only once a model is needed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList, StoppingCriteria, \
    StoppingCriteriaList

from .options import Sampling

log = logging.getLogger(__name__)


class GenerationCanceled(Exception):
    """Raised from a layer hook to abandon a forward pass whose client left."""


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


class WindowedPenalty(LogitsProcessor):
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


class TokenTap(StoppingCriteria):
    """Called by generate() right after each new token: emits its text at once and decides whether to stop."""

    def __init__(self, job: "GenerationJob"):
        self.job = job

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        stop = self.job.on_token(int(input_ids[0, -1]))
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class GenerationJob:
    """Runs model.generate on its own thread and hands out ("text", str) events, then one ("done", Outcome)."""

    def __init__(self, model, tokenizer, tokenizer_lock: threading.Lock, prompt_ids: list[int], sampling: Sampling,
                 max_new_tokens: int, cancel: threading.Event, gone: Callable[[], bool]):
        self.model = model
        self.prompt_ids = prompt_ids
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        self.cancel = cancel
        self.gone = gone
        self.decoder = IncrementalDecoder(tokenizer, tokenizer_lock)
        self.stopper = StopMatcher(sampling.stop)
        self.eos_ids = _eos_ids(model, tokenizer)
        self.events: queue.Queue = queue.Queue()
        self.generated: list[int] = []
        self.done_reason: str | None = None
        self.started = 0.0
        self.first_token_at: float | None = None
        self.last_token_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="airllm-generate", daemon=True)

    # ---- called on the generation thread ------------------------------------------------------

    def on_token(self, token: int) -> bool:
        """Record one token, stream its text, and return True when generation must stop."""
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
        if self.cancel.is_set() or self.gone():
            self.cancel.set()
            self.done_reason = "canceled"
            return True
        if len(self.generated) >= self.max_new_tokens:
            self.done_reason = "length"
            return True
        return False

    def _generate_kwargs(self) -> dict:
        s = self.sampling
        base = getattr(self.model, "generation_config", None) or GenerationConfig()
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens, do_sample=not s.greedy, num_beams=1,
            eos_token_id=base.eos_token_id, bos_token_id=base.bos_token_id,
            pad_token_id=base.pad_token_id if base.pad_token_id is not None else _first(base.eos_token_id),
        )
        processors = LogitsProcessorList()
        penalties = {"repeat_penalty", "presence_penalty", "frequency_penalty"}
        # Greedy decoding is a pure argmax unless the request asked for penalties itself.
        if not s.greedy or (s.explicit & penalties):
            if s.repeat_penalty != 1.0 or s.presence_penalty or s.frequency_penalty:
                last_n = s.num_ctx if s.repeat_last_n < 0 else s.repeat_last_n
                processors.append(WindowedPenalty(s.repeat_penalty, s.presence_penalty, s.frequency_penalty, last_n))
        if not s.greedy:
            config.temperature = s.temperature
            config.top_k = s.top_k if s.top_k > 0 else None
            config.top_p = s.top_p
            config.min_p = s.min_p if s.min_p > 0 else None
        return {"generation_config": config, "logits_processor": processors,
                "stopping_criteria": StoppingCriteriaList([TokenTap(self)])}

    def _run(self) -> None:
        error = None
        try:
            if self.sampling.seed is not None:
                torch.manual_seed(self.sampling.seed)
            else:
                torch.seed()
            ids = torch.tensor([self.prompt_ids], dtype=torch.long, device=self.model.device)
            self.started = time.perf_counter()
            if self.max_new_tokens <= 0:      # num_predict 0, or a prompt that fills the context
                self.done_reason = "length"
                return
            with torch.inference_mode():
                self.model.generate(ids, attention_mask=torch.ones_like(ids), **self._generate_kwargs())
        except GenerationCanceled:
            self.done_reason = "canceled"
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            log.exception("generation failed")
            error = f"{type(exc).__name__}: {exc}"
            self.done_reason = "error"
        finally:
            tail = self.decoder.flush()
            if self.done_reason not in ("stop", "canceled", "error"):
                text, hit = self.stopper.feed(tail)
                tail = text if hit else text + self.stopper.flush()
                self.done_reason = "stop" if hit else (self.done_reason or "length")
            elif self.done_reason != "canceled":
                tail = ""
            if tail:
                self.events.put(("text", tail))
            self.events.put(("done", self._outcome(error)))

    def _outcome(self, error: str | None) -> Outcome:
        end = time.perf_counter()
        first = self.first_token_at or end
        prompt_ns = int(((first if self.first_token_at else end) - (self.started or end)) * 1e9)
        eval_ns = int(((self.last_token_at or first) - first) * 1e9) if len(self.generated) > 1 else 0
        return Outcome(done_reason=self.done_reason or "stop", prompt_eval_count=len(self.prompt_ids),
                       eval_count=len(self.generated), prompt_eval_duration=max(prompt_ns, 0),
                       eval_duration=max(eval_ns, 0), output_ids=list(self.generated), error=error)

    # ---- called on the request thread ----------------------------------------------------------

    def start(self) -> "GenerationJob":
        """Start generating on the worker thread."""
        self._thread.start()
        return self

    def stream(self) -> Iterator[tuple[str, object]]:
        """Yield events until the terminal ("done", Outcome)."""
        while True:
            kind, value = self.events.get()
            yield kind, value
            if kind == "done":
                return

    def stop(self) -> None:
        """Ask the worker to stop and wait for it (never leave a torch thread running behind a request)."""
        self.cancel.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()


def _first(value):
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _eos_ids(model, tokenizer) -> set[int]:
    ids = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    return ids
