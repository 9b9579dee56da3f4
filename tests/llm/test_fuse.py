"""Rotary cos/sin tables and the fused q/k/v projection (aiaas.llm.fuse): the same numbers as the unpatched
model, on a tiny Llama and a tiny Gemma 3 (two rotary layer types), in float32 and with int8 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aiaas.llm.fuse import CachedRotary, cache_rotary, fuse_qkv
from aiaas.llm.quant import quantize
from aiaas.llm.tiny import build_model


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp(f"fuse-{request.param}") / "hf", arch=request.param)


def _load(path: Path) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()


def _greedy(model: torch.nn.Module, ids: list[int], n: int) -> tuple[list[int], torch.Tensor]:
    """Greedy tokens with the KV cache (decode steps of one token, as the engine runs) and the last logits."""
    from transformers import DynamicCache

    cache = DynamicCache()
    x = torch.tensor([ids])
    out: list[int] = []
    with torch.inference_mode():
        for _ in range(n):
            logits = model(input_ids=x, cache=cache, use_cache=True).logits[0, -1]
            out.append(int(logits.argmax()))
            x = torch.tensor([[out[-1]]])
    return out, logits


def test_cached_rotary_same_numbers(tiny: Path) -> None:
    ref, got = _load(tiny), _load(tiny)
    assert cache_rotary(got, 64) == 1
    assert any(isinstance(m, CachedRotary) for m in got.modules())
    prompt = [5, 17, 42, 99, 7, 3]
    ref_tokens, ref_logits = _greedy(ref, prompt, 8)
    got_tokens, got_logits = _greedy(got, prompt, 8)
    assert got_tokens == ref_tokens
    assert torch.equal(got_logits, ref_logits)
    # past the table: the module itself computes them (same numbers)
    long_tokens, _ = _greedy(got, list(range(5, 65)), 8)
    assert long_tokens == _greedy(ref, list(range(5, 65)), 8)[0]


@pytest.mark.parametrize("mode", ["none", "int8-attention"])
def test_fused_qkv_same_greedy_tokens(tiny: Path, mode: str) -> None:
    ref, got = _load(tiny), _load(tiny)
    layers = got.config.num_hidden_layers
    assert fuse_qkv(got) == layers
    assert quantize(ref, mode) == (1 + 4 * layers if mode == "int8-attention" else 0)
    assert quantize(got, mode) == (1 + 2 * layers if mode == "int8-attention" else 0)  # lm_head, qkv and o per layer
    prompt = [5, 17, 42, 99, 7, 3]
    ref_tokens, ref_logits = _greedy(ref, prompt, 12)
    got_tokens, got_logits = _greedy(got, prompt, 12)
    assert got_tokens == ref_tokens
    if mode == "int8-attention":  # integer GEMMs of the same quantized activation: the same numbers exactly
        assert torch.equal(got_logits, ref_logits)
    else:
        assert torch.allclose(got_logits, ref_logits, atol=1e-4)
