"""Optimizations as a service: ``POST /v1/optimizations`` and friends, a job family on the job engine.

An optimization is a job of kind ``optimization`` (``aiaas.optimize.jobkind``) in the jobs table, queued by the
same scheduler as training (one core budget for both kinds), run by the same ``JobRunner`` -- states validating
-> queued -> running ->
succeeded | failed | cancelled, sub-statuses, events, cancel (the process tree), recovery after a restart,
logs -- with ``python -m aiaas.optimize.worker`` in place of torchrun. This module adds what is particular:

- the request is checked in full before anything is queued (400/404/409 naming the field): the passes and
  their order (``plan``), the model and version (404 for one the tenant cannot see), the ONNX file to work on
  (an ``onnx`` model, or a ``python`` model running an ONNX file among its files), where an accepted candidate
  may be registered (the tenant's own model, a public one for an admin, or a new name with ``register_as``),
  and the evaluation rows (``aiaas.service.evalsets``), which the baseline runs on before the job exists;
- the job directory gets its own copies (hard links where possible) of the ONNX file, the version's other
  files and the evaluation rows, so the job does not depend on the repository while it runs or is resumed;
- the kind's ``register_result`` (``aiaas.optimize.jobkind``) adds an accepted candidate as a new version,
  with the other files of the source version and the report in its card, and the server loads it at once
  (``JobEngine._on_registered``, like a trained version). A rejected one leaves only its report.

Tenancy is the training jobs': admin/developer keys only, a job belongs to its tenant, and another tenant's
job answers 404 exactly like a missing one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from aiaas.jobs.jobdir import JobDir, write_json_atomic
from aiaas.optimize.artifacts import Evaluation
from aiaas.optimize.jobkind import KIND
from aiaas.optimize.jobspec import (
    EvaluationData,
    OptimizationSpec,
    SourceInfo,
    TrainingSource,
    needs_torch,
    parse_request,
)
from aiaas.optimize.plan import PassSpec, plan
from aiaas.registry import ModelRepository
from aiaas.service import evalsets
from aiaas.service.files import FilesService, require_manage
from aiaas.service.governance import ModelRef, Principal
from aiaas.service.jobengine import JobFamily, lifecycle
from aiaas.service.jobs import JobsService
from aiaas.store.jobs import TrainingJobRow
from aiaas.types.jobs import JobEvent, OptimizationJob, OptimizationJobDetail
from aiaas.types.model_config import ModelConfig

RECENT_EVENTS = 20  # message events shown inline by GET /v1/optimizations/{id}


class OptimizationsService(JobFamily[OptimizationJob]):
    kind = KIND
    noun = "optimizations"
    launcher_label = "worker"

    def __init__(self, jobs: JobsService, default_min_speedup: float | None = None) -> None:
        super().__init__(jobs.engine)
        self.default_min_speedup = default_min_speedup  # criterion.min_speedup when a request leaves it unset
        self.files: FilesService = jobs.files
        self.control = jobs.control
        self.repository: ModelRepository = jobs.engine.models.repository

    # -- create -------------------------------------------------------------------------------------------
    def create(self, p: Principal, body: Any) -> OptimizationJobDetail:
        require_manage(p, "creating optimizations")
        spec = parse_request(body)
        if spec.criterion.min_speedup is None and self.default_min_speedup:
            criterion = spec.criterion.model_copy(update={"min_speedup": self.default_min_speedup})
            spec = spec.model_copy(update={"criterion": criterion})
        torch_passes = needs_torch(spec)
        comparing = spec.compare_version is not None
        plans = (
            []
            if comparing
            else [
                plan(list(c), "torch" if torch_passes else "onnx", spec.workload.target) for c in spec.candidate_lists()
            ]
        )
        config, version, vdir = self._version(p, spec.model, spec.version)
        onnx, companions = _onnx_of(spec.model, config, version, vdir)
        target = spec.register_as or spec.model
        if not comparing:
            self._check_register(p, target, spec.model, config)
        compare_onnx = self._compare_onnx(p, spec, version) if comparing else None
        info = evalsets.training_info(vdir, self._job_dir_of(p))
        training = None
        if torch_passes:
            training = self._training_source(spec.model, version, vdir, info)
        sig = evalsets.Signature.of(onnx)
        evaluation = self._evaluation(p, spec, config, vdir, sig, info)
        if not comparing:
            _check_calibration(plans, evaluation)
        spec = _with_serving_batch_sizes(spec, config)
        source = SourceInfo(
            version=version,
            backend=config.backend,
            onnx="data/source.onnx",
            onnx_name=onnx.name,
            companions={n: f"data/companions/{n}" for n in companions},
            compare_onnx="data/compare.onnx" if compare_onnx else None,
            training=training,
            register_into=target,
        )
        prepare = _preparer(spec, source, evaluation, onnx, compare_onnx, vdir, companions)
        scheduler = self.engine.scheduler(require_torch=torch_passes)
        job = scheduler.submit_prepared(KIND, spec, prepare, owner=p.tenant_id)
        self.engine.audit(
            p,
            "optimization_job.create",
            job.id,
            p.tenant_id,
            {
                "model": spec.model,
                "version": version,
                "mode": spec.label,
                "register_into": target,
                "state": job.state.value,
            },
        )
        return self.get(p, job.id)

    def _compare_onnx(self, p: Principal, spec: OptimizationSpec, version: int) -> Path:
        """The ONNX file of ``compare_version``, which must be another version than the one compared."""
        assert spec.compare_version is not None
        other_config, other, other_dir = self._version(p, spec.model, spec.compare_version)
        compare_onnx = _onnx_of(spec.model, other_config, other, other_dir)[0]
        if other == version:
            raise InvalidInput(
                f"compare_version {other} is the version being compared; choose another", param="compare_version"
            )
        return compare_onnx

    def _version(self, p: Principal, model: str, version: int | None) -> tuple[ModelConfig, int, Path]:
        """The model's config, the version and its directory; 404 for a model the tenant cannot see."""
        if not self.control.visible(p, model) or not self.repository.exists(model):
            raise NotFound(f"unknown model {model!r}", param="model")
        entry = self.repository.read(model)
        if entry.config is None:
            raise Conflict(f"model {model!r} has an invalid config: {entry.error}", param="model")
        if not entry.versions:
            raise Conflict(f"model {model!r} has no versions", param="model")
        v = version if version is not None else max(entry.versions)
        if v not in entry.versions:
            raise NotFound(
                f"model {model!r} has no version {v} (versions: {', '.join(map(str, entry.versions))})", param="version"
            )
        return entry.config, v, self.repository.version_dir(model, v)

    def _check_register(self, p: Principal, target: str, source: str, source_config: ModelConfig) -> None:
        """May ``p`` add a version to ``target``? Its own model, a public one for an admin, or a new name."""
        governance = self.control.governance
        exists, declared = self.control.declared_owner(target)
        ref = ModelRef(target, owner=declared)
        owner = governance.owner_of(ref)
        param = "register_as" if target != source else "model"
        if exists and not governance.can_see(p, ref):
            raise NotFound(f"unknown model {target!r}", param=param)
        if not exists:
            if owner is None or owner == p.tenant_id or p.is_admin:
                return
            raise PermissionDenied(
                f"the model name {target!r} is owned by another tenant; choose another register_as", param=param
            )
        config = self.repository.read(target).config
        if target != source and config is not None and config.backend != source_config.backend:
            raise Conflict(
                f"model {target!r} has backend {config.backend!r} and the optimized model {source_config.backend!r}; "
                "choose another register_as",
                param=param,
            )
        if owner == p.tenant_id:
            return
        if owner is None:
            if p.is_admin:
                return
            raise PermissionDenied(
                f"model {target!r} is public: only an admin adds versions to it; pass register_as with a new name "
                "to keep the optimized model as your tenant's",
                param=param,
            )
        if p.is_admin:
            raise Conflict(
                f"model {target!r} belongs to tenant {owner!r}; optimize it with a key of that tenant, or pass "
                "register_as",
                param=param,
            )
        raise PermissionDenied(
            f"model {target!r} is not owned by your tenant; pass register_as with a new name", param=param
        )

    def _job_dir_of(self, p: Principal) -> Any:
        """job id -> the directory of a training job whose data ``p`` may use (its tenant's, or any for an admin)."""

        def find(job_id: str) -> Path | None:
            row = self.store.row(str(job_id))
            if (
                row is None
                or (row.kind or "training") != "training"
                or not (p.is_admin or row.tenant_id == p.tenant_id)
            ):
                return None
            return Path(row.job_dir)

        return find

    def _training_source(
        self, model: str, version: int, vdir: Path, info: evalsets.TrainingInfo | None
    ) -> TrainingSource:
        if (vdir / "optimization.json").is_file():
            raise InvalidInput(
                f"version {version} of {model!r} was made by an optimization; prune and distill need the float network "
                "of a trained version: optimize the version its training job registered",
                param="version",
            )
        if info is None:
            raise InvalidInput(
                f"prune and distill work on the torch network and version {version} of {model!r} is an ONNX file "
                "without a training job of your tenant behind it; run them on a model trained here (aiaas jobs create)",
                param="passes",
            )
        ckpts = JobDir(info.job_dir).list_checkpoints()
        if not ckpts:
            raise Conflict(f"training job {info.job_id} kept no checkpoint to optimize from", param="passes")
        return TrainingSource(
            job_id=info.job_id,
            recipe=info.recipe,
            hyperparameters=info.hyperparameters,
            checkpoint=str(ckpts[-1][1]),
            training_file=str(info.training_file),
        )

    def _evaluation(
        self,
        p: Principal,
        spec: OptimizationSpec,
        config: ModelConfig,
        vdir: Path,
        sig: evalsets.Signature,
        info: evalsets.TrainingInfo | None,
    ) -> Evaluation:
        req = spec.evaluation
        classes = _classes(config, info)
        if req.file is not None:
            ev = evalsets.from_file(self.files.resolve(p, req.file, "evaluation.file"), req, sig, classes)
            ev.name = f"uploaded file {self.files.get(p, req.file)['filename']} ({req.file})"
        else:
            found = evalsets.from_heldout_npz(vdir, sig, req)
            if found is None and info is not None and info.validation_file is not None:
                found = evalsets.from_training_job(info, req)
            if found is None and isinstance(config.card.extra.get("catalog"), dict):
                found = evalsets.from_catalog(spec.model, req)
            if found is None:
                raise InvalidInput(
                    f"model {spec.model!r} has no held-out set of its own: upload evaluation rows "
                    "(aiaas files upload eval.npz) and pass evaluation.file",
                    param="evaluation.file",
                )
            ev = found
        calibration = None
        if req.calibration_file is not None:
            cal_req = req.model_copy(update={"metric": ev.metric})
            calibration = evalsets.from_file(
                self.files.resolve(p, req.calibration_file, "evaluation.calibration_file"), cal_req, sig, classes
            )
        return evalsets.finish(ev, sig, req, calibration)

    # -- read ---------------------------------------------------------------------------------------------
    def info(self, row: TrainingJobRow) -> OptimizationJob:
        return OptimizationJob(**optimization_fields(row))

    def get(self, p: Principal, job_id: str) -> OptimizationJobDetail:
        row = self.engine.visible(p, job_id, KIND)
        recent = self.store.last_events(job_id, RECENT_EVENTS, types=["message"])
        report = (row.result or {}).get("report")
        events = [JobEvent.model_validate(e) for e in recent]
        return OptimizationJobDetail(**optimization_fields(row), report=report, events=events)

    def logs(self, p: Principal, job_id: str, tail: int) -> str:
        """The last ``tail`` bytes of the worker's log (an optimization has one process: no rank logs)."""
        return self.launcher_logs(p, job_id, tail)


