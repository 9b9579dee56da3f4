"""The ``training`` job kind: how a training job is validated, prepared, launched and registered on the job
engine (``aiaas.jobs``), and ``python -m aiaas.training.launcher JOB_DIR`` to run one in the foreground.

Importing this module registers the kind. ``Scheduler`` here is the engine's scheduler with the training
request's ``submit`` (parse, check the strategy and recipe, validate and copy the data); ``JobRunner`` and
``process_tree`` are the engine's, named here so that ``from aiaas.training.launcher import ...`` gives the
engine with training plugged in. The strategy decides the launcher (``aiaas.training.commands``): torchrun for
ddp and zero, horovodrun (wrapped by ``aiaas.training.hvdrun`` for restarts) for horovod.

This module does not import torch: the recipes (torch) are imported only to validate a training job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.errors import InvalidInput
from aiaas.jobs import scheduler as engine
from aiaas.jobs.jobdir import JobDir, write_json_atomic
from aiaas.jobs.kinds import LaunchOptions, Registered, register_kind
from aiaas.jobs.process import process_tree as process_tree  # re-exported: the engine's, for the tests
from aiaas.jobs.runner import DEADLINE_ENV as DEADLINE_ENV  # re-exported: the workers read it
from aiaas.jobs.runner import JobRunner, reported_error
from aiaas.jobs.states import JobState
from aiaas.jobs.store import JobRecord, RunSpec
from aiaas.training.commands import launcher_name, training_command, training_env
from aiaas.training.commands import torchrun_command as torchrun_command  # re-exported (bench/training.py)
from aiaas.training.files import detect_format, validate_file
from aiaas.training.spec import JobSpec, check_strategy, parse_spec

if TYPE_CHECKING:
    from aiaas.training.recipes import Recipe

KIND = "training"


def get_recipe(name: str, hyperparameters: dict[str, Any] | None = None) -> Recipe:
    from aiaas.training.recipes import get_recipe as load  # torch: only when a training job is validated

    return load(name, hyperparameters)


# -- preparing a job --------------------------------------------------------------------------
def validate_job(spec: JobSpec) -> dict[str, Any]:
    """Everything that can be checked before queueing: formats, full parse, the recipe's view of the data.

    Raises InvalidInput naming the file, line and column. Returns the file summaries.
    """
    recipe = get_recipe(spec.recipe, spec.hyperparameters)
    summaries: dict[str, Any] = {}
    train = Path(spec.training_file)
    for role, name in (("training", spec.training_file), ("validation", spec.validation_file)):
        if name is None:
            continue
        path = Path(name)
        fmt = detect_format(path)
        recipe.check_file(path, fmt)
        summaries[role] = validate_file(path, fmt).to_dict()
    meta = recipe.prepare(train)
    if spec.validation_file:
        recipe.tensors(Path(spec.validation_file), meta)  # labels unseen in training, missing columns, ...
    return summaries


def prepare_job_dir(spec: JobSpec, root: Path) -> JobSpec:
    """Copy the data into the job directory and write spec.json with paths relative to it."""
    jd = JobDir(root)
    jd.data.mkdir(parents=True, exist_ok=True)
    updates: dict[str, Any] = {}
    for field, role in (("training_file", "train"), ("validation_file", "validation")):
        src = getattr(spec, field)
        if src is None:
            continue
        src_path = Path(src)
        dst = jd.data / f"{role}{src_path.suffix.lower()}"
        if not dst.exists():
            try:
                os.link(src_path, dst)  # the files store keeps the original; a hard link costs nothing
            except OSError:
                shutil.copy2(src_path, dst)
        updates[field] = str(dst.relative_to(jd.root))
    local = spec.model_copy(update=updates)
    write_json_atomic(jd.spec, local.model_dump(mode="json"))
    return local


def _prepared(spec: JobSpec) -> engine.Prepare:
    def prepare(root: Path) -> tuple[RunSpec, dict[str, Any]]:
        files = validate_job(spec)  # looked up at call time: tests slow it down to race a cancel
        return prepare_job_dir(spec, root), files

    return prepare


# -- the kind ---------------------------------------------------------------------------------
def _spec(spec: RunSpec) -> JobSpec:
    if not isinstance(spec, JobSpec):
        raise TypeError(f"a training job's spec is a JobSpec, not {type(spec).__name__}")
    return spec


class TrainingKind:
    name = KIND
    id_prefix = "trjob-"
    log_name = "torchrun.log"  # torchrun's (or horovodrun's) own output; ranks log to logs/rank<r>.log
    first_sub_status = "rendezvous"

    def load_spec(self, value: Any) -> RunSpec:
        return value if isinstance(value, JobSpec) else JobSpec.model_validate(value)

    def label(self, spec: RunSpec) -> str:
        return _spec(spec).recipe

    def command(self, spec: RunSpec, jd: JobDir, options: LaunchOptions) -> list[str]:
        return training_command(_spec(spec), jd.spec, options.python)

    def env(self, spec: RunSpec, options: LaunchOptions) -> dict[str, str]:
        return training_env(_spec(spec), options.torch_extensions_dir)

    def resume_note(self, jd: JobDir) -> str:
        ckpts = jd.list_checkpoints()
        return f"its checkpoint at step {ckpts[-1][0]}" if ckpts else "the beginning (no checkpoint yet)"

    def crash_reason(self, job: JobRecord, jd: JobDir, rc: int, log_tail: str) -> str:
        """What went wrong, from torchrun's root-cause report and the workers' error files."""
        spec = _spec(job.spec)
        tries = f"after {job.restarts} restart(s) (max_restarts={spec.max_restarts})"
        root = log_tail.rsplit("Root Cause", 1)[-1] if "Root Cause" in log_tail else ""
        rank_m = re.search(r"rank\s*:\s*(\d+)", root)
        code_m = re.search(r"exitcode\s*:\s*(-?\d+)", root)
        sig_m = re.search(r"Signal (\d+) \((\w+)\)", root)
        rank = int(rank_m.group(1)) if rank_m else None
        if sig_m:
            what = f"worker rank {rank} was killed by signal {sig_m.group(1)} ({sig_m.group(2)})"
            if sig_m.group(2) == "SIGKILL":
                what += " -- out of memory, or killed from outside"
            return f"{what} {tries}"
        reported = reported_error(jd, rank, tries)
        if reported:
            return reported
        if rc == 0:
            return "the workers exited without a result; see the job logs"
        tail = " | ".join(line.strip() for line in log_tail.strip().splitlines()[-3:])
        code = code_m.group(1) if code_m else str(rc)
        return f"{launcher_name(spec)} exited with status {code} {tries}: {tail[-400:]}"

    def register(self, repository: Any, job: JobRecord) -> Registered | None:
        from aiaas.training.register import register_result

        model = job.spec.model
        version = register_result(repository, model, job.id, Path(job.job_dir), owner=job.owner)
        return Registered(model, version)


TRAINING = TrainingKind()
register_kind(TRAINING)


class Scheduler(engine.Scheduler):
    """The engine's scheduler, with ``submit`` for training requests."""

    def submit(
        self, request: JobSpec | dict[str, Any], owner: str | None = None, job_id: str | None = None
    ) -> JobRecord:
        """Create a training job: request errors raise InvalidInput (nothing is created); data errors make a
        ``failed`` job whose reason names the file, line and column. The data is copied into the job directory."""
        spec = request if isinstance(request, JobSpec) else parse_spec(request)
        check_strategy(spec.strategy)
        get_recipe(spec.recipe, spec.hyperparameters)
        if spec.resources.cores > self.cores:
            raise InvalidInput(
                f"the job needs {spec.resources.cores} cores ({spec.resources.workers} workers x "
                f"{spec.resources.threads_per_worker} threads) but training may use {self.cores}; lower resources",
                param="resources",
            )
        return self.submit_prepared(KIND, spec, _prepared(spec), owner=owner, job_id=job_id)


