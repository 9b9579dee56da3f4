"""``/v1/optimizations`` without running an optimization: every request mistake answers 400/403/404/409 naming
the field before anything is queued (no job row, no job directory, no process), roles, and tenancy (another
tenant's models and jobs answer 404 like missing ones)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jobkit import assert_hidden_like_missing

from .svc import FAST, ROOT, World, eval_file, mlp_rows, npz_bytes, request, upload, wait, world


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    with world(tmp_path) as w:
        yield w


def _nothing_created(w: World) -> None:
    assert w.client.get("/v1/optimizations", headers=ROOT).json()["data"] == []
    jobs = w.home / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir())


def test_bad_requests_are_refused_before_any_work(w: World) -> None:
    acme, globex = w.key("acme", "developer"), w.key("globex", "developer")
    fid = eval_file(w.client, acme)
    admin = ROOT
    cases = [
        (
            admin,
            request("pub", fid, ["quantize-dynamic", "quantize-static"]),
            400,
            "only one precision change per candidate",
        ),
        (admin, request("pub", fid, ["graph", "tvm", "quantize-dynamic"]), 400, "'tvm' must be the last pass"),
        (admin, request("pub", fid, ["quantize-dynamic", "graph", "graph"]), 400, "appears twice"),
        (admin, request("pub", fid, ["nope"]), 400, "unknown pass 'nope'"),
        (admin, request("pub", fid, [{"name": "prune", "amount": 1.5}]), 400, "amount is the fraction"),
        (admin, request("pub", fid, [{"name": "graph", "levels": "all"}]), 400, "unknown option(s) levels"),
        (admin, request("pub", fid, ["prune"]), 400, "work on the torch network"),
        (admin, request("pub", fid, []), 400, "passes is empty"),
        (admin, request("pub", fid, ["graph"], compare_version=1), 400, "either passes"),
        (admin, request("pub", fid, ["graph"], learning_rate=1), 400, "optimization.learning_rate: unknown field"),
        (admin, request("pub", fid, ["graph"], source={"onnx": "/etc/passwd"}), 400, "set by the server"),
        (admin, request("pub", fid, ["graph"], criterion={"max_relative_loss": 2}), 400, "criterion.max_relative_loss"),
        (admin, request("pub", fid, ["graph"], workload={"batch_sizes": [0]}), 400, "batch sizes"),
        (admin, request("pub", fid, ["graph"], workload={"threads": 4, "concurrency": 2}), 400, "needs 8 cores"),
        (admin, request("pub", fid, ["quantize-static"]), 400, "calibration rows"),
        (admin, request("pub", fid, ["fp16"]), 400, "'fp16' is for GPU targets"),
        (admin, request("pub", fid, ["graph"], version=7), 404, "no version 7"),
        (admin, request("pub", fid, ["graph"], register_as="gate"), 409, "backend 'python'"),
        (admin, request("nope", fid, ["graph"]), 404, "unknown model 'nope'"),
        (admin, request("gate", fid, ["graph"]), 409, "holds no ONNX file"),  # a python model without ONNX
        (admin, request("pub", "file-nope", ["graph"]), 404, "file-nope"),
        (admin, {"model": "pub", "passes": ["graph"], "workload": FAST}, 400, "no held-out set of its own"),
        (
            admin,
            request("pub", fid, ["graph"], evaluation={"file": fid, "target": "nope"}),
            400,
            "no target array 'nope'",
        ),
        (admin, request("pub", fid, ["graph"], evaluation={"file": fid, "output": "z"}), 400, "no output 'z'"),
        (admin, request("pub", fid, ["graph"], evaluation={"file": fid, "metric": "auc"}), 400, "evaluation.metric"),
        (acme, request("pub", fid, ["graph"]), 403, "public: only an admin"),  # a tenant may not change pub
        (globex, request("secret", fid, ["graph"]), 404, "unknown model 'secret'"),  # acme's model
        (globex, request("pub", fid, ["graph"], register_as="secret"), 404, "unknown model 'secret'"),
        (globex, request("pub", fid, ["graph"], register_as="mine"), 404, fid),  # acme's file
    ]
    for key, body, status, expected in cases:
        headers = key if isinstance(key, dict) else key.headers
        r = w.client.post("/v1/optimizations", json=body, headers=headers)
        assert r.status_code == status, (expected, r.text)
        assert expected in r.json()["error"]["message"], (expected, r.json())
    assert w.client.post("/v1/optimizations", json=[1], headers=acme.headers).status_code == 400
    _nothing_created(w)


def test_evaluation_rows_must_fit_the_model(w: World) -> None:
    acme = w.key("acme", "developer")
    x, y = mlp_rows(50)
    wrong_name = upload(w.client, acme, "a.npz", npz_bytes(inputs=x, label=y))
    wrong_shape = upload(w.client, acme, "b.npz", npz_bytes(x=x[:, :3], label=y))
    short_target = upload(w.client, acme, "c.npz", npz_bytes(x=x, label=y[:10]))
    table = upload(w.client, acme, "d.csv", ("a,b,c,label\n" + "1,2,3,0\n" * 20).encode())
    for fid, expected in (
        (wrong_name, "no array for model input(s) x"),
        (wrong_shape, "has shape [50, 3]"),
        (short_target, "has 50 rows and the target 10"),
        (table, "takes 4 features and the table gives 3"),
    ):
        r = w.client.post("/v1/optimizations", json=request("pub", fid, register_as="mine"), headers=acme.headers)
        assert r.status_code == 400, r.text
        assert expected in r.json()["error"]["message"], r.json()
    _nothing_created(w)


def test_roles_and_other_tenants(w: World) -> None:
    acme, globex = w.key("acme", "developer"), w.key("globex", "developer")
    user = w.key("acme", "user")
    fid = eval_file(w.client, acme)
    assert w.client.post("/v1/optimizations", json=request("pub", fid), headers=user.headers).status_code == 403
    assert w.client.get("/v1/optimizations", headers=user.headers).status_code == 403
    assert w.client.get("/v1/optimizations", headers={}).status_code == 401
    # a real (tiny) job of acme's on its own model
    r = w.client.post("/v1/optimizations", json=request("secret", fid, ["graph"]), headers=acme.headers)
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    assert jid.startswith("optjob-") and r.json()["owner"] == "acme" and r.json()["register_into"] == "secret"
    missing = "optjob-0000000000000000"
    assert_hidden_like_missing(
        w.client,
        globex.headers,
        "/v1/optimizations",
        jid,
        missing,
        [("GET", ""), ("POST", "/cancel"), ("GET", "/events"), ("GET", "/logs")],
    )
    assert w.client.get("/v1/optimizations", headers=globex.headers).json()["data"] == []
    assert [j["id"] for j in w.client.get("/v1/optimizations", headers=acme.headers).json()["data"]] == [jid]
    # the kinds do not mix: an optimization is not a training job and the other way round
    assert w.client.get(f"/v1/training/jobs/{jid}", headers=acme.headers).status_code == 404
    assert w.client.get("/v1/training/jobs", headers=acme.headers).json()["data"] == []
    audit = w.client.get("/v1/audit?action=optimization_job.create", headers=ROOT).json()["data"]
    assert [(a["target"], a["tenant"]) for a in audit] == [(jid, "acme")]
    assert wait(w.client, acme, jid)["status"] == "succeeded"
    for bad in ("status=done", "limit=0", "limit=101"):
        assert w.client.get(f"/v1/optimizations?{bad}", headers=acme.headers).status_code == 400, bad


def test_a_models_own_held_out_rows(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without evaluation.file: the version's heldout.npz (kept by the optimized version), else the catalog's rows."""
    import yaml

    from aiaas.catalog import heldout as catalog_heldout

    acme = w.key("acme", "developer")
    x, y = mlp_rows(64)
    (w.home / "models" / "secret" / "1" / "heldout.npz").write_bytes(npz_bytes(**{"input:x": x, "target": y}))
    r = w.client.post(
        "/v1/optimizations", json={"model": "secret", "passes": ["graph"], "workload": FAST}, headers=acme.headers
    )
    assert r.status_code == 201, r.text
    assert (r.json()["evaluation"]["name"], r.json()["evaluation"]["rows"]) == ("the version's heldout.npz", 64)
    job = wait(w.client, acme, r.json()["id"])
    assert job["status"] == "succeeded" and job["model_version"] == 2, job["reason"]
    assert sorted(p.name for p in (w.home / "models" / "secret" / "2").iterdir()) == [
        "heldout.npz",
        "model.onnx",
        "optimization.json",
    ]

    # a catalog model: the rows its build measured it on (here a stand-in for pub)
    config = w.home / "models" / "pub" / "model.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["card"] = {"extra": {"catalog": {"revision": 1}}}
    config.write_text(yaml.safe_dump(doc))
    rows = catalog_heldout.HeldOut({"x": x}, y, "accuracy", "y", "stand-in test split")
    monkeypatch.setitem(catalog_heldout.HELDOUT, "pub", lambda: rows)
    r = w.client.post("/v1/optimizations", json={"model": "pub", "passes": ["graph"], "workload": FAST}, headers=ROOT)
    assert r.status_code == 201, r.text
    assert r.json()["evaluation"]["name"] == "stand-in test split" and r.json()["evaluation"]["output"] == "y"
    assert wait(w.client, ROOT, r.json()["id"])["status"] == "succeeded"


