"""``NBitsLinear``: onnxruntime's ``MatMulNBits`` behind ``nn.Linear``'s interface (aiaas/llm/nbits.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aiaas.llm.nbits import BLOCK, NBitsLinear, pack


def _unpack(q: np.ndarray, scales: np.ndarray, zps: np.ndarray, bits: int, n: int, k: int) -> np.ndarray:
    """The weight ``MatMulNBits`` computes with, rebuilt from the packed arrays (the op's documented layout)."""
    blocks = k // BLOCK
    if bits == 4:
        q = np.stack([q & 0x0F, q >> 4], -1).reshape(n, blocks, BLOCK)
        z = np.stack([zps & 0x0F, zps >> 4], -1).reshape(n, -1)[:, :blocks]
    else:
        z = zps.reshape(n, blocks)
    return ((q.astype(np.float32) - z[..., None]) * scales.reshape(n, blocks, 1)).reshape(n, k)


@pytest.mark.parametrize("bits", [4, 8])
def test_pack_reproduces_a_weight_on_its_block_grid(bits: int) -> None:
    """A weight whose every block of 32 already lies on a grid of 2**bits levels that includes zero (as a
    GGUF-dequantized weight does) comes back exactly; any weight comes back within half a step of its block."""
    rng = np.random.default_rng(0)
    n, k, levels = 6, 4 * BLOCK, (1 << bits) - 1
    step = rng.uniform(0.01, 0.1, (n, k // BLOCK, 1)).astype(np.float32)
    low = rng.integers(0, levels, (n, k // BLOCK, 1))
    q = rng.integers(0, levels + 1, (n, k // BLOCK, BLOCK))
    q[..., 0], q[..., 1] = 0, levels  # each block spans the whole grid, as a min/max quantizer leaves it
    grid = ((q - low) * step).reshape(n, k).astype(np.float32)
    got = _unpack(*pack(torch.from_numpy(grid), bits), bits, n, k)
    np.testing.assert_allclose(got, grid, atol=1e-6)

    w = rng.standard_normal((n, k)).astype(np.float32)
    packed = pack(torch.from_numpy(w), bits)
    scales = packed[1].reshape(n, k // BLOCK, 1)
    err = np.abs(_unpack(*packed, bits, n, k) - w).reshape(n, k // BLOCK, BLOCK)
    assert (err <= scales / 2 + 1e-6).all()


def test_pack_refuses_a_partial_block_and_odd_bits() -> None:
    with pytest.raises(ValueError, match="not a multiple of the block size"):
        pack(torch.zeros(4, 40), 8)
    with pytest.raises(ValueError, match="bits must be 4 or 8"):
        pack(torch.zeros(4, 32), 3)


def test_nbits_linear_matches_the_float_layer() -> None:
    """8-bit weights and int8 activations per block of 32: within 1 % of float32, bias kept, any leading shape,
    an all-zero row gives the bias, and a row's result does not depend on the rows batched with it."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(128, 48, bias=True)
    q = NBitsLinear(lin, bits=8, threads=1)
    x = torch.randn(3, 5, 128)
    with torch.inference_mode():
        ref, got = lin(x), q(x)
        zero = q(torch.zeros(2, 128))
        small = torch.randn(1, 128) * 1e-3
        alone, batched = q(small), q(torch.cat([small, torch.randn(1, 128) * 1e3]))[:1]
    assert got.shape == ref.shape == (3, 5, 48)
    assert float((got - ref).norm() / ref.norm()) < 0.01
    assert torch.allclose(zero, lin.bias.detach().expand(2, 48), atol=1e-6)
    assert torch.allclose(alone, batched, rtol=1e-5, atol=1e-7)
    assert "bits=8" in repr(q)


def test_siblings_share_one_call_and_never_serve_a_stale_output() -> None:
    """q/k/v (or gate/up) on one session: each member's output is its own layer's, whatever order they are called
    in; a different input, or the same tensor modified in place, is computed afresh."""
    torch.manual_seed(0)
    lins = [torch.nn.Linear(64, n, bias=b) for n, b in ((64, False), (32, True), (32, False))]
    q, k, v = NBitsLinear.siblings(lins, bits=8, threads=1)
    alone = [NBitsLinear(lin, bits=8, threads=1) for lin in lins]
    x, other = torch.randn(2, 3, 64), torch.randn(2, 3, 64)
    with torch.no_grad():
        want = [m(x) for m in alone]
        got = [k(x), q(x), v(x)]  # any order
        assert torch.equal(got[1], want[0]) and torch.equal(got[0], want[1]) and torch.equal(got[2], want[2])
        assert torch.equal(q(other), alone[0](other))  # a new input: computed, not served from the last one
        x.mul_(2.0)  # modified in place between the siblings' calls: k must not serve the old x's output
        assert torch.equal(k(x), alone[1](x))
    with pytest.raises(ValueError, match="same in_features"):
        NBitsLinear.siblings([torch.nn.Linear(64, 8), torch.nn.Linear(32, 8)])
