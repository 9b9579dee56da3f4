"""apache-tvm backend (``backend: tvm``): serves a relax VM library compiled by the optimize ``tvm`` pass.

A version directory holds two files::

    models/<name>/<version>/
      model.so     # the relax VM executable, exported as a shared library (aiaas.optimize.tvm_backend)
      tvm.json     # {"inputs": [{"name", "dtype", "shape"}], "outputs": [...], "target", "tvm", "tuned"}

The library keeps no tensor names, so ``tvm.json`` carries the signature; shapes use ``-1`` for a symbolic
dimension. The relax frontend keeps ONNX's symbolic batch axis, so a graph with a dynamic batch compiles to a
library that runs any batch size and the dynamic batcher wraps it like an onnx model (``config_from_sidecar``
writes ``max_batch_size: 0`` where the first axis is fixed).

TVM is optional (the ``optimize-tvm`` extra). This module never imports it at import time; a ``tvm`` model on a
server without it goes UNAVAILABLE with the install command as its reason. TVM's thread pool is process-wide
(``TVM_NUM_THREADS``), so ``runtime.intra_op_threads`` does not apply to this backend.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.runtime.base import BlockingModel, Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

TVM_INSTALL = "pip install apache-tvm==0.27.0.post1  (in a checkout: make install-tvm)"
LIBRARY = "model.so"
SIDECAR = "tvm.json"

NP_TO_V2 = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "uint8": "UINT8",
    "int8": "INT8",
    "int32": "INT32",
    "int64": "INT64",
    "bool": "BOOL",
}


def import_tvm() -> Any:
    """The ``tvm`` module, or a ValueError that names the install command (the model's UNAVAILABLE reason)."""
    try:
        import tvm
    except ImportError:
        raise ValueError(f"backend 'tvm' needs apache-tvm, which is not installed here: {TVM_INSTALL}") from None
    return tvm


def sidecar_path(library: Path) -> Path:
    """``model.so`` -> ``tvm.json`` in a version directory; ``NN-tvm.so`` -> ``NN-tvm.json`` in a work directory."""
    beside = library.parent / (library.stem + ".json")
    return beside if beside.is_file() else library.parent / SIDECAR


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        io: dict[str, Any] = json.loads(path.read_text())
        for key in ("inputs", "outputs"):
            for t in io[key]:
                if not isinstance(t["name"], str) or not all(isinstance(d, int) for d in t["shape"]):
                    raise ValueError(f"bad tensor entry {t!r}")
                if t["dtype"] not in NP_TO_V2:
                    raise ValueError(f"tensor {t['name']!r} has dtype {t['dtype']!r}, which aiaas cannot serve")
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist (a tvm model version needs {LIBRARY} and {SIDECAR})") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a valid tvm signature file: {e}") from None
    return io


def _spec(d: dict[str, Any]) -> TensorSpec:
    shape = [x if x > 0 else -1 for x in d["shape"]]
    return TensorSpec(name=d["name"], datatype=NP_TO_V2[d["dtype"]], shape=shape)  # type: ignore[arg-type]


def signature_of(io: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
    return [_spec(d) for d in io["inputs"]], [_spec(d) for d in io["outputs"]]


def config_from_sidecar(path: Path, max_batch_size: int = 64, description: str = "") -> ModelConfig:
    """A ``backend: tvm`` config with the signature written out; batching only where every first axis is -1."""
    inputs, outputs = signature_of(read_sidecar(path))
    batchable = bool(inputs) and all(t.shape and t.shape[0] == -1 for t in (*inputs, *outputs))
    return ModelConfig(
        backend="tvm",
        description=description or "compiled with apache-tvm (relax, llvm)",
        inputs=inputs,
        outputs=outputs,
        max_batch_size=max_batch_size if batchable else 0,
    )


class TvmRunner:
    """One relax VM over a compiled library; calls must not overlap (one runner per executor worker)."""

    def __init__(self, library: Path) -> None:
        tvm = import_tvm()
        from tvm import relax

        self.io = read_sidecar(sidecar_path(library))
        self.input_names = [i["name"] for i in self.io["inputs"]]
        self.output_names = [o["name"] for o in self.io["outputs"]]
        self._dtypes = {i["name"]: np.dtype(i["dtype"]) for i in self.io["inputs"]}
        self._tensor = getattr(tvm.runtime, "tensor", None) or tvm.nd.array  # tvm.nd before 0.22
        try:
            self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(library)), tvm.cpu())
        except Exception as e:  # TVM raises its own error types (a missing file, a library for another target)
            raise ValueError(f"apache-tvm cannot load {library.name}: {e}") from None

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        args = [self._tensor(np.ascontiguousarray(feed[n], dtype=self._dtypes[n])) for n in self.input_names]
        out = self._vm["main"](*args)
        items = [out] if hasattr(out, "numpy") else list(out)
        return [o.numpy() for o in items]


class TvmModel(BlockingModel):
    """``aiaas.runtime.BlockingModel`` over ``model.so`` + ``tvm.json`` in the version directory."""

    runner: TvmRunner | None = None

    def load(self) -> None:
        library = self.version_dir / self.config.parameters.get("file", LIBRARY)
        if not library.is_file():
            raise FileNotFoundError(f"{library} does not exist")
        self.runner = TvmRunner(library)

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        runner = self.runner
        if runner is None:
            raise RuntimeError("model is not loaded")
        return dict(zip(runner.output_names, runner.run(inputs), strict=True))

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        assert self.runner is not None
        return signature_of(self.runner.io)

    def unload(self) -> None:
        self.runner = None