__all__ = [
    "DEADLINE_ENV",
    "TRAINING",
    "JobRunner",
    "Scheduler",
    "TrainingKind",
    "prepare_job_dir",
    "process_tree",
    "validate_job",
]


def main(argv: list[str] | None = None) -> int:
    """``python -m aiaas.training.launcher JOB_DIR [--resume]``: run a prepared job directory in the foreground
    with an in-memory store, printing events as JSON lines (used by the crash test and the benchmark)."""
    import argparse

    from aiaas.jobs.store import InMemoryJobStore
    from aiaas.settings import Settings

    ap = argparse.ArgumentParser(prog="aiaas.training.launcher")
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    jd = JobDir(args.job_dir.resolve())
    spec = JobSpec.model_validate_json(jd.spec.read_text())
    store = InMemoryJobStore()
    job_id = jd.root.name
    store.create(
        JobRecord(
            id=job_id, spec=spec, job_dir=str(jd.root), state=JobState.RUNNING if args.resume else JobState.QUEUED
        )
    )

    def show(_jid: str, event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    runner = JobRunner(job_id, store, on_event=show, torch_extensions_dir=Settings().torch_extensions_dir)
    runner.start(resume=args.resume)
    job = runner.wait()
    print(json.dumps({"state": job.state, "reason": job.reason}), flush=True)
    return 0 if job.state == JobState.SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
