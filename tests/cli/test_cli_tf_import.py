"""``aiaas models import`` of TensorFlow models: a tiny Keras model (a .keras file, a SavedModel directory) converted
with tf2onnx, served through V2 and compared with keras's own predict; the refusals need no TensorFlow.

TensorFlow runs only in child processes (as in the import itself), so it never loads into the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from aiaas.cli.main import app
from aiaas.registry import ModelRepository, tf_import
from aiaas.registry.tf_import import TF_INSTALL, import_tensorflow
from aiaas.server.app import create_app

HAS_TF = all(find_spec(p) is not None for p in ("tensorflow", "tf2onnx", "keras"))
needs_tf = pytest.mark.skipif(not HAS_TF, reason=f"tensorflow / tf2onnx not installed: {TF_INSTALL}")
AUTH = {"Authorization": "Bearer test-admin-key"}
runner = CliRunner()

_BUILD = """
import sys, numpy as np, keras
out = sys.argv[1]
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((4,), name="features"),
    keras.layers.Dense(8, activation="relu"),
    keras.layers.Dense(3, activation="softmax"),
])
model.save(out + "/tiny.keras")
model.export(out + "/saved")
x = np.random.default_rng(1).standard_normal((7, 4)).astype("float32")
np.save(out + "/x.npy", x)
np.save(out + "/y.npy", model.predict(x, verbose=0))
"""


def cli(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def keras_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Keras model as a .keras file and a SavedModel, with inputs and keras's predictions."""
    out = tmp_path_factory.mktemp("keras")
    proc = subprocess.run(
        [sys.executable, "-c", _BUILD, str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@needs_tf
@pytest.mark.slow
def test_keras_file_is_converted_and_served_like_keras_predicts(
    keras_dir: Path, home: Path, make_settings, dead_url: str
) -> None:
    code, out = cli("models", "import", keras_dir / "tiny.keras", "--name", "kmodel", "--home", home, "--url", dead_url)
    assert code == 0, out
    assert "converting tiny.keras to ONNX with tf2onnx" in out and "imported kmodel version 1" in out
    assert "input  features: FP32 [-1, 4]" in out and "dynamic batching: up to 64" in out
    config = yaml.safe_load((home / "models" / "kmodel" / "model.yaml").read_text())
    assert config["backend"] == "onnx" and config["max_batch_size"] == 64
    assert "tiny.keras (TensorFlow, tf2onnx opset 17)" in config["description"]
    assert (home / "models" / "kmodel" / "1" / "model.onnx").is_file()

    x, expected = np.load(keras_dir / "x.npy"), np.load(keras_dir / "y.npy")
    (out_spec,) = config["outputs"]
    with TestClient(create_app(make_settings())) as c:
        body = {"inputs": [{"name": "features", "shape": [7, 4], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
        r = c.post("/v2/models/kmodel/infer", json=body, headers=AUTH)
        assert r.status_code == 200, r.text
        (got,) = r.json()["outputs"]
    assert got["name"] == out_spec["name"] and got["shape"] == [7, 3]
    np.testing.assert_allclose(np.array(got["data"], np.float32).reshape(7, 3), expected, atol=1e-6)


@needs_tf
@pytest.mark.slow
def test_a_saved_model_directory_is_converted(keras_dir: Path, repo: ModelRepository) -> None:
    config, version = import_tensorflow(repo, keras_dir / "saved", "saved", max_batch_size=16)
    assert version == 1 and config.backend == "onnx" and config.max_batch_size == 16
    session = ort.InferenceSession(str(repo.version_dir("saved", 1) / "model.onnx"))
    (y,) = session.run(None, {"features": np.load(keras_dir / "x.npy")})
    np.testing.assert_allclose(y, np.load(keras_dir / "y.npy"), atol=1e-6)


@needs_tf
@pytest.mark.slow
def test_a_broken_keras_file_is_refused_with_what_went_wrong(tmp_path: Path, home: Path, dead_url: str) -> None:
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a zip archive")
    code, out = cli("models", "import", bad, "--name", "bad", "--home", home, "--url", dead_url)
    assert code == 1
    assert "loading and exporting the Keras model of bad.keras failed:" in out
    assert "Traceback" not in out
    assert not (home / "models" / "bad").exists()


def test_missing_tensorflow_is_refused_with_the_install_command(
    tmp_path: Path, home: Path, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tf_import.find_spec
    monkeypatch.setattr(tf_import, "find_spec", lambda n: None if n in ("tensorflow", "tf2onnx", "keras") else real(n))
    model = tmp_path / "m.keras"
    model.write_bytes(b"never read")
    code, out = cli("models", "import", model, "--name", "k", "--home", home, "--url", dead_url)
    assert code == 1
    flat = " ".join(out.split())
    assert "needs tensorflow, tf2onnx and keras, which are not installed here" in flat
    assert ".venv/bin/pip install -e '.[tf]'" in flat and "make install-tf" in flat
    assert not (home / "models" / "k").exists()


def test_a_directory_that_is_not_a_saved_model_is_refused(tmp_path: Path, home: Path, dead_url: str) -> None:
    (tmp_path / "notes").mkdir()
    code, out = cli("models", "import", tmp_path / "notes", "--name", "n", "--home", home, "--url", dead_url)
    assert code == 1 and "not a TensorFlow SavedModel (it has no saved_model.pb)" in " ".join(out.split())


def test_the_error_line_is_picked_out_of_tool_noise() -> None:
    noise = (
        "2026-11-28 INFO - Using tensorflow=2.21.0\n"
        "Traceback (most recent call last):\n  File x, line 1\n"
        "ValueError: File format not supported: filepath=bad.keras.\n"
        "I0000 00:00 cleanup\n"
    )
    assert tf_import._last_error(noise) == "ValueError: File format not supported: filepath=bad.keras."
    tf2onnx_log = "2026 - ERROR - Unsupported ops: Counter({'Foo': 1})\n"
    assert tf_import._last_error(tf2onnx_log).endswith("Unsupported ops: Counter({'Foo': 1})")
    assert tf_import._last_error("") == "(no output)"
