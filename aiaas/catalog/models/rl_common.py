"""Helpers shared by the reinforcement-learning catalog models (game and driving): an MLP policy as ONNX,
rollouts, onnxruntime sessions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def mlp_policy_onnx(
    layers: list[tuple[np.ndarray, np.ndarray]],
    activation: str,
    obs_shape: tuple[int, ...],
    action_names: list[str],
    scores: str,
    path: Path,
) -> Path:
    """An ONNX graph for a feed-forward policy given its (weight [out, in], bias) layers.

    ``observation`` FP32 [batch, *obs_shape] -> ``action`` INT64 [batch] (argmax: the deterministic action),
    ``action_name`` STRING [batch], and ``scores``: "probabilities" (softmax of the logits, for policy
    gradients) or "q_values" (raw outputs, for DQN). Built from the weights directly, so serving needs no
    torch and the graph is exactly the network that was evaluated."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []
    x = "observation"
    if len(obs_shape) > 1:
        nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
        x = "flat"
    for i, (w, b) in enumerate(layers):
        inits += [
            numpy_helper.from_array(w.astype(np.float32), f"w{i}"),
            numpy_helper.from_array(b.astype(np.float32), f"b{i}"),
        ]
        out = f"h{i}" if i < len(layers) - 1 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [out], transB=1))
        if i < len(layers) - 1:
            nodes.append(helper.make_node({"tanh": "Tanh", "relu": "Relu"}[activation], [out], [f"a{i}"]))
            out = f"a{i}"
        x = out
    if scores == "probabilities":
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["logits"], ["q_values"]))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0))
    inits.append(numpy_helper.from_array(np.array(action_names, dtype=object), "names"))
    nodes.append(helper.make_node("Gather", ["names", "action"], ["action_name"], axis=0))
    n = len(action_names)
    graph = helper.make_graph(
        nodes,
        "policy",
        [helper.make_tensor_value_info("observation", TensorProto.FLOAT, ["batch", *obs_shape])],
        [
            helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"]),
            helper.make_tensor_value_info("action_name", TensorProto.STRING, ["batch"]),
            helper.make_tensor_value_info(scores, TensorProto.FLOAT, ["batch", n]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="aiaas")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def torch_linear_layers(seq: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every nn.Linear in a module, in order."""
    import torch

    return [
        (m.weight.detach().cpu().numpy(), m.bias.detach().cpu().numpy())
        for m in seq.modules()
        if isinstance(m, torch.nn.Linear)
    ]


def rollout(env: Any, act: Any, seeds: list[int]) -> list[float]:
    """Total reward of one episode per seed, acting with ``act(observation batch) -> actions``."""
    import numpy as np

    returns = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, term, trunc, _ = env.step(int(act(obs[None].astype(np.float32))[0]))
            total += float(reward)
            done = term or trunc
        returns.append(total)
    return returns


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
