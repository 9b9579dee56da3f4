"""What the job APIs answer (``/v1/training/jobs``, ``/v1/optimizations``): pydantic response models.

The fields, their order and their JSON are the API's contract (shaped after OpenAI fine-tuning jobs); server
paths never appear. ``status`` is one of ``validating queued running succeeded failed cancelled``.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Job(BaseModel):
    """What every job shows, whatever its kind: id, state machine, owner, times."""

    id: str
    object: str  # "training.job" | "optimization"
    status: str
    sub_status: str | None
    reason: str | None
    owner: str | None  # tenant id
    created_at: int | float
    transitions: dict[str, float]  # state or sub-status -> when it was entered


class TrainingJob(Job):
    model: str | None
    model_version: int | None
    recipe: str | None
    training_file: str | None  # file ids, as the request gave them
    validation_file: str | None
    hyperparameters: dict[str, Any]
    resources: dict[str, Any]
    strategy: str | None
    checkpoint: dict[str, Any]
    max_restarts: int | None
    max_runtime_s: int | float | None
    seed: int | None
    priority: int | None
    restarts: int | None
    progress: dict[str, Any]
    files: dict[str, Any]
    metrics: Any  # the result's metrics (None until it succeeds)
    result: dict[str, Any] | None


class OptimizationJob(Job):
    mode: Literal["optimize", "compare"]
    model: str | None
    version: int | None
    compare_version: int | None
    register_into: str | None
    passes: Any  # the request's passes: a list of names/objects, or a list of candidate lists
    evaluation: dict[str, Any]
    criterion: dict[str, Any] | None
    workload: dict[str, Any] | None
    max_runtime_s: int | float | None
    priority: int | None
    progress: dict[str, Any]
    accepted: bool | None
    decision: str | None
    chosen: str | None
    model_version: int | None


class OptimizationJobDetail(OptimizationJob):
    """``GET /v1/optimizations/{id}``: the job, its report and its recent message events."""

    report: dict[str, Any] | None
    events: list[JobEvent]


class JobEvent(BaseModel):
    seq: int
    ts: float
    level: str  # debug | info | warning | error
    type: str  # message | metrics
    message: str
    data: dict[str, Any]


class JobList(BaseModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    has_more: bool
    last_seq: int


class Checkpoint(BaseModel):
    step: int
    file: str
    bytes: int
    created_at: int | float


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Checkpoint]


OptimizationJobDetail.model_rebuild()
