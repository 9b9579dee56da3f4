"""Rotary cos/sin tables (aiaas.llm.rotary): the same numbers as the unpatched model, on a tiny Llama and a tiny
Gemma 3 (two rotary layer types)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aiaas.llm.rotary import CachedRotary, cache_rotary
from aiaas.llm.tiny import build_model


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp(f"rotary-{request.param}") / "hf", arch=request.param)


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