# -- helpers -------------------------------------------------------------------------------------------------
def _check_calibration(plans: list[list[PassSpec]], evaluation: Evaluation) -> None:
    """400 for static quantization without calibration rows."""
    if evaluation.calibration is None and any(s.name == "quantize-static" for ps in plans for s in ps):
        raise InvalidInput(
            "quantize-static needs calibration rows and this evaluation has none: pass evaluation.calibration_file "
            "(rows like the serving inputs, not the evaluation rows)",
            param="evaluation.calibration_file",
        )


def _with_serving_batch_sizes(spec: OptimizationSpec, config: ModelConfig) -> OptimizationSpec:
    """Batch sizes 1 and the serving batch size (the model's, at most 32) when the request names none."""
    if spec.workload.batch_sizes is not None:
        return spec
    serving = min(32, config.max_batch_size) if config.max_batch_size > 0 else 32
    return spec.model_copy(update={"workload": spec.workload.model_copy(update={"batch_sizes": sorted({1, serving})})})


def _preparer(
    spec: OptimizationSpec,
    source: SourceInfo,
    evaluation: Evaluation,
    onnx: Path,
    compare_onnx: Path | None,
    vdir: Path,
    companions: list[str],
) -> Callable[[Path], tuple[OptimizationSpec, dict[str, Any]]]:
    """What the scheduler runs in the new job directory: its own copies (hard links where possible) of the
    ONNX file, the version's other files and the evaluation rows, and the spec as the worker reads it."""

    def prepare(root: Path) -> tuple[OptimizationSpec, dict[str, Any]]:
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        _link(onnx, root / source.onnx)
        if compare_onnx is not None:
            _link(compare_onnx, data / "compare.onnx")
        for name in companions:
            _link(vdir / name, root / source.companions[name])
        from aiaas.optimize.worker import save_npz

        save_npz(data / "evaluation.npz", evaluation.inputs, evaluation.target)
        if evaluation.calibration is not None:
            save_npz(data / "calibration.npz", evaluation.calibration)
        resolved = EvaluationData(
            file="data/evaluation.npz",
            calibration="data/calibration.npz" if evaluation.calibration is not None else None,
            metric=evaluation.metric_name,
            output=evaluation.output,
            name=evaluation.name or "evaluation",
            rows=len(evaluation),
        )
        local = spec.model_copy(update={"source": source, "data": resolved})
        write_json_atomic(JobDir(root).spec, local.model_dump(mode="json"))
        return local, {"evaluation": resolved.model_dump()}

    return prepare


