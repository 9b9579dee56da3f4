"""Models and helpers of the placement tests: a python model that segfaults on a marked input."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from v2kit import write_python_model

CRASHY_SOURCE = '''
import ctypes
import os

import numpy as np

from aiaas.runtime import Model


class Crashy(Model):
    """y = 2x; a row holding -1 segfaults the process (a real SIGSEGV, as a broken native library would)."""

    def load(self):
        pass

    def predict(self, inputs, parameters):
        x = inputs["x"]
        if (x == -1).any():
            ctypes.string_at(0)  # reads address 0: SIGSEGV
        if (x == -2).any():
            raise ValueError("x holds -2, which this model refuses")
        if (x == -3).any():
            from aiaas.errors import InvalidInput

            raise InvalidInput("x holds -3, which is not a valid input", param="x")
        return {"y": x * 2, "pid": np.full((x.shape[0], 1), os.getpid(), dtype=np.int64)}
'''


def write_crashy(models_dir: Path, name: str = "crashy", **config: Any) -> Path:
    config.setdefault("max_batch_size", 16)
    return write_python_model(
        models_dir,
        name,
        CRASHY_SOURCE,
        "Crashy",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        outputs=[
            {"name": "y", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "pid", "datatype": "INT64", "shape": [-1, 1]},
        ],
        **config,
    )


def v2_body(rows: list[list[float]]) -> dict[str, Any]:
    return {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [len(rows), 2], "data": [v for r in rows for v in r]}]
    }
