"""Medical catalog models (quick builds) served over KServe V2: the README examples, both input forms and the
explanations (contributions add up to the score's log-odds)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
NAMES = ["breast-cancer", "pima-diabetes"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    specs = all_specs()
    for name in NAMES:
        if specs[name].requires.missing():
            pytest.skip(f"needs: {specs[name].requires.missing()}")
    home = tmp_path_factory.mktemp("medical") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    for name in NAMES:
        st = build(specs[name], repo, quick=True, progress=lambda f, m: None)
        assert st.state == "built", st.detail
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    with TestClient(app) as c:
        yield c


def infer(client: TestClient, name: str, body: dict) -> dict:
    r = client.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]}


def rows_body(*rows: object) -> dict:
    return {
        "inputs": [{"name": "rows", "shape": [len(rows)], "datatype": "BYTES", "data": [json.dumps(r) for r in rows]}]
    }


def test_breast_cancer_readme_example_is_malignant(client: TestClient) -> None:
    out = infer(client, "breast-cancer", json.loads(all_specs()["breast-cancer"].example))
    assert out["label"] == ["malignant"]
    assert out["score"][0] > 0.9


def test_breast_cancer_rows_and_named_tensors_agree(client: TestClient) -> None:
    from sklearn.datasets import load_breast_cancer

    from aiaas.catalog.common import snake

    data = load_breast_cancer()
    names = [snake(n) for n in data.feature_names]
    benign = data.data[data.target == 1][:3]
    by_rows = infer(client, "breast-cancer", rows_body(*[dict(zip(names, map(float, r), strict=True)) for r in benign]))
    named = {
        "inputs": [
            {"name": n, "shape": [3, 1], "datatype": "FP32", "data": benign[:, i].tolist()} for i, n in enumerate(names)
        ]
    }
    by_tensors = infer(client, "breast-cancer", named)
    assert by_rows["label"] == by_tensors["label"] == ["benign"] * 3
    np.testing.assert_allclose(by_rows["score"], by_tensors["score"], atol=1e-6)


def test_contributions_add_up_to_the_log_odds(client: TestClient) -> None:
    out = infer(client, "pima-diabetes", json.loads(all_specs()["pima-diabetes"].example))
    score = out["score"][0]
    contrib = np.array(out["contributions"])
    assert contrib.shape == (7,)
    assert math.isclose(out["bias"][0] + contrib.sum(), math.log(score / (1 - score)), abs_tol=1e-3)
    explanation = json.loads(out["explanation"][0])
    assert set(explanation["contributions"]) == {
        "pregnancies",
        "glucose",
        "blood_pressure",
        "skin_thickness",
        "bmi",
        "pedigree",
        "age",
    }
    assert explanation["contributions"]["glucose"] == pytest.approx(contrib[1], abs=1e-3)


def test_pima_high_glucose_scores_above_low_glucose(client: TestClient) -> None:
    base = {"pregnancies": 2, "blood_pressure": 70, "skin_thickness": 28, "bmi": 32.0, "pedigree": 0.4, "age": 40}
    out = infer(client, "pima-diabetes", rows_body({**base, "glucose": 85}, {**base, "glucose": 190}))
    low, high = out["score"]
    assert high > low + 0.2
    assert out["label"][0] == "no diabetes"


def test_bad_rows_are_client_errors(client: TestClient) -> None:
    r = client.post("/v2/models/breast-cancer/infer", json=rows_body({"mean_radius": 17.99}), headers=AUTH)
    assert r.status_code == 400
    assert "missing feature(s)" in r.json()["error"] and "impute" not in r.json()["error"]  # nothing to fill with
    r = client.post("/v2/models/pima-diabetes/infer", json=rows_body({"glucose": "high"}), headers=AUTH)
    assert r.status_code == 400
    r = client.post("/v2/models/pima-diabetes/infer", json=rows_body([1, 2, 3]), headers=AUTH)
    assert r.status_code == 400
    assert "7 values" in r.json()["error"]
