"""``nn.Linear`` on onnxruntime's ``MatMulNBits``: weights stored in 8 (or 4) bits per block of 32 input
features, each block with its own scale and zero point; activations quantized to int8 per block of 32 inside
the kernel (``accuracy_level`` 4), which is what llama.cpp's own CPU kernels do (Q8_0 activations).

Why this kernel. Decode reads every weight once per token, so bytes per weight set the speed, and continuous
batching needs a kernel that stays fast for a batch of decode rows. ``MatMulNBits`` (MLAS, AVX2) is both;
torch ships no such kernel for CPU (its weight-only int8/int4 ops are slower than float32 at batch 16 here,
``torch._int_mm`` is a reference loop; see ``aiaas.llm.quant``).

Why blocks of 32. A GGUF's weights are blocks of 32 (Q8_0, Q5_0) or of 16/32 inside super-blocks (Q4_K, Q6_K),
each with its own scale: a model dequantized from a GGUF re-quantizes to 8 bits per block of 32 with an error of at
most 1/510 of the block's range, far under the grid it came from.

Sessions. Each layer is one onnxruntime session, except sibling layers that read the same input (q/k/v,
gate/up: ``NBitsLinear.siblings``), which share one with their weights concatenated: one call instead of three,
which took Gemma-3-270M's decode from 127 calls per token to 73 (HF loop, 2 threads: 16.5 -> 20-24 tok/s).
Each session runs on ``threads`` intra-op threads that sleep between calls (``allow_spinning`` 0: a spinning
pool would take the cores the torch ops of the same step need; with spinning, 18 layers' pools cost 10x).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

BLOCK = 32  # input features per quantization block (GGUF's block size)


def pack(w: torch.Tensor, bits: int, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``w`` [N, K] float -> (``MatMulNBits`` B [N, K/block, block*bits/8] uint8, scales [N*K/block] float32,
    zero points, packed as the op reads them); min/max asymmetric per block, zero kept exactly representable.
    torch ops (in place where they can be: a 168M-weight matrix packs in ~1 s on 2 cores)."""
    n, k = w.shape
    if k % block:
        raise ValueError(f"in_features {k} is not a multiple of the block size {block}")
    if bits not in (4, 8):
        raise ValueError(f"bits must be 4 or 8, got {bits}")
    qmax = (1 << bits) - 1
    wb = w.detach().reshape(n, k // block, block).float()
    lo, hi = torch.aminmax(wb, dim=-1)
    lo.clamp_(max=0.0)
    scale = hi.clamp_(min=0.0).sub_(lo).div_(qmax)
    scale[scale == 0] = 1.0  # an all-zero block: any scale, zero point 0
    zp = lo.div_(scale).neg_().round_().clamp_(0, qmax)
    q = (wb / scale.unsqueeze(-1)).round_().add_(zp.unsqueeze(-1)).clamp_(0, qmax).to(torch.uint8)
    z = zp.to(torch.uint8)
    if bits == 4:  # two per byte, low nibble first; zero points padded to a whole byte per row
        q = q[..., 0::2] | (q[..., 1::2] << 4)
        if z.shape[1] % 2:
            z = torch.cat([z, torch.zeros((n, 1), dtype=torch.uint8)], 1)
        z = z[:, 0::2] | (z[:, 1::2] << 4)
    return q.contiguous().numpy(), scale.reshape(-1).numpy(), z.contiguous().reshape(-1).numpy()


def _session(w: torch.Tensor, bits: int, threads: int) -> Any:
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    n, k = w.shape
    q, s, z = pack(w, bits)
    node = helper.make_node(
        "MatMulNBits",
        ["A", "B", "S", "Z"],
        ["Y"],
        domain="com.microsoft",
        K=k,
        N=n,
        bits=bits,
        block_size=BLOCK,
        accuracy_level=4,  # int8 activations per block: llama.cpp's arithmetic; 0 (float) is 3-10x slower here
    )
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        [numpy_helper.from_array(q, "B"), numpy_helper.from_array(s, "S"), numpy_helper.from_array(z, "Z")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


class _Shared:
    """One session for sibling layers that read the same input (q/k/v, gate/up): the first member called computes
    every member's output in one call (one pass over the input, one call's overhead instead of three); the others
    take theirs while the input is the same tensor object (and, outside inference mode, unmodified: its version
    counter unchanged). Decoder blocks call siblings one after another on one tensor; a member called again
    before the others took theirs recomputes."""

    def __init__(self, linears: list[nn.Linear], bits: int, threads: int) -> None:
        self.in_features = linears[0].in_features
        self.sizes = [lin.out_features for lin in linears]
        self.session = _session(torch.cat([lin.weight.detach().cpu() for lin in linears]), bits, threads)
        self._input: torch.Tensor | None = None  # held while members still have to take their outputs
        self._version = -1
        self._outs: list[torch.Tensor | None] = []

    def output(self, x: torch.Tensor, i: int) -> torch.Tensor:
        version = -1 if x.is_inference() else x._version  # inference tensors keep no version counter
        if self._input is not x or self._version != version or self._outs[i] is None:
            lead = x.shape[:-1]
            a = x.detach().reshape(-1, self.in_features).float().contiguous().numpy()
            y = torch.from_numpy(self.session.run(None, {"A": a})[0]).reshape(*lead, sum(self.sizes))
            self._outs = [y] if len(self.sizes) == 1 else [t.contiguous() for t in y.split(self.sizes, -1)]
            self._input, self._version = x, version
        out = self._outs[i]
        assert out is not None
        self._outs[i] = None
        if all(o is None for o in self._outs):
            self._input = None
        return out


class NBitsLinear(nn.Module):
    """``linear`` with its weight quantized to ``bits`` per weight in blocks of 32 (see the module doc)."""

    def __init__(self, linear: nn.Linear, bits: int = 8, threads: int = 1, *, shared: _Shared | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.bits = linear.in_features, linear.out_features, bits
        self._shared = shared or _Shared([linear], bits, threads)
        self._index = 0  # this layer's output among the shared session's (``siblings`` sets it)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @classmethod
    def siblings(cls, linears: list[nn.Linear], bits: int = 8, threads: int = 1) -> list[NBitsLinear]:
        """Layers that read the same input, on one session (see ``_Shared``); same ``in_features`` required."""
        if len({lin.in_features for lin in linears}) != 1:
            raise ValueError("sibling layers must have the same in_features")
        shared = _Shared(linears, bits, threads)
        out = [cls(lin, bits, threads, shared=shared) for lin in linears]
        for i, layer in enumerate(out):
            layer._index = i
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._shared.output(x, self._index)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}"
