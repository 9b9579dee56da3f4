"""Training jobs as a service: ``JobsService`` (what ``/v1/training/jobs``, the console and the CLI call:
create, list, get, cancel, events, checkpoints, logs) on the server's job engine (``aiaas.service.jobengine``).

This module adds the tenancy of a training job: a job belongs to the tenant of the key that made it, its files
must be files that tenant may see, its target model must be one the tenant owns (or a new name, which becomes
the tenant's model when the first version is registered), and a job of another tenant answers 404 exactly like
a job that does not exist. Only ``admin`` and ``developer`` keys manage jobs.

It is also where the server plugs the job kinds into the engine: importing ``aiaas.training.launcher`` and
``aiaas.optimize.jobkind`` registers ``training`` and ``optimization`` (neither imports torch). A server without
torch still serves files, answers job reads and runs ONNX optimizations.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiaas.optimize.jobkind
import aiaas.training.launcher  # noqa: F401  (registers the training kind)
from aiaas.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from aiaas.jobs.dbstore import (
    DbJobStore as DbJobStore,  # the engine's store, named here with the kinds registered
)
from aiaas.jobs.jobdir import JobDir
from aiaas.service.files import FilesService, require_manage
from aiaas.service.governance import ModelRef, Principal
from aiaas.service.jobengine import LOG_TAIL_DEFAULT, JobEngine, JobFamily, check_tail, lifecycle
from aiaas.store.jobs import TrainingJobRow
from aiaas.training.spec import JobSpec, parse_spec
from aiaas.types.jobs import Checkpoint, CheckpointList, TrainingJob

if TYPE_CHECKING:
    from aiaas.service.control import ModelControl
    from aiaas.training.launcher import Scheduler

__all__ = ["LOG_TAIL_DEFAULT", "DbJobStore", "JobsService", "check_nodes", "job_info"]


def check_nodes(nodes: int, ray_address: str | None, strategy: str = "ddp") -> None:
    """A job on several machines needs a Ray cluster; refused with what to do when there is none."""
    if nodes <= 1:
        return
    if not ray_address:
        raise InvalidInput(
            f"resources.nodes {nodes} needs a Ray cluster: start the server with --ray-address or AIAAS_RAY_ADDRESS "
            "(docs/cluster.md); on one machine use resources.workers instead",
            param="resources.nodes",
        )
    if strategy == "horovod":
        raise InvalidInput("resources.nodes > 1 runs torchrun on each node: use strategy ddp or zero", param="strategy")


class JobsService(JobFamily[TrainingJob]):
    kind = "training"
    noun = "training jobs"
    launcher_label = "torchrun"

    def __init__(
        self,
        engine: JobEngine,
        files: FilesService,
        control: ModelControl,
        ray_address: str | None = None,  # the Ray cluster multi-node jobs would span (Settings)
    ) -> None:
        super().__init__(engine)
        self.files = files
        self.control = control
        self.ray_address = ray_address

    # -- the engine, for the app's lifespan and the tests -----------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> list[str]:
        return self.engine.start(loop)

    def stop(self) -> None:
        self.engine.stop()

    def scheduler(self, start_loop: bool = True, require_torch: bool = True) -> Scheduler:
        return self.engine.scheduler(start_loop, require_torch)

    def info(self, row: TrainingJobRow) -> TrainingJob:
        return job_info(row)

    # -- create -------------------------------------------------------------------------------------------
    def _check_target_model(self, p: Principal, model: str) -> None:
        """May ``p`` add versions to ``model``? A new name is fine: the first version makes it the tenant's."""
        governance = self.control.governance
        exists, declared = self.control.declared_owner(model)
        ref = ModelRef(model, owner=declared)
        owner = governance.owner_of(ref)
        if exists and not governance.can_see(p, ref):
            raise NotFound(f"unknown model {model!r}", param="model")
        if not exists:  # a new name, unless an ownership record already gives it to another tenant
            if owner is None or owner == p.tenant_id or p.is_admin:
                return
            if not governance.can_see(p, ref):
                raise NotFound(f"unknown model {model!r}", param="model")
            raise PermissionDenied(
                f"the model name {model!r} is owned by another tenant; choose another name", param="model"
            )
        config = self.control.models.repository.read(model).config
        if config is not None and config.backend != "onnx":
            raise Conflict(
                f"model {model!r} has backend {config.backend!r}; a training job adds ONNX versions, so choose a new "
                "model name",
                param="model",
            )
        if owner == p.tenant_id or (p.is_admin and owner is None):
            return
        if p.is_admin:
            raise Conflict(
                f"model {model!r} belongs to tenant {owner!r}; train it with a key of that tenant, or choose a new "
                "name",
                param="model",
            )
        raise PermissionDenied(f"model {model!r} is not owned by your tenant; choose a new model name", param="model")

    def create(self, p: Principal, body: Any) -> TrainingJob:
        """Validate the request, resolve its files, check the target model, and submit the job (blocking:
        the data is parsed in full before the job is queued)."""
        require_manage(p, "creating training jobs")
        if not isinstance(body, dict):
            raise InvalidInput("the request body must be a JSON object describing the job")
        if "cluster_address" in body:
            raise InvalidInput(
                "cluster_address is set by the server (AIAAS_RAY_ADDRESS), not by a request", param="cluster_address"
            )
        spec = parse_spec(body)  # field errors first, naming the field
        check_nodes(spec.resources.nodes, self.ray_address, spec.strategy)
        train_id, val_id = spec.training_file, spec.validation_file
        updates: dict[str, Any] = {"training_file": str(self.files.resolve(p, train_id, "training_file"))}
        if spec.resources.nodes > 1:
            updates["cluster_address"] = self.ray_address
        if val_id is not None:
            updates["validation_file"] = str(self.files.resolve(p, val_id, "validation_file"))
        self._check_target_model(p, spec.model)
        job = self.scheduler().submit(spec.model_copy(update=updates), owner=p.tenant_id)
        self.store.set_file_ids(job.id, train_id, val_id)
        self.engine.audit(
            p,
            "training_job.create",
            job.id,
            p.tenant_id,
            {
                "model": spec.model,
                "recipe": spec.recipe,
                "workers": spec.resources.workers,
                "state": job.state.value,
            },
        )
        return self.get(p, job.id)

    # -- what only training jobs have -------------------------------------------------------------------------
    def checkpoints(self, p: Principal, job_id: str) -> CheckpointList:
        row = self.engine.visible(p, job_id, self.kind)
        out = []
        for step, path in JobDir(Path(row.job_dir)).list_checkpoints():
            with contextlib.suppress(OSError):
                st = path.stat()
                out.append(Checkpoint(step=step, file=path.name, bytes=st.st_size, created_at=st.st_mtime))
        return CheckpointList(data=out)

    def logs(self, p: Principal, job_id: str, rank: int | None = None, tail: int = LOG_TAIL_DEFAULT) -> str:
        """The last ``tail`` bytes of one rank's log, or of torchrun's own log when no rank is given."""
        if rank is None:
            return self.launcher_logs(p, job_id, tail)
        row = self.engine.visible(p, job_id, self.kind)
        check_tail(tail)
        workers = JobSpec.model_validate(row.spec).resources.workers
        if not isinstance(rank, int) or not 0 <= rank < workers:
            raise InvalidInput(
                f"rank must be between 0 and {workers - 1} (the job has {workers} worker(s))", param="rank"
            )
        return self.read_log(row, JobDir(Path(row.job_dir)).rank_log(rank), f"rank {rank}", tail)


def job_info(row: TrainingJobRow) -> TrainingJob:
    """The API's view of a training job (shaped after OpenAI fine-tuning jobs); server paths are left out."""
    spec = dict(row.spec or {})
    result = row.result or {}
    return TrainingJob(
        **lifecycle(row, "training.job"),
        model=row.model,
        model_version=row.model_version,
        recipe=row.recipe,
        training_file=row.training_file_id,
        validation_file=row.validation_file_id,
        hyperparameters=spec.get("hyperparameters", {}),
        resources=spec.get("resources", {}),
        strategy=spec.get("strategy"),
        checkpoint=spec.get("checkpoint", {}),
        max_restarts=spec.get("max_restarts"),
        max_runtime_s=spec.get("max_runtime_s"),
        seed=spec.get("seed"),
        priority=row.priority,
        restarts=row.restarts,
        progress=row.progress or {},
        files=row.files or {},
        metrics=result.get("metrics"),
        result={k: v for k, v in result.items() if k not in ("onnx",)} if result else None,
    )
