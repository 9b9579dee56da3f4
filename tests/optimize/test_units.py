"""The pieces of phase B on their own: the request model, the worker's progress events and recipe fine-tuning,
evaluation rows from files, the job kind in the database (revision 0004 keeps older rows valid on SQLite and
PostgreSQL), and that the server and the launcher import neither torch nor the optimization pipeline."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from governance.conftest import PG_OK
from jobkit import job_store
from sqlalchemy import text

from aiaas.errors import InvalidInput
from aiaas.jobs.events import EventWriter, read_events
from aiaas.jobs.store import JobRecord
from aiaas.optimize.artifacts import TrainOptions, TrainSet
from aiaas.optimize.jobspec import EvaluationRequest, needs_torch, parse_request
from aiaas.optimize.torch_passes import cross_entropy_loss
from aiaas.optimize.worker import Reporter, load_npz, recipe_fine_tune, save_npz, workload_of
from aiaas.service import evalsets
from aiaas.service.jobs import DbJobStore
from aiaas.store.db import Store, current_revision, head_revision
from aiaas.training.spec import parse_spec


def test_request_model() -> None:
    spec = parse_request({"model": "m", "passes": "graph, quantize-dynamic", "workload": {"batch_sizes": [32, 1, 32]}})
    assert spec.candidate_lists() == [["graph", "quantize-dynamic"]] and spec.workload.batch_sizes == [1, 32]
    assert spec.resources.cores == 2 and spec.max_restarts == 0 and spec.label == "optimize"
    assert not needs_torch(spec)
    two = parse_request({"model": "m", "passes": [["graph"], [{"name": "prune", "amount": 0.5}, "quantize-dynamic"]]})
    assert len(two.candidate_lists()) == 2 and needs_torch(two)
    w = workload_of(two.model_copy(update={"workload": two.workload.model_copy(update={"batch_sizes": [1, 4, 16]})}))
    assert (w.batch_size, w.extra_batch_sizes) == (16, (1, 4))
    cmp = parse_request({"model": "m", "version": 1, "compare_version": 2})
    assert cmp.label == "compare" and cmp.candidate_lists() == [[]]
    for body, expected in (
        ({"model": "../x", "passes": ["graph"]}, "optimization.model"),
        ({"model": "m", "passes": ["graph"], "register_as": "a b"}, "optimization.register_as"),
        ({"model": "m", "compare_version": 2, "register_as": "x"}, "registers nothing"),
        ({"model": "m", "passes": ["graph"], "data": {}}, "set by the server"),
        ({"model": "m", "passes": ["graph"], "evaluation": {"rows": 1}}, "optimization.evaluation.rows"),
    ):
        with pytest.raises(InvalidInput, match=expected):
            parse_request(body)


def test_reporter_turns_progress_into_events(tmp_path: Path) -> None:
    rep = Reporter(EventWriter(tmp_path / "events.jsonl"))
    rep(0.0, "baseline")
    rep(0.05, "baseline")  # same message, too soon: dropped
    rep(0.2, "graph: graph")
    rep(0.3, "epoch 1/2: loss 0.5")  # fine-tuning: a metrics event only
    rep(0.6, "graph: measuring")
    events, _ = read_events(tmp_path / "events.jsonl")
    messages = [(e["message"], e["data"]["phase"]) for e in events if e["type"] == "message"]
    assert messages == [("baseline", "baseline"), ("graph: graph", "optimizing"), ("graph: measuring", "measuring")]
    metrics = [e["data"] for e in events if e["type"] == "metrics"]
    assert [m["fraction"] for m in metrics] == [0.0, 0.2, 0.3, 0.6] and metrics[2]["phase"] == "fine-tuning"


def test_recipe_fine_tune_trains_with_events_and_stops_at_the_deadline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(256, 4)
    data = TrainSet((x,), ((x[:, 0] > 0).long(),))
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    events = EventWriter(tmp_path / "events.jsonl")
    with torch.no_grad():
        before = float(cross_entropy_loss(net(x), data.targets))
    seen: list[str] = []
    tune = recipe_fine_tune(0.0, events, deadline=time.time() + 60)
    tune(
        net,
        data,
        cross_entropy_loss,
        TrainOptions(epochs=3, learning_rate=0.05, batch_size=32),
        lambda f, m: seen.append(m),
    )
    with torch.no_grad():
        assert float(cross_entropy_loss(net(x), data.targets)) < before and not net.training
    got, _ = read_events(tmp_path / "events.jsonl")
    assert [e["data"]["step"] for e in got] == [8, 16, 24] and all(e["data"]["phase"] == "fine-tuning" for e in got)
    assert seen[-1].startswith("epoch 3/3")
    late = recipe_fine_tune(0.0, events, deadline=time.time() - 1)
    with pytest.raises(InvalidInput, match="max_runtime_s"):
        late(net, data, cross_entropy_loss, TrainOptions(epochs=1), lambda f, m: None)


def test_evaluation_rows_from_a_table_map_class_names(tmp_path: Path) -> None:
    from models import mlp

    sig = evalsets.Signature.of(mlp(tmp_path / "m.onnx"))
    csv = tmp_path / "eval.csv"
    csv.write_text(
        "a,b,c,d,kind\n" + "".join(f"{i},{i % 3},{-i},1,{['cat', 'dog', 'eel'][i % 3]}\n" for i in range(12))
    )
    ev = evalsets.from_file(csv, EvaluationRequest(target="kind"), sig, classes=["cat", "dog", "eel"])
    assert ev.metric == "accuracy" and ev.target.tolist() == [i % 3 for i in range(12)]
    final = evalsets.finish(ev, sig, EvaluationRequest(rows=10))
    assert final.inputs["x"].dtype == np.float32 and final.inputs["x"].shape == (10, 4) and len(final) == 10
    save_npz(tmp_path / "e.npz", final.inputs, final.target)
    inputs, target = load_npz(tmp_path / "e.npz")
    assert target is not None and (inputs["x"] == final.inputs["x"]).all() and (target == final.target).all()


def test_breast_cancer_held_out_rows_are_the_builds_test_split() -> None:
    pytest.importorskip("sklearn")
    from aiaas.catalog.heldout import heldout

    h = heldout("breast-cancer")
    assert h is not None and h.inputs["features"].shape == (143, 30) and h.inputs["features"].dtype == np.float32
    assert set(h.target) == {"malignant", "benign"} and h.output == "label" and h.calibration is not None
    assert heldout("no-such-model") is None


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(not PG_OK, reason="no PostgreSQL"))]
)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with job_store(request.param, tmp_path, "opt_test") as store:
        yield store


def test_revision_0004_adds_job_kinds_and_keeps_training_rows(db: Store) -> None:
    db.upgrade("0003")
    spec = parse_spec(
        {"recipe": "tabular", "training_file": "/t.csv", "model": "clf", "hyperparameters": {"label": "y"}}
    )
    with db.engine.begin() as conn:  # a training job written by a server at revision 0003 (no kind column)
        conn.execute(
            text(
                "INSERT INTO training_jobs (id, state, model, recipe, priority, spec, job_dir, created_at, "
                "transitions, files, restarts, progress, events_offset) VALUES ('old', 'validating', 'clf', "
                "'tabular', 0, :spec, '/jobs/old', 1.0, '{}', '{}', 0, '{}', 0)"
            ),
            {"spec": spec.model_dump_json()},
        )
    db.upgrade()
    assert current_revision(db.engine) == head_revision()
    store = DbJobStore(db)
    assert store.get("old").kind == "training" and store.get("old").spec.recipe == "tabular"
    opt = parse_request({"model": "m", "passes": ["graph"]})
    store.create(JobRecord(id="optjob-1", spec=opt, job_dir="/jobs/optjob-1", kind="optimization", created_at=2.0))
    got = store.get("optjob-1")
    assert got.kind == "optimization" and got.spec.model == "m" and got.spec.resources.cores == 2
    assert [r.id for r in store.page(None, None, 10, None)] == ["old"]
    assert [r.id for r in store.page(None, None, 10, None, kind="optimization")] == ["optjob-1"]
    assert {j.id for j in store.list(["validating"])} == {"old", "optjob-1"}  # the scheduler sees every kind


def test_the_server_and_the_launcher_import_neither_torch_nor_the_pipeline() -> None:
    code = (
        "import sys, aiaas.server.app, aiaas.training.launcher, aiaas.service.optimizations; "
        "bad = [m for m in ('torch', 'aiaas.optimize.pipeline', 'aiaas.training.recipes') if m in sys.modules]; "
        "assert not bad, bad"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
