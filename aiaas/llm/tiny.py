"""Build a small, randomly initialised decoder-only model in Hugging Face format, locally.

Tests and the benchmark need an LLM without downloading one: a byte-level BPE tokenizer trained on a few
sentences and a Llama (or Gemma 3) config with random weights, saved as a normal HF directory
(``config.json``, ``model.safetensors``, ``tokenizer.json`` ...). The weights are seeded, so every build
generates the same text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "A model as a service answers requests from many users at once.",
    "Continuous batching lets new requests join the running batch between decode steps.",
    "Hello world! How are you today? I am fine, thank you.",
    "Tokens per second, time to first token, and tokens per minute are what we measure.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
]
SPECIAL = ["<|endoftext|>", "<|pad|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]


def build_tokenizer(out: Path, vocab_size: int = 512, chat_template: str | None = CHAT_TEMPLATE) -> None:
    """A byte-level BPE tokenizer (every string encodes) saved with ``save_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>", bos_token=None)
    if chat_template:
        fast.chat_template = chat_template
    fast.save_pretrained(out)


def build_model(
    out: str | Path,
    *,
    arch: str = "llama",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 128,
    vocab_size: int = 512,
    max_positions: int = 2048,
    chat_template: str | None = CHAT_TEMPLATE,
    seed: int = 0,
    model_vocab: int | None = None,
) -> Path:
    """Write a random ``arch`` ("llama" or "gemma3") causal LM and its tokenizer to ``out``; returns ``out``.

    ``model_vocab`` widens the embedding and output layer beyond the tokenizer (to mimic the compute of a
    real model's large vocabulary in benchmarks; ids past the tokenizer decode to nothing)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_tokenizer(out, vocab_size, chat_template)
    tok = AutoTokenizer.from_pretrained(out)
    vocab = max(len(tok), model_vocab or 0)
    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    config: Any
    if arch == "llama":
        from transformers import LlamaConfig

        config = LlamaConfig(**common)
    elif arch == "gemma3":
        from transformers import Gemma3TextConfig

        config = Gemma3TextConfig(**common, head_dim=hidden // heads, sliding_window=32)
    else:
        raise ValueError(f"unknown arch {arch!r}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    # Random small-std weights give near-uniform logits; widen them so greedy text is not one token repeated.
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0.0, 1.0)
        model.get_output_embeddings().weight.normal_(0.0, 0.5)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    return out
