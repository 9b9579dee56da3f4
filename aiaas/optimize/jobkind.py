"""The ``optimization`` job kind on the job engine (``aiaas.jobs``): one process,
``python -m aiaas.optimize.worker --spec JOB_DIR/spec.json``, instead of torchrun, and ``register_result`` to
turn an accepted candidate into a model version. Importing this module registers the kind.

The request is validated and the job directory prepared by the server (``aiaas.service.optimizations``), which
hands both to ``Scheduler.submit_prepared``; everything after that -- queue, cores, states, events, cancel,
recovery, logs -- is the engine's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiaas.errors import PermissionDenied
from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.kinds import LaunchOptions, Registered, register_kind
from aiaas.jobs.runner import reported_error
from aiaas.jobs.store import JobRecord, RunSpec
from aiaas.optimize.jobspec import OptimizationSpec
from aiaas.registry import ModelRepository

KIND = "optimization"


def _spec(spec: RunSpec) -> OptimizationSpec:
    if not isinstance(spec, OptimizationSpec):
        raise TypeError(f"an optimization job's spec is an OptimizationSpec, not {type(spec).__name__}")
    return spec


class OptimizationKind:
    name = KIND
    id_prefix = "optjob-"
    log_name = "worker.log"  # the worker's output (it has one process: no rank logs)
    first_sub_status = "starting"

    def load_spec(self, value: Any) -> RunSpec:
        return value if isinstance(value, OptimizationSpec) else OptimizationSpec.model_validate(value)

    def label(self, spec: RunSpec) -> str:
        return _spec(spec).label

    def command(self, spec: RunSpec, jd: JobDir, options: LaunchOptions) -> list[str]:
        return [options.python, "-m", "aiaas.optimize.worker", "--spec", str(jd.spec)]

    def env(self, spec: RunSpec, options: LaunchOptions) -> dict[str, str]:
        return {}

    def resume_note(self, jd: JobDir) -> str:
        return "the beginning (optimizations keep no checkpoints)"

    def crash_reason(self, job: JobRecord, jd: JobDir, rc: int, log_tail: str) -> str:
        reported = reported_error(jd, None, f"after {job.restarts} restart(s) (max_restarts={job.spec.max_restarts})")
        if reported:
            return reported
        if rc == 0:
            return "the workers exited without a result; see the job logs"
        tail = " | ".join(line.strip() for line in log_tail.strip().splitlines()[-3:])
        return f"the {KIND} worker exited with status {rc}: {tail[-400:]}"

    def register(self, repository: Any, job: JobRecord) -> Registered | None:
        version = register_result(repository, job)
        if version is None:
            return None
        result = json.loads(JobDir(Path(job.job_dir)).result.read_text())
        return Registered(str(result.get("registered_model") or job.spec.model), version)


OPTIMIZATION = OptimizationKind()
register_kind(OPTIMIZATION)


def register_result(repository: ModelRepository, job: JobRecord) -> int | None:
    """An accepted candidate becomes the next version of ``register_into`` (runs in the server); None when
    nothing was accepted (the report stays with the job)."""
    from aiaas.optimize.registration import card_report, register_artifact

    jd = JobDir(Path(job.job_dir))
    result = json.loads(jd.result.read_text())
    spec = _spec(job.spec)
    assert spec.source is not None
    if not result.get("accepted") or not result.get("artifact") or spec.compare_version is not None:
        return None
    src = spec.source
    target = src.register_into
    current = repository.read(target).config if repository.exists(target) else None
    if current is not None and current.owner is not None and job.owner is not None and current.owner != job.owner:
        raise PermissionDenied(f"model {target!r} belongs to another tenant")
    report = result["report"]
    chosen = next(c for c in report["candidates"] if c["name"] == result["chosen"])
    base = None
    if current is None and repository.exists(spec.model):
        base = repository.read(spec.model).config
        if base is not None:
            card = base.card.model_copy(update={"extra": {k: v for k, v in base.card.extra.items() if k != "catalog"}})
            base = base.model_copy(
                update={
                    "card": card,
                    "description": f"{base.description} (optimized from {spec.model} version {src.version})".strip(),
                }
            )
    return register_artifact(
        repository,
        target,
        result["artifact"]["kind"],
        jd.root / result["artifact"]["file"],
        chosen["measurement"],
        card_report(report, result["chosen"]),
        companions={n: jd.root / p for n, p in src.companions.items()},
        onnx_name=src.onnx_name,
        base_config=base,
        owner=job.owner,
    )
