"""A small random-weight Llama checkpoint built offline: the demo model, and the one the tests use.

    python scripts/make_demo_model.py ./demo-model           # ~170k parameters, a few seconds, no model hub
    python scripts/make_demo_model.py ./demo-100m --size 100m

The tokenizer is a BPE (Metaspace, like SentencePiece) trained on a paragraph of inline text, wrapped in
PreTrainedTokenizerFast with ``<s> </s> <pad> <unk>`` and a small Jinja chat template. Weights come from a fixed torch
seed, so the same arguments give the same checkpoint. Its text is gibberish (the weights are random); it is for
seeing the server work, measuring it and testing it. torch, transformers and tokenizers are imported only when a
function runs.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = """
The AirLLM server streams a large language model through a small device one layer at a time. Each decoder
layer is read from its own shard on disk, moved to the device, run, and released before the next one loads.
Ollama clients talk to it as if it were any other Ollama server: they list the models, show their details,
generate text and chat. A proxy in front of it decides which backend answers which request, and a dashboard
shows the queue, the resident model and the memory it uses. Hello world! How are you today? I am fine, thanks.
Numbers like 0 1 2 3 4 5 6 7 8 9 10 100 and 2024 appear too, with punctuation: commas, periods; colons: and
question marks? Quick brown foxes jump over lazy dogs while the system answers the user and the assistant helps.
"""

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

#: Arguments for a ~100M-parameter model (8 layers), the benchmark's CPU size.
MEDIUM_100M = {"hidden_size": 1024, "intermediate_size": 2816, "num_layers": 8, "num_heads": 16, "num_kv_heads": 8}


def build_tokenizer(vocab_size: int = 400):
    """Train a SentencePiece-style BPE tokenizer on CORPUS and wrap it for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "</s>", "<pad>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # SentencePiece-style word starts (▁), so every token decodes to valid text and leading spaces matter.
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator([CORPUS] * 4, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", chat_template=CHAT_TEMPLATE)


def build_tiny_model(folder: str | Path, *, hidden_size: int = 64, intermediate_size: int = 128,
                     num_layers: int = 3, num_heads: int = 4, num_kv_heads: int = 2, max_position_embeddings: int = 512,
                     seed: int = 0, dtype: str = "float32", quiet_eos: bool = True,
                     chat_template: bool = True) -> Path:
    """Write a random Llama checkpoint (config, safetensors, tokenizer, generation config) into ``folder``.

    ``quiet_eos`` zeroes the end-of-sequence row of lm_head, so greedy decoding on random weights practically
    never ends early and tests can rely on num_predict. Returns the folder.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    if not chat_template:
        tokenizer.chat_template = None
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
                         max_position_embeddings=max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False, dtype=dtype)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for param in model.parameters():      # wider than the default init, so greedy output varies by prompt
            if param.dim() == 2:
                param.normal_(0.0, 0.2)
        if quiet_eos:
            model.lm_head.weight[tokenizer.eos_token_id].zero_()
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(folder, safe_serialization=True)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


SIZES = {"tiny": {}, "100m": MEDIUM_100M}
