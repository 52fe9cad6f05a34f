"""Small random-weight Llama checkpoints for tests and benchmarks, and plain transformers' greedy reference.

    from tests.support.tiny_model import build_tiny_model, greedy_reference
    folder = build_tiny_model(tmp_path / "tiny")                 # ~170k parameters, ~3 s
    folder = build_tiny_model(tmp_path / "m", **MEDIUM_100M)     # ~100M parameters, for the benchmark
    ids, text = greedy_reference(folder, prompt_ids, max_new_tokens=8)

The recipe itself is app/airllm_server/demo.py, which users run through scripts/make_demo_model.py.
Imports torch and transformers when called: only call it where they are installed.
"""

from __future__ import annotations

from pathlib import Path

from app.airllm_server.demo import CHAT_TEMPLATE, CORPUS, MEDIUM_100M, build_tiny_model, build_tokenizer  # noqa: F401


def chat_prompt_ids(folder: str | Path, messages: list[dict]) -> list[int]:
    """The token ids the server builds for a chat (template applied, no extra special tokens)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def greedy_reference(folder: str | Path, prompt_ids: list[int], max_new_tokens: int) -> tuple[list[int], str]:
    """Plain transformers (full load, no airllm): greedy token ids and their text for the given prompt ids."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    model.eval()
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
    new = out[0, len(prompt_ids):].tolist()
    return new, tok.decode(new, skip_special_tokens=True)