def test_the_servers_speed_floor_applies_unless_the_request_sets_one(tmp_path: Path) -> None:
    """AIAAS_OPTIMIZE_MIN_SPEEDUP is the criterion's speed floor when a request leaves it unset (1000x here, so
    the graph pass is refused for its speed, with the reason); a request's own min_speedup wins."""
    with world(tmp_path, optimize_min_speedup=1000) as w:
        acme = w.key("acme", "developer")
        x, y = mlp_rows(64)
        (w.home / "models" / "secret" / "1" / "heldout.npz").write_bytes(npz_bytes(**{"input:x": x, "target": y}))
        r = w.client.post(
            "/v1/optimizations", json={"model": "secret", "passes": ["graph"], "workload": FAST}, headers=acme.headers
        )
        assert r.status_code == 201, r.text
        job = wait(w.client, acme, r.json()["id"])
        assert job["status"] == "succeeded" and job["model_version"] is None
        assert "below the 1000x required" in job["decision"], job["decision"]
        body = {"model": "secret", "passes": ["graph"], "workload": FAST, "criterion": {"min_speedup": 0}}
        job = wait(w.client, acme, w.client.post("/v1/optimizations", json=body, headers=acme.headers).json()["id"])
        assert job["status"] == "succeeded" and job["model_version"] == 2, job["decision"]