def _onnx_of(model: str, config: ModelConfig, version: int, vdir: Path) -> tuple[Path, list[str]]:
    """The ONNX file of a version (the file the backend runs) and the version's other files."""
    if config.backend not in ("onnx", "python"):
        raise Conflict(
            f"model {model!r} has backend {config.backend!r}: only ONNX models (backend onnx, or a python model "
            "running an ONNX file) can be optimized",
            param="model",
        )
    files = sorted(p for p in vdir.iterdir() if not p.name.startswith("."))
    onnx = [f for f in files if f.suffix == ".onnx" and f.is_file()]
    if not onnx:
        raise Conflict(f"version {version} of {model!r} holds no ONNX file to optimize", param="model")
    chosen = onnx[0] if len(onnx) == 1 else next((f for f in onnx if f.name == "model.onnx"), None)
    if chosen is None:
        raise Conflict(f"version {version} of {model!r} holds several ONNX files and none is model.onnx", param="model")
    dirs = [f.name for f in files if f.is_dir()]
    if dirs:
        raise Conflict(
            f"version {version} of {model!r} holds directories ({', '.join(dirs)}); an optimized version can only "
            "carry plain files",
            param="model",
        )
    skip = {chosen.name, "optimization.json", "training.json"}  # the new version's provenance is its own report
    return chosen, [f.name for f in files if f.name not in skip]


