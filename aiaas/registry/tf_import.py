"""``aiaas models import`` of TensorFlow models: a Keras file or a SavedModel, converted to ONNX with tf2onnx.

The served artifact is ONNX (the onnx backend, onnxruntime), so TensorFlow is needed only to import, never to
serve. Steps, each in a child process of the same interpreter so TensorFlow never loads into the caller (the
CLI, a test run, later a server) and its crashes and log noise stay out of it:

1. ``.keras`` / ``.h5``: ``keras.models.load_model`` (safe mode: no arbitrary code from the file) and
   ``model.export(dir)`` to a SavedModel. A directory with ``saved_model.pb`` is used as it is.
2. ``python -m tf2onnx.convert --saved-model DIR --opset 17``: the CLI on a SavedModel, because tf2onnx's
   ``from_keras`` does not work with Keras 3.
3. The ONNX import path (``import_onnx``): config from the graph, batching along its dynamic first axis.

A failure becomes an ``InvalidInput`` naming the step and the tool's own last error line. TensorFlow, Keras and
tf2onnx are the optional ``tf`` extra; without them the import refuses with the install command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from aiaas.errors import InvalidInput
from aiaas.registry.onnx_import import import_onnx
from aiaas.registry.repository import ModelRepository
from aiaas.types.model_config import ModelConfig

TF_INSTALL = ".venv/bin/pip install -e '.[tf]'  (or: make install-tf)"
KERAS_SUFFIXES = (".keras", ".h5")
OPSET = 17  # what onnxruntime and tf2onnx 1.17 both handle well
STEP_TIMEOUT_S = 1800  # one load/export or conversion of a big model on a small CPU takes minutes, not hours

_EXPORT = """
import sys
import keras
model = keras.models.load_model(sys.argv[1], compile=False)
model.export(sys.argv[2])
"""
_ERROR_LINE = re.compile(r"^([A-Za-z_][\w.]*(Error|Exception)|ERROR)\b")


def is_tensorflow_source(path: Path) -> bool:
    """A Keras file or a SavedModel directory (what ``import_tensorflow`` takes)."""
    if path.is_dir():
        return (path / "saved_model.pb").is_file()
    return path.suffix.lower() in KERAS_SUFFIXES


def missing_packages(keras_file: bool) -> list[str]:
    wanted = ["tensorflow", "tf2onnx", *(["keras"] if keras_file else [])]
    return [p for p in wanted if find_spec(p) is None]


def _last_error(text: str) -> str:
    """The line that says what went wrong, out of TensorFlow's log and traceback noise."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR_LINE.match(ln) or " - ERROR - " in ln]
    line = (errors or lines or ["(no output)"])[-1]
    return line if len(line) <= 600 else line[:600] + "..."


def _run(step: str, args: list[str], src: Path) -> None:
    env = dict(os.environ)  # a child of this interpreter, quieter: TensorFlow's C++ info logs and oneDNN notes
    env.update({"TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow", "CUDA_VISIBLE_DEVICES": ""})
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=STEP_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"{step} of {src.name} took longer than {STEP_TIMEOUT_S} s; gave up") from None
    if proc.returncode != 0:
        raise InvalidInput(f"{step} of {src.name} failed: {_last_error(proc.stderr + proc.stdout)}")


def convert_to_onnx(src: Path, workdir: Path) -> Path:
    """A Keras file or SavedModel -> ``workdir/model.onnx``."""
    if not src.exists():
        raise InvalidInput(f"{src} does not exist")
    if src.is_dir() and not (src / "saved_model.pb").is_file():
        raise InvalidInput(f"{src} is a directory but not a TensorFlow SavedModel (it has no saved_model.pb)")
    keras_file = src.is_file()
    if keras_file and src.suffix.lower() not in KERAS_SUFFIXES:
        raise InvalidInput(f"{src.name}: a Keras model file ends in {' or '.join(KERAS_SUFFIXES)}")
    missing = missing_packages(keras_file)
    if missing:
        raise InvalidInput(
            f"importing a TensorFlow model needs {_names(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed here: {TF_INSTALL}"
        )
    saved = src
    if keras_file:
        saved = workdir / "saved_model"
        _run("loading and exporting the Keras model", ["-c", _EXPORT, str(src), str(saved)], src)
        if not (saved / "saved_model.pb").is_file():
            raise InvalidInput(f"exporting {src.name} wrote no SavedModel")
    out = workdir / "model.onnx"
    _run(
        "converting with tf2onnx",
        ["-m", "tf2onnx.convert", "--saved-model", str(saved), "--opset", str(OPSET), "--output", str(out)],
        src,
    )
    if not out.is_file():
        raise InvalidInput(f"tf2onnx wrote no ONNX model for {src.name}")
    return out


def import_tensorflow(
    repo: ModelRepository,
    src: Path,
    name: str,
    version: int | None = None,
    max_batch_size: int = 64,
    overrides: dict[str, Any] | None = None,
) -> tuple[ModelConfig, int]:
    """Convert ``src`` to ONNX and add it as a new version of ``name`` (see ``import_onnx``)."""
    with tempfile.TemporaryDirectory(prefix="aiaas-tf-") as tmp:
        onnx_file = convert_to_onnx(src, Path(tmp))
        overrides = {
            "description": f"imported from {src.name} (TensorFlow, tf2onnx opset {OPSET})",
            **(overrides or {}),
        }
        return import_onnx(repo, onnx_file, name, version, max_batch_size, overrides)


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
