"""The job description: what the API accepts, what the launcher writes to ``<job dir>/spec.json`` and what the
worker reads back. One pydantic model so the three never disagree about a field.

Hyperparameters stay a free dict here; each recipe validates its own (``extra="forbid"``) so a typo like
``learning_rat`` is refused by the recipe that knows the names, with a message naming the field.

Strategies: ``ddp`` (torch DistributedDataParallel under torchrun) is built in. ``horovod`` (Horovod's
DistributedOptimizer under ``horovodrun --gloo``) and ``zero`` (DeepSpeed ZeRO stage 1/2 on CPU under torchrun)
are optional installs; a job asking for one that is not installed is refused with the command that installs it.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiaas.errors import InvalidInput
from aiaas.types.model_config import check_name

# strategy -> (top-level package that must be importable, what to install, the command that installs it)
OPTIONAL_STRATEGIES = {
    "horovod": (
        "horovod",
        "Horovod 0.28.1 built against torch 2.13 with Gloo",
        "make install-horovod (scripts/install-horovod.sh: builds it with C++17, a few minutes)",
    ),
    "zero": ("deepspeed", "DeepSpeed 0.19.8", "make install-deepspeed (pip install 'aiaas[zero]')"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Resources(_Strict):
    workers: int = Field(1, ge=1, le=256)  # torchrun --nproc_per_node
    threads_per_worker: int = Field(1, ge=1, le=256)  # torch.set_num_threads in each worker
    nodes: int = Field(
        default=1, ge=1, le=64
    )  # machines of a Ray cluster (> 1: docs/cluster.md, needs AIAAS_RAY_ADDRESS)
    workers_per_node: int | None = Field(default=None, ge=1, le=256)  # with nodes: workers on each node (= workers)

    @model_validator(mode="after")
    def _per_node(self) -> Resources:
        if self.workers_per_node is not None:
            if "workers" in self.model_fields_set and self.workers != self.workers_per_node:
                raise ValueError("resources: give workers or workers_per_node, not two different counts")
            self.workers = self.workers_per_node
        return self

    @property
    def cores(self) -> int:
        return self.workers * self.threads_per_worker


class CheckpointPolicy(_Strict):
    every_n_steps: int = Field(50, ge=1)  # rank 0 writes a checkpoint this often (and always at the end)
    keep_last: int = Field(2, ge=1, le=100)  # older checkpoints are deleted


class JobSpec(_Strict):
    recipe: str  # tabular | image | mf | text
    training_file: str  # a path (the launcher copies it into the job dir) or a file id the lead resolves
    validation_file: str | None = None
    hyperparameters: dict[str, Any] = {}
    model: str  # the target model name in the repository; the result becomes its next version
    resources: Resources = Resources.model_validate({})
    strategy: Literal["ddp", "horovod", "zero"] = "ddp"
    zero_stage: Literal[1, 2] = 1  # strategy zero: ZeRO stage (1: optimizer state sharded; 2: gradients too)
    checkpoint: CheckpointPolicy = CheckpointPolicy.model_validate({})
    max_restarts: int = Field(2, ge=0, le=100)  # torchrun --max-restarts: worker-group restarts on failure
    max_runtime_s: float = Field(3600.0, gt=0)  # wall clock for the whole job, restarts included
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy and torch seeds
    cluster_address: str | None = None  # set by the server for resources.nodes > 1 (a request may not set it)
    priority: int = Field(0, ge=-1_000_000, le=1_000_000)  # higher runs first among queued jobs (a 32-bit column)

    @field_validator("model")
    @classmethod
    def _model_name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _stage_needs_zero(self) -> JobSpec:
        if self.zero_stage != 1 and self.strategy != "zero":
            raise ValueError(f"zero_stage applies to strategy 'zero' only, not {self.strategy!r}")
        return self


def parse_spec(data: dict[str, Any]) -> JobSpec:
    """Validate a job request; raises InvalidInput naming each wrong field."""
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(format_errors(e, "job")) from None
    check_strategy(spec.strategy)
    return spec


def check_strategy(strategy: str) -> None:
    """``ddp`` is built in; ``horovod`` and ``zero`` run where their package is installed, and are refused with
    the install command otherwise. Only looks the package up (no import: the server never loads them)."""
    if strategy == "ddp":
        return
    module, what, command = OPTIONAL_STRATEGIES[strategy]
    if importlib.util.find_spec(module) is None:
        raise InvalidInput(
            f"strategy {strategy!r} needs {what}, which is not installed here: install it with {command}, "
            "or use strategy 'ddp'",
            param="strategy",
        )


def format_errors(e: ValidationError, prefix: str) -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        where = f"{prefix}.{loc}" if loc else prefix
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)
