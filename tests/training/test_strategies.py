"""The optional strategies: ``horovod`` (horovodrun --gloo) and ``zero`` (DeepSpeed ZeRO on CPU). Each runs one real
2-worker tabular job in which rank 1 is killed after the first checkpoint: the job restarts, resumes with its
optimizer state, succeeds and registers. Skipped where the package is not installed; the refusal with the install
command is tested everywhere."""

from __future__ import annotations

import importlib.util
import json
import signal
from pathlib import Path

import pytest
from security.kit import wait_for

from aiaas.errors import InvalidInput
from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.store import InMemoryJobStore
from aiaas.registry import ModelRepository
from aiaas.training.launcher import Scheduler, process_tree
from aiaas.training.spec import parse_spec

from .conftest import blobs_csv, tabular_request


@pytest.mark.parametrize(
    ("strategy", "command"), [("horovod", "make install-horovod"), ("zero", "make install-deepspeed")]
)
def test_not_installed_is_refused_with_the_install_command(
    strategy: str, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("horovod", "deepspeed") else real(name, *a)
    )
    request = tabular_request(blobs_csv(tmp_path / "t.csv", 20), strategy=strategy)
    with pytest.raises(
        InvalidInput, match=f"strategy '{strategy}' needs .* not installed here: install it with {command}"
    ) as e:
        parse_spec(request)
    assert e.value.param == "strategy"
    s = Scheduler(InMemoryJobStore(), tmp_path / "jobs", cores=2)
    with pytest.raises(InvalidInput, match="not installed"):
        s.submit(parse_spec({**request, "strategy": "ddp"}).model_copy(update={"strategy": strategy}))
    assert s.store.list() == []


def test_zero_stage_needs_strategy_zero(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="zero_stage applies to strategy 'zero' only"):
        parse_spec(tabular_request(tmp_path / "t.csv", zero_stage=2))


def _rank(p) -> str | None:  # type: ignore[no-untyped-def]
    try:
        if "aiaas.training.worker" not in p.cmdline()[:4]:  # the worker itself, not a launcher naming it
            return None
        env = p.environ()
        return env.get("RANK") or env.get("HOROVOD_RANK")
    except Exception:
        return None


@pytest.mark.slow
def _extensions_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    return cache.mkdir("torch_extensions") if cache is not None else tmp_path / "torch_extensions"


@pytest.mark.parametrize(
    ("strategy", "package", "extra"),
    [("horovod", "horovod.torch", {}), ("zero", "deepspeed", {"zero_stage": 2})],
)
def test_two_workers_restart_resume_and_register(
    strategy: str,
    package: str,
    extra: dict,
    tmp_path: Path,
    make_settings,
    request: pytest.FixtureRequest,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip(package)
    hold = tmp_path / "hold"  # the first attempt waits after its first checkpoint while this exists
    hold.touch()
    monkeypatch.setenv("AIAAS_TRAINING_HOLD_FILE", str(hold))
    repo = ModelRepository(make_settings().models_dir)
    repo.ensure()
    # DeepSpeed compiles its CPU op once (~1 min); pytest's cache keeps it between runs
    s = Scheduler(
        InMemoryJobStore(),
        tmp_path / "jobs",
        cores=2,
        repository=repo,
        torch_extensions_dir=_extensions_dir(request, tmp_path),
    )
    train, val = blobs_csv(tmp_path / "train.csv", 400, seed=0), blobs_csv(tmp_path / "val.csv", 200, seed=1)
    job = s.submit(
        tabular_request(
            train,
            val,
            strategy=strategy,
            resources={"workers": 2, "threads_per_worker": 1},
            max_restarts=1,
            checkpoint={"every_n_steps": 4, "keep_last": 2},
            hyperparameters={"epochs": 10, "max_steps": 40},
            **extra,
        )
    )
    try:
        assert s.tick() == [job.id]
        runner = s.runners[job.id]
        jd = JobDir(Path(job.job_dir))
        wait_for(lambda: jd.list_checkpoints(), 300, "a first checkpoint")
        victim = wait_for(lambda: [p for p in process_tree(runner.proc.pid) if _rank(p) == "1"], 30, "rank 1")[0]  # type: ignore[union-attr]
        victim.send_signal(signal.SIGKILL)
        hold.unlink()
        job = s.wait(job.id, 240)
    finally:
        hold.unlink(missing_ok=True)
        for r in list(s.runners.values()):
            if not r.done:
                r.cancel("test teardown")
    assert job.state == "succeeded", job.reason
    assert job.restarts == 1 and job.model_version == 1 and job.result["steps"] == 40
    launched = " ".join(json.loads(jd.launcher.read_text())["command"])
    assert ("aiaas.training.hvdrun --max-restarts 1 --loopback -- --gloo -np 2" in launched) == (strategy == "horovod")
    events = s.store.events(job.id, limit=1000)
    assert any(f"{strategy}" in e["message"] and e["data"].get("phase") == "rendezvous" for e in events)
    resumed = [e for e in events if e["data"].get("phase") == "resumed"]
    assert resumed and resumed[0]["data"]["resumed_from_step"] > 0 and "optimizer restarts" not in resumed[0]["message"]
    ranks = [json.loads(p.read_text()) for p in sorted(jd.ranks.glob("rank*.json"))]
    assert [r["rank"] for r in ranks] == [0, 1] and ranks[0]["param_checksum"] == ranks[1]["param_checksum"]
    assert job.result["metrics"]["accuracy"] > 0.75
    assert repo.read("clf").config.card.extra["training_job"] == job.id  # type: ignore[union-attr]

    # the last checkpoint is plain torch: the full model state loads into a fresh model of the recipe
    import torch

    from aiaas.training.recipes import get_recipe

    state = torch.load(jd.list_checkpoints()[-1][1], weights_only=False)
    assert state["strategy"] == strategy and state["step"] == 40
    get_recipe("tabular", job.spec.hyperparameters).build_model(state["meta"]).load_state_dict(state["model"])
    if strategy == "zero":
        assert state["optimizer"]["zero_stage"] == 2 and len(state["optimizer"]["shards"]) == 2
