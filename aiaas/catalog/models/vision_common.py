"""Helpers shared by the vision catalog models: the Fashion-MNIST files, the image input, build-time checks of
the served python models."""

from __future__ import annotations

import base64
import gzip
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.registry.catalogspec import Requirement
from aiaas.types.model_config import ModelConfig

if TYPE_CHECKING:
    import numpy as np


FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian dataset-fashion-mnist installs the idx files here
TORCH_THREADS = 2  # training threads: the catalog builds niced beside a serving process on 2 cores
PILLOW = ("PIL", "pillow==13.0.0")
OPENCV = ("cv2", "opencv-python-headless==4.14.0.94")

FASHION_REQ = Requirement(
    pip=(("torch", "torch==2.13.0"), PILLOW),
    apt=(("dataset-fashion-mnist", str(FASHION_DIR / "t10k-images-idx3-ubyte.gz")),),
)

IMAGE_IN = [
    {"name": "image", "datatype": "BYTES", "shape": [-1], "optional": True},
    {"name": "image_b64", "datatype": "BYTES", "shape": [-1], "optional": True},
]

FASHION_LICENSE = "Fashion-MNIST: MIT (Zalando SE 2017); model trained by aiaas"


def load_fashion(quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images uint8 [N, 28, 28], train labels, test images, test labels); quick: 12k/2k subsets."""

    import numpy as np

    def read(name: str, offset: int) -> np.ndarray:
        return np.frombuffer(gzip.decompress((FASHION_DIR / name).read_bytes()), np.uint8, offset=offset)

    x_tr = read("train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_tr = read("train-labels-idx1-ubyte.gz", 8).astype(np.int64)
    x_te = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    y_te = read("t10k-labels-idx1-ubyte.gz", 8).astype(np.int64)
    if quick:
        x_tr, y_tr, x_te, y_te = x_tr[:12000], y_tr[:12000], x_te[:2000], y_te[:2000]
    return x_tr, y_tr, x_te, y_te


def python_latency_ms(model: Any, inputs: dict[str, np.ndarray], runs: int = 20) -> dict[str, float]:
    """p50/p99 of ``model.predict`` on ``inputs`` (the served code path, decoding included)."""
    import numpy as np

    model.run(inputs, {})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.run(inputs, {})
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


def served_instance(config: dict[str, Any], version_dir: Path) -> Any:
    """The served python model, built from ``config`` over ``version_dir`` and loaded (for build-time checks)."""
    from aiaas.runtime import RuntimeContext
    from aiaas.runtime.python import resolve_class

    cfg = ModelConfig.model_validate(config)
    model = resolve_class(str(cfg.parameters["class"]), version_dir)(cfg, version_dir, RuntimeContext())
    model.load()
    return model


def bytes_rows(*values: bytes) -> np.ndarray:
    import numpy as np

    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def png_bytes(pixels: np.ndarray) -> bytes:
    from aiaas.catalog.runtime.vision_images import png

    return png(pixels)


def seed_torch(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(TORCH_THREADS)


def b64_example(data: bytes) -> str:
    return json.dumps(
        {
            "inputs": [
                {"name": "image_b64", "shape": [1], "datatype": "BYTES", "data": [base64.b64encode(data).decode()]}
            ]
        }
    )
