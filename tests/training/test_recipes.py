"""Each recipe end to end in-process (a world of one, no torchrun): data -> train -> ONNX -> metrics."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from aiaas.errors import InvalidInput
from aiaas.jobs.jobdir import JobDir
from aiaas.training.launcher import prepare_job_dir, validate_job
from aiaas.training.recipes import get_recipe, hashing_embedder
from aiaas.training.spec import parse_spec
from aiaas.training.worker import Worker

from .conftest import blobs_csv, tabular_request


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_inprocess(request: dict, root: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    spec = parse_spec(request)
    validate_job(spec)
    prepare_job_dir(spec, root)
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
    }.items():
        monkeypatch.setenv(k, v)
    Worker(JobDir(root).spec).run()
    return json.loads(JobDir(root).result.read_text())


def test_tabular_regression(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = 3 * x[:, 0] - 2 * x[:, 1] + 10 + 0.1 * rng.normal(size=300)
    p = tmp_path / "r.csv"
    p.write_text(
        "u,v,w,target\n" + "\n".join(f"{a:.4f},{b:.4f},{c:.4f},{t:.4f}" for (a, b, c), t in zip(x, y, strict=True))
    )
    req = tabular_request(p, p, hyperparameters={"label": "target", "epochs": 30, "learning_rate": 0.01})
    res = run_inprocess(req, tmp_path / "job", monkeypatch)
    assert res["meta"]["task"] == "regression"
    assert res["metrics"]["rmse"] < 0.5 * y.std()  # learned something real
    assert res["onnx_max_abs_diff"] < 1e-3
    sess = ort.InferenceSession(str(tmp_path / "job" / res["onnx"]))
    pred = sess.run(["prediction"], {"x": x[:5].astype(np.float32)})[0]  # raw features in: scaling is in the graph
    assert pred.shape == (5,) and np.abs(pred - y[:5]).max() < 2.0


def test_image_cnn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 160)
    x = rng.integers(0, 60, (160, 8, 8)).astype(np.uint8)
    x[y == 1, 2:6, 2:6] += 150  # class 1: a bright square
    np.savez(tmp_path / "img.npz", x=x, y=y)
    req = {
        "recipe": "image",
        "training_file": str(tmp_path / "img.npz"),
        "model": "cnn",
        "hyperparameters": {"epochs": 8, "batch_size": 32, "channels": [4], "hidden": 8, "learning_rate": 0.01},
    }
    res = run_inprocess(req, tmp_path / "job", monkeypatch)
    assert res["inputs"][0] == {"name": "x", "datatype": "UINT8", "shape": [-1, 8, 8], "optional": False}
    assert res["metrics"]["train_accuracy"] > 0.8
    sess = ort.InferenceSession(str(tmp_path / "job" / res["onnx"]))
    label = sess.run(["label"], {"x": x[:40]})[0]
    assert (label == y[:40]).mean() > 0.8


def test_matrix_factorization_takes_raw_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    users, items = rng.normal(size=(20, 2)), rng.normal(size=(15, 2))
    rows = [
        (100 + u, 7000 + i, float(np.clip(3 + users[u] @ items[i], 1, 5)))
        for u in range(20)
        for i in range(15)
        if rng.random() < 0.7
    ]
    p = tmp_path / "r.csv"
    p.write_text("user,item,rating\n" + "\n".join(f"{u},{i},{r:.3f}" for u, i, r in rows))
    req = {
        "recipe": "mf",
        "training_file": str(p),
        "model": "rec",
        "hyperparameters": {"epochs": 40, "factors": 4, "batch_size": 64, "learning_rate": 0.05},
    }
    res = run_inprocess(req, tmp_path / "job", monkeypatch)
    ratings = np.array([r for _, _, r in rows])
    assert res["metrics"]["train_rmse"] < ratings.std()
    sess = ort.InferenceSession(str(tmp_path / "job" / res["onnx"]))
    u = np.array([rows[0][0], 999999], np.int64)  # a known user and one never seen
    i = np.array([rows[0][1], rows[0][1]], np.int64)
    pred = sess.run(["rating"], {"user": u, "item": i})[0]
    assert abs(pred[0] - rows[0][2]) < 1.5 and np.isfinite(pred[1])


def test_text_with_pluggable_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = ["great movie", "loved it", "wonderful acting", "great fun", "really loved this"]
    bad = ["terrible movie", "hated it", "awful acting", "boring and awful", "really hated this"]
    lines = ["text,label"] + [f"{t},pos" for t in good * 6] + [f"{t},neg" for t in bad * 6]
    p = tmp_path / "t.csv"
    p.write_text("\n".join(lines))
    req = {
        "recipe": "text",
        "training_file": str(p),
        "model": "sent",
        "hyperparameters": {"epochs": 20, "batch_size": 16, "learning_rate": 0.01, "embedder_options": {"dim": 64}},
    }
    res = run_inprocess(req, tmp_path / "job", monkeypatch)
    assert res["meta"]["classes"] == ["neg", "pos"] and res["meta"]["dim"] == 64
    assert res["metrics"]["train_accuracy"] == 1.0
    sess = ort.InferenceSession(str(tmp_path / "job" / res["onnx"]))
    label = sess.run(["label"], {"embedding": hashing_embedder(["loved it, great", "awful, hated it"], dim=64)})[0]
    assert label.tolist() == [1, 0]


def test_text_recipe_accepts_an_embedder_object(tmp_path: Path) -> None:
    calls = []

    def emb(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        return np.ones((len(texts), 3), np.float32)

    from aiaas.training.recipes import TextRecipe

    r = TextRecipe(TextRecipe.Params.model_validate({}), embedder=emb)  # type: ignore[arg-type]
    p = tmp_path / "t.csv"
    p.write_text("text,label\na,x\nb,y\n")
    assert r.prepare(p)["dim"] == 3 and calls


@pytest.mark.parametrize(
    ("recipe", "hp", "expected"),
    [
        ("tabular", {"label": "y", "learning_rat": 0.1}, "hyperparameters.learning_rat: unknown field"),
        ("tabular", {}, "hyperparameters.label: Field required"),
        ("tabular", {"label": "y", "epochs": 0}, "hyperparameters.epochs: Input should be greater than or equal to 1"),
        ("image", {"layout": "hwc"}, "hyperparameters.layout"),
        ("mf", {"factors": "many"}, "hyperparameters.factors"),
        ("nope", {}, "unknown recipe 'nope'; built in: tabular, image, mf, text"),
    ],
)
def test_hyperparameter_errors(recipe: str, hp: dict, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected.replace(".", r"\.")):
        get_recipe(recipe, hp)


def test_request_errors(tmp_path: Path) -> None:
    base = tabular_request(tmp_path / "t.csv")
    with pytest.raises(InvalidInput, match=r"job\.resources\.workers"):
        parse_spec({**base, "resources": {"workers": 0}})
    with pytest.raises(InvalidInput, match=r"job\.bogus: unknown field"):
        parse_spec({**base, "bogus": 1})
    with pytest.raises(InvalidInput, match=r"job\.strategy: Input should be 'ddp', 'horovod' or 'zero'"):
        parse_spec({**base, "strategy": "mpi"})


def test_recipe_level_data_errors(tmp_path: Path) -> None:
    p = blobs_csv(tmp_path / "t.csv", 20)
    with pytest.raises(InvalidInput, match="no label column 'target'"):
        validate_job(parse_spec(tabular_request(p, hyperparameters={"label": "target"})))
    v = tmp_path / "v.csv"
    v.write_text("a,b,c,d,label\n1,2,3,4,7\n")
    with pytest.raises(InvalidInput, match="line 2, column 'label': label '7' does not occur in the training file"):
        validate_job(parse_spec(tabular_request(p, v)))
    npz = tmp_path / "i.npz"
    np.savez(npz, x=np.zeros((4, 8, 8), np.uint8), y=np.zeros(4, np.int64))
    with pytest.raises(InvalidInput, match="recipe 'tabular' takes csv or jsonl or parquet files, not npz"):
        validate_job(parse_spec(tabular_request(npz)))
