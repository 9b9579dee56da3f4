from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from jobkit import kill_stray_processes

from aiaas.jobs.store import InMemoryJobStore
from aiaas.training.launcher import Scheduler


def blobs_csv(path: Path, n: int, seed: int = 0, bad_line: int | None = None) -> Path:
    """A linearly separable-ish binary problem in 4 columns; ``bad_line`` puts 'abc' in column b there."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] > 0).astype(int)
    lines = ["a,b,c,d,label"]
    for i, (row, label) in enumerate(zip(x, y, strict=True)):
        cells = [f"{v:.4f}" for v in row]
        if bad_line is not None and i + 2 == bad_line:  # line 1 is the header
            cells[1] = "abc"
        lines.append(",".join(cells) + f",{label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def tabular_request(train: Path, val: Path | None = None, **kw: object) -> dict:
    hp = {"label": "label", "epochs": 2, "batch_size": 32, "hidden": [16]}
    hp.update(kw.pop("hyperparameters", {}))  # type: ignore[arg-type]
    req = {
        "recipe": "tabular",
        "training_file": str(train),
        "validation_file": str(val) if val else None,
        "model": "clf",
        "hyperparameters": hp,
        "resources": {"workers": 1, "threads_per_worker": 1},
        "checkpoint": {"every_n_steps": 5, "keep_last": 2},
        "max_restarts": 0,
        "max_runtime_s": 300,
    }
    req.update(kw)
    return req


@pytest.fixture
def store() -> InMemoryJobStore:
    return InMemoryJobStore()


@pytest.fixture
def scheduler(store: InMemoryJobStore, tmp_path: Path) -> Iterator[Scheduler]:
    s = Scheduler(store, tmp_path / "jobs", cores=2)
    yield s
    for r in list(s.runners.values()):  # never leave a torchrun behind, whatever the test did
        if not r.done:
            r.cancel("test teardown")


@pytest.fixture(autouse=True)
def _no_stray_workers() -> Iterator[None]:
    """Every test must leave no training process of its own behind."""
    yield
    left = kill_stray_processes("aiaas.training")
    assert not left, f"training processes left running: {left}"
