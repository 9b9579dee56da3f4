"""``fuse_rms_norms``: one fused op per RMS norm, only where it reproduces the module (aiaas/llm/norms.py)."""

from __future__ import annotations

from pathlib import Path

import torch

from aiaas.llm.norms import FusedRMSNorm, fuse_rms_norms


class OddNorm(torch.nn.Module):
    """Named like an RMS norm but computing something else: must keep its own forward."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(8))
        self.eps = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + 1.0


class WrapRMSNorm(OddNorm):
    pass


def test_fused_norms_give_the_same_logits(tiny_llm: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llm).eval()
    for p in model.parameters():  # non-trivial norm weights, so 1 + w and w differ
        if p.dim() == 1:
            torch.nn.init.normal_(p, std=0.3)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    with torch.inference_mode():
        ref = model(input_ids=ids).logits
    norms = [n for n, m in model.named_modules() if type(m).__name__.endswith("RMSNorm")]
    assert fuse_rms_norms(model) == len(norms) > 0
    assert all(isinstance(model.get_submodule(n), FusedRMSNorm) for n in norms)
    with torch.inference_mode():
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_a_norm_with_another_formula_keeps_its_forward() -> None:
    model = torch.nn.Sequential(WrapRMSNorm())
    assert fuse_rms_norms(model) == 0 and isinstance(model[0], WrapRMSNorm)
