"""Tiny local models and tasks for the optimization tests: a synthetic 4-class problem learned by a small MLP,
and a small transformer encoder on a synthetic sequence task. Trained once per session (a few seconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from jobkit import kill_stray_processes

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from aiaas.optimize import Evaluation, TorchSource, TrainSet, Workload  # noqa: E402
from aiaas.optimize.artifacts import Artifact, TrainOptions, no_progress  # noqa: E402
from aiaas.optimize.passes import PassContext, export_onnx  # noqa: E402
from aiaas.optimize.plan import PASSES  # noqa: E402
from aiaas.optimize.torch_passes import cross_entropy_loss, local_fine_tune  # noqa: E402

N_IN, N_CLASSES = 16, 4


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models on 2 busy cores: a second intra-op thread only spins (40 s instead of 0.5 s to train the MLP)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


FAST = Workload(batch_size=8, threads=1, concurrency=2, iterations=5, max_seconds=0.2, throughput_seconds=0.2, warmup=1)


def make_mlp(width: float = 1.0, depth: float = 1.0) -> nn.Module:
    hidden = [max(1, round(64 * width))] * max(1, round(2 * depth))
    layers: list[nn.Module] = []
    n = N_IN
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()]
        n = h
    layers.append(nn.Linear(n, N_CLASSES))
    return nn.Sequential(*layers)


def _task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = np.random.default_rng(123).standard_normal((N_IN, N_CLASSES))
    x = rng.standard_normal((n, N_IN)).astype(np.float32)
    y = np.argmax(np.tanh(x) @ w + 0.5 * (x[:, :N_CLASSES] ** 2), axis=1).astype(np.int64)
    return x, y


class Task:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.x_tr, self.y_tr = _task(3000, 1)
        self.x_te, self.y_te = _task(1000, 2)
        self.net = make_mlp().eval()
        self.train = TrainSet((torch.from_numpy(self.x_tr),), (torch.from_numpy(self.y_tr),))
        local_fine_tune(
            self.net, self.train, cross_entropy_loss, TrainOptions(epochs=15, learning_rate=3e-3), no_progress
        )

    def source(self) -> TorchSource:
        return TorchSource(
            net=self.net,
            example_inputs=(torch.from_numpy(self.x_te[:2]),),
            input_names=["x"],
            output_names=["logits"],
            train=self.train,
            student=make_mlp,
        )

    def evaluation(self, calibration: bool = True) -> Evaluation:
        return Evaluation(
            inputs={"x": self.x_te},
            target=self.y_te,
            metric="accuracy",
            calibration={"x": self.x_tr[:256]} if calibration else None,
        )


@pytest.fixture(scope="session")
def task() -> Task:
    return Task()


@pytest.fixture
def onnx_mlp(task: Task, tmp_path: Path) -> Path:
    """The task's MLP exported with TorchScript (fast) to ``tmp_path/mlp.onnx``."""
    ctx = PassContext(tmp_path, source=task.source())
    art = export_onnx(
        Artifact("torch", net=task.net), {**PASSES["export-onnx"].options, "exporter": "torchscript"}, ctx
    )
    assert art.path is not None
    return art.path


# -- a small transformer encoder ------------------------------------------------------------------------------
SEQ, D_IN = 16, 8


class Encoder(nn.Module):
    def __init__(self, d: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.proj = nn.Linear(D_IN, d)
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


def _seq_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The class is which of 4 feature directions dominates the sequence on average (needs pooling over tokens)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, SEQ, D_IN)).astype(np.float32)
    y = np.argmax(x[:, :, :N_CLASSES].mean(axis=1) + 0.3 * x[:, :, N_CLASSES:].std(axis=1), axis=1).astype(np.int64)
    return x, y


class EncoderTask:
    def __init__(self) -> None:
        torch.manual_seed(0)
        self.x_tr, self.y_tr = _seq_task(800, 3)
        self.x_te, self.y_te = _seq_task(600, 4)
        self.net = Encoder().eval()
        train = TrainSet((torch.from_numpy(self.x_tr),), (torch.from_numpy(self.y_tr),))
        local_fine_tune(self.net, train, cross_entropy_loss, TrainOptions(epochs=6, learning_rate=3e-3), no_progress)

    def onnx(self, tmp_path: Path) -> Path:
        src = TorchSource(
            net=self.net,
            example_inputs=(torch.from_numpy(self.x_te[:2]),),
            input_names=["x"],
            output_names=["logits"],
        )
        art = export_onnx(
            Artifact("torch", net=self.net),
            {**PASSES["export-onnx"].options, "exporter": "torchscript"},
            PassContext(tmp_path, source=src),
        )
        assert art.path is not None
        return art.path

    def evaluation(self) -> Evaluation:
        return Evaluation(
            inputs={"x": self.x_te}, target=self.y_te, metric="accuracy", calibration={"x": self.x_tr[:128]}
        )


@pytest.fixture(scope="session")
def encoder_task() -> EncoderTask:
    return EncoderTask()


@pytest.fixture(autouse=True)
def _no_stray_optimizers():
    """No test may leave an optimization (or training) process of its own behind."""
    yield
    left = kill_stray_processes("aiaas.optimize.worker", "aiaas.training")
    assert not left, f"processes left running: {left}"
