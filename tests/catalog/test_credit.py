"""credit-risk (quick build) served over KServe V2: the README example, sane ordering of applicants,
missing values and exact per-feature contributions."""

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
FEATURES = [
    "seniority",
    "home",
    "time",
    "age",
    "marital",
    "records",
    "job",
    "expenses",
    "income",
    "assets",
    "debt",
    "amount",
    "price",
]
SAFE = {
    "seniority": 15,
    "home": "owner",
    "time": 36,
    "age": 45,
    "marital": "married",
    "records": "no",
    "job": "fixed",
    "expenses": 45,
    "income": 250,
    "assets": 20000,
    "debt": 0,
    "amount": 800,
    "price": 1500,
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    spec = all_specs()["credit-risk"]
    if spec.requires.missing():
        pytest.skip(f"needs: {spec.requires.missing()}")
    home = tmp_path_factory.mktemp("credit") / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    st = build(spec, repo, quick=True, progress=lambda f, m: None)
    assert st.state == "built", st.detail
    assert st.metrics and st.metrics["auc"] > 0.75  # quick build, held-out 25%
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    with TestClient(app) as c:
        yield c


def infer(client: TestClient, *rows: object, **parameters: object) -> dict:
    body = {
        "inputs": [{"name": "rows", "shape": [len(rows)], "datatype": "BYTES", "data": [json.dumps(r) for r in rows]}],
        "parameters": parameters,
    }
    r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]}


def test_readme_example_is_risky_and_explained(client: TestClient) -> None:
    body = json.loads(all_specs()["credit-risk"].example)
    r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["label"]["data"] == ["bad"]
    assert out["contributions"]["shape"] == [1, len(FEATURES)]
    explanation = json.loads(out["explanation"]["data"][0])
    assert set(explanation["contributions"]) == set(FEATURES)
    assert explanation["contributions"]["records"] > 0  # previous arrears push towards "bad"


def test_safe_applicant_scores_below_risky_one(client: TestClient) -> None:
    risky = {**SAFE, "records": "yes", "job": "partime", "income": 60, "seniority": 0, "assets": 0, "home": "rent"}
    out = infer(client, SAFE, risky)
    assert out["label"][0] == "good"
    assert out["score"][0] < 0.3 < out["score"][1]


def test_contributions_sum_to_log_odds_minus_bias(client: TestClient) -> None:
    sparse = {"age": 30, "records": "no", "amount": 1000, "price": 1200}  # everything else missing
    out = infer(client, SAFE, sparse, impute=True)
    assert [json.loads(x) for x in out["imputed"]] == [[], [f for f in FEATURES if f not in sparse]]
    contrib = np.array(out["contributions"]).reshape(2, len(FEATURES))
    for i, score in enumerate(out["score"]):
        assert math.isclose(out["bias"][i] + contrib[i].sum(), math.log(score / (1 - score)), abs_tol=1e-3)
    # the two applicants differ, and so do their explanations
    assert not np.allclose(contrib[0], contrib[1])


def test_incomplete_rows_are_refused_unless_imputing_is_asked_for(client: TestClient) -> None:
    for row in ({}, {k: v for k, v in SAFE.items() if k != "income"}):
        body = {"inputs": [{"name": "rows", "shape": [1], "datatype": "BYTES", "data": [json.dumps(row)]}]}
        r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
        assert r.status_code == 400
        assert "missing feature(s)" in r.json()["error"] and "parameters.impute=true" in r.json()["error"]
    assert "imputed" not in infer(client, SAFE)  # only when asked
    body["parameters"] = {"impute": "yes"}
    r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
    assert r.status_code == 400 and "impute must be true or false" in r.json()["error"]


def test_metadata_declares_the_imputed_output(client: TestClient) -> None:
    r = client.get("/v2/models/credit-risk", headers=AUTH)
    assert r.status_code == 200, r.text
    outputs = {o["name"]: o for o in r.json()["outputs"]}
    assert outputs["imputed"] == {"name": "imputed", "datatype": "BYTES", "shape": [-1]}
    body = {
        "inputs": [{"name": "rows", "shape": [1], "datatype": "BYTES", "data": [json.dumps({"age": 30})]}],
        "parameters": {"impute": True},
        "outputs": [{"name": "imputed"}],
    }
    r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    [out] = r.json()["outputs"]
    assert (
        out["name"] == "imputed" and "age" not in json.loads(out["data"][0]) and "income" in json.loads(out["data"][0])
    )


def test_bad_values_are_client_errors(client: TestClient) -> None:
    for row, word in [
        ({**SAFE, "home": "castle"}, "one of"),
        ({**SAFE, "salary": 1}, "unknown feature"),
        ({**SAFE, "income": "lots"}, "number"),
    ]:
        body = {"inputs": [{"name": "rows", "shape": [1], "datatype": "BYTES", "data": [json.dumps(row)]}]}
        r = client.post("/v2/models/credit-risk/infer", json=body, headers=AUTH)
        assert r.status_code == 400, row
        assert word in r.json()["error"]
