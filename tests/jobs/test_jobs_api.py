"""``/v1/training/jobs`` without running any training: request validation, roles, tenancy (other tenants' jobs,
files and models answer 404 like missing ones), the target model's ownership, paging and status filters.
Every job here fails while validating its data, so no worker process is ever started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jobkit import assert_hidden_like_missing

from .conftest import BACKENDS, ROOT, World, blobs_csv, tabular_job, upload


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, world_factory) -> Iterator[World]:  # type: ignore[no-untyped-def]
    with world_factory(request.param, training_cores=2) as w:
        yield w


def _failing_job(w: World, key, file_id: str, model: str = "clf") -> dict:  # type: ignore[no-untyped-def, type-arg]
    """A job whose label column does not exist: created, then failed while validating (no process)."""
    r = w.client.post(
        "/v1/training/jobs", json=tabular_job(file_id, model, hyperparameters={"label": "nope"}), headers=key.headers
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "failed" and "no label column 'nope'" in job["reason"], job
    return job  # type: ignore[no-any-return]


def test_other_tenants_jobs_answer_404_like_missing_ones(world: World) -> None:
    acme, globex = world.key("acme", "developer"), world.key("globex", "developer")
    fid = upload(world.client, acme, "t.csv", blobs_csv(30)).json()["id"]
    job = _failing_job(world, acme, fid)
    assert (job["owner"], job["training_file"], job["model"]) == ("acme", fid, "clf")
    assert "validating" in job["transitions"] and "failed" in job["transitions"]
    jid, missing = job["id"], "trjob-0000000000000000"
    assert_hidden_like_missing(
        world.client,
        globex.headers,
        "/v1/training/jobs",
        jid,
        missing,
        [("GET", ""), ("POST", "/cancel"), ("GET", "/events"), ("GET", "/checkpoints"), ("GET", "/logs?rank=0")],
    )
    assert world.client.get("/v1/training/jobs", headers=globex.headers).json()["data"] == []
    assert [j["id"] for j in world.client.get("/v1/training/jobs", headers=acme.headers).json()["data"]] == [jid]
    assert [j["id"] for j in world.client.get("/v1/training/jobs", headers=ROOT).json()["data"]] == [jid]
    audit = world.client.get("/v1/audit?action=training_job.create", headers=ROOT).json()["data"]
    assert [(a["target"], a["tenant"]) for a in audit] == [(jid, "acme")]

    # the owner sees everything about it; a finished job cannot be cancelled
    events = world.client.get(f"/v1/training/jobs/{jid}/events", headers=acme.headers).json()
    assert events["data"] == [] and events["last_seq"] == 0
    assert world.client.get(f"/v1/training/jobs/{jid}/checkpoints", headers=acme.headers).json()["data"] == []
    r = world.client.post(f"/v1/training/jobs/{jid}/cancel", headers=acme.headers)
    assert r.status_code == 409 and "already failed" in r.json()["error"]["message"]

    # a job cannot be made from another tenant's file: the same 404 as a missing file, and no job is created
    theirs = world.client.post("/v1/training/jobs", json=tabular_job(fid, "mine"), headers=globex.headers)
    nothing = world.client.post("/v1/training/jobs", json=tabular_job("file-nope", "mine"), headers=globex.headers)
    assert theirs.status_code == nothing.status_code == 404
    assert theirs.json()["error"]["param"] == "training_file"
    assert theirs.json()["error"]["message"].replace(fid, "X") == nothing.json()["error"]["message"].replace(
        "file-nope", "X"
    )
    assert world.client.get("/v1/training/jobs", headers=globex.headers).json()["data"] == []


def test_target_model_must_be_the_tenants(world: World) -> None:
    """``secret`` is acme's model, ``pub`` a public one, ``gate`` a python model (see the zoo). Each allowed
    request fails on its label afterwards, so nothing trains."""
    acme, globex = world.key("acme", "developer"), world.key("globex", "developer")
    acme_file = upload(world.client, acme, "t.csv", blobs_csv(30)).json()["id"]
    globex_file = upload(world.client, globex, "t.csv", blobs_csv(30)).json()["id"]

    def create(key, file_id: str, model: str):  # type: ignore[no-untyped-def]
        body = tabular_job(file_id, model, hyperparameters={"label": "nope"})
        return world.client.post(
            "/v1/training/jobs", json=body, headers=key.headers if hasattr(key, "headers") else key
        )

    hidden = create(globex, globex_file, "secret")
    assert hidden.status_code == 404 and hidden.json()["error"]["message"] == "unknown model 'secret'"
    public = create(globex, globex_file, "pub")
    assert public.status_code == 403 and "not owned by your tenant" in public.json()["error"]["message"]
    python = create(ROOT, acme_file, "gate")  # the admin may use any tenant's file, but not a python model
    assert python.status_code == 409 and "backend 'python'" in python.json()["error"]["message"]
    admin_other = create(ROOT, acme_file, "secret")
    assert admin_other.status_code == 409 and "belongs to tenant 'acme'" in admin_other.json()["error"]["message"]
    assert world.client.get("/v1/training/jobs", headers=ROOT).json()["data"] == []  # none of those was created

    new_name = create(globex, globex_file, "brand-new")
    owned = create(acme, acme_file, "secret")
    assert new_name.status_code == owned.status_code == 201
    assert new_name.json()["status"] == owned.json()["status"] == "failed"  # allowed: they fail on the label only


def test_request_validation_and_roles(world: World) -> None:
    acme = world.key("acme", "developer")
    fid = upload(world.client, acme, "t.csv", blobs_csv(30)).json()["id"]
    cases = [
        ({"resources": {"workers": 0}}, "job.resources.workers"),
        ({"learning_rat": 0.1}, "job.learning_rat: unknown field"),
        ({"recipe": "nope"}, "nope"),
        ({"hyperparameters": {"label": "label", "epochs": -1}}, "epochs"),
        ({"resources": {"workers": 2, "threads_per_worker": 2}}, "needs 4 cores"),
        ({"strategy": "mpi"}, "job.strategy"),
        (
            {"resources": {"nodes": 2, "workers_per_node": 1}},
            "needs a Ray cluster: start the server with --ray-address",
        ),
        ({"resources": {"workers": 2, "workers_per_node": 1}}, "not two different counts"),
    ]
    for change, expected in cases:
        body = tabular_job(fid)
        body.update(change)
        r = world.client.post("/v1/training/jobs", json=body, headers=acme.headers)
        assert r.status_code == 400, (change, r.text)
        assert expected in r.json()["error"]["message"], (change, r.json())
    assert world.client.post("/v1/training/jobs", json=[1, 2], headers=acme.headers).status_code == 400
    user = world.key("acme", "user")
    r = world.client.post("/v1/training/jobs", json=tabular_job(fid), headers=user.headers)
    assert r.status_code == 403 and "role" in r.json()["error"]["message"]
    assert world.client.get("/v1/training/jobs", headers=user.headers).status_code == 403
    assert world.client.get("/v1/training/jobs", headers={}).status_code == 401
    assert world.client.get("/v1/training/jobs", headers=acme.headers).json()["data"] == []  # nothing was created


def test_paging_and_status_filter(world: World) -> None:
    acme = world.key("acme", "developer")
    fid = upload(world.client, acme, "t.csv", blobs_csv(30)).json()["id"]
    ids = [_failing_job(world, acme, fid)["id"] for _ in range(3)]
    page = world.client.get("/v1/training/jobs?limit=2", headers=acme.headers).json()
    assert [j["id"] for j in page["data"]] == ids[::-1][:2] and page["has_more"]  # newest first
    rest = world.client.get(f"/v1/training/jobs?limit=2&after={ids[1]}", headers=acme.headers).json()
    assert [j["id"] for j in rest["data"]] == [ids[0]] and not rest["has_more"]
    assert len(world.client.get("/v1/training/jobs?status=failed", headers=acme.headers).json()["data"]) == 3
    assert world.client.get("/v1/training/jobs?status=queued,running", headers=acme.headers).json()["data"] == []
    for bad in ("status=done", "limit=0", "limit=101", "limit=x"):
        assert world.client.get(f"/v1/training/jobs?{bad}", headers=acme.headers).status_code == 400, bad