def _classes(config: ModelConfig, info: evalsets.TrainingInfo | None) -> list[Any] | None:
    if info is not None and info.meta.get("classes"):
        return list(info.meta["classes"])
    for source in (config.parameters.get("classes"), config.card.extra.get("classes")):
        if isinstance(source, list) and source:
            return source
    return None


def _link(src: Path, dst: Path) -> None:
    """Hard link (free; version files are never rewritten in place), else copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def optimization_fields(row: TrainingJobRow) -> dict[str, Any]:
    """The API's view of an optimization job (server paths left out), as ``OptimizationJob``'s fields."""
    spec = dict(row.spec or {})
    source = spec.get("source") or {}
    data = spec.get("data") or {}
    result = row.result or {}
    return {
        **lifecycle(row, "optimization"),
        "mode": "compare" if spec.get("compare_version") else "optimize",
        "model": row.model,
        "version": source.get("version", spec.get("version")),
        "compare_version": spec.get("compare_version"),
        "register_into": source.get("register_into"),
        "passes": spec.get("passes"),
        "evaluation": {
            **(spec.get("evaluation") or {}),
            **{k: data[k] for k in ("metric", "output", "name", "rows") if k in data},
        },
        "criterion": spec.get("criterion"),
        "workload": spec.get("workload"),
        "max_runtime_s": spec.get("max_runtime_s"),
        "priority": row.priority,
        "progress": row.progress or {},
        "accepted": result.get("accepted"),
        "decision": result.get("reason"),
        "chosen": result.get("chosen"),
        "model_version": row.model_version,
    }
