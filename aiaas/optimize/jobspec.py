"""An optimization job's description: what ``POST /v1/optimizations`` accepts, what the server writes to
``<job dir>/spec.json`` and what ``aiaas.optimize.worker`` reads back. One pydantic model, like the training
``JobSpec``, so the three never disagree about a field.

The client part names the model, the passes (one candidate, or a list of candidates), the evaluation, the
criterion and the workload; unknown fields are refused by name. The server part (``source``, ``data``) is filled
in when the request has been checked: where the ONNX file, the torch checkpoint and the evaluation rows are in
the job directory. A client cannot set it (the service refuses a request that tries).

The spec satisfies ``aiaas.jobs.store.RunSpec`` -- ``model``, ``resources``, ``max_restarts``,
``max_runtime_s``, ``priority`` -- so the training scheduler queues and runs it like a training job.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aiaas.errors import InvalidInput
from aiaas.optimize.plan import PASSES, parse_pass
from aiaas.training.spec import Resources, format_errors
from aiaas.types.model_config import check_name

METRIC_NAMES = ("accuracy", "rmse", "mae", "r2")
PassItem = str | dict[str, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class EvaluationRequest(_Strict):
    """The rows the gate compares baseline and candidates on."""

    # an uploaded file id (NPZ: one array per model input + the target array; CSV/JSONL/Parquet: feature columns
    # + the target column, for a model with one 2-D input); None: the model's own held-out set
    file: str | None = None
    metric: Literal["accuracy", "rmse", "mae", "r2"] | None = None  # None: the held-out set's, else by task
    target: str | None = None  # column / array of expected values; None: the first of label, target, y
    features: list[str] | None = None  # table columns forming the input, in order; None: all numeric but target
    output: str | int | None = None  # the model output the metric reads (name or index); None: the first
    rows: int | None = Field(None, ge=10, le=10_000_000)  # use the first N rows only (faster, noisier)
    calibration_file: str | None = None  # rows quantize-static calibrates on; None: the held-out set's


class CriterionRequest(_Strict):
    max_relative_loss: float = Field(0.01, ge=0, le=1)  # the metric may get this much worse (0.01 = 1%)
    # and must be this much faster at the serving batch; unset: the server's AIAAS_OPTIMIZE_MIN_SPEEDUP; 0: any speed
    min_speedup: float | None = Field(None, ge=0)


class WorkloadRequest(_Strict):
    """How the model is served, so latency is measured where it matters. Latency is measured at every batch
    size; the largest is the serving batch (throughput, and the speedup the criterion reads)."""

    batch_sizes: list[int] | None = Field(None, min_length=1, max_length=8)  # None: [1, min(32, max batch)]
    threads: int = Field(1, ge=1, le=64)  # intra-op threads per session
    concurrency: int = Field(2, ge=1, le=64)  # callers at once in the throughput measurement
    target: Literal["cpu", "gpu"] = "cpu"
    iterations: int = Field(50, ge=5, le=100_000)  # latency samples per batch size
    max_seconds: float = Field(3.0, gt=0, le=600)  # per latency measurement
    throughput_seconds: float = Field(2.0, gt=0, le=600)
    warmup: int = Field(3, ge=0, le=1000)

    @field_validator("batch_sizes")
    @classmethod
    def _sizes(cls, v: list[int] | None) -> list[int] | None:
        if v is None:
            return v
        if any(not isinstance(b, int) or not 1 <= b <= 65_536 for b in v):
            raise ValueError("batch sizes are integers between 1 and 65536")
        return sorted(set(v))


class TrainingSource(_Strict):
    """A model version registered by a training job: its torch checkpoint and data (prune, distill)."""

    job_id: str
    recipe: str
    hyperparameters: dict[str, Any] = {}
    checkpoint: str  # path of the final checkpoint (state dict + meta)
    training_file: str  # the job's training rows (fine-tuning, distillation, calibration)


class SourceInfo(_Strict):
    """Filled in by the server: what is optimized and where an accepted candidate goes."""

    version: int
    backend: str  # the model's backend: onnx, or python with an ONNX file in its version directory
    onnx: str  # the version's ONNX file, copied into the job directory
    onnx_name: str = "model.onnx"  # its name inside the version directory
    companions: dict[str, str] = {}  # other files of the version (python models) -> copies in the job directory
    compare_onnx: str | None = None  # compare_version's ONNX file
    training: TrainingSource | None = None  # present when the version came from a training job
    register_into: str  # the model a candidate becomes a version of


class EvaluationData(_Strict):
    """Filled in by the server: the resolved evaluation, as arrays in ``evaluation.npz`` in the job directory."""

    file: str  # NPZ: input:<name> arrays and 'target'
    calibration: str | None = None  # NPZ: input:<name> arrays
    metric: str
    output: str | int = 0
    name: str  # where the rows come from, for the report
    rows: int


class OptimizationSpec(_Strict):
    model: str  # the model to optimize (the tenant must be able to see it)
    version: int | None = Field(None, ge=1)  # None: the latest version
    passes: list[PassItem] | list[list[PassItem]] = []  # one candidate, or several (a list of lists)
    compare_version: int | None = Field(None, ge=1)  # measure this version against ``version`` instead
    register_as: str | None = None  # register an accepted candidate as a version of this model instead
    evaluation: EvaluationRequest = EvaluationRequest.model_validate({})
    criterion: CriterionRequest = CriterionRequest.model_validate({})
    workload: WorkloadRequest = WorkloadRequest.model_validate({})
    max_runtime_s: float = Field(3600.0, gt=0, le=7 * 86400)  # wall clock for the whole job
    priority: int = 0  # higher runs first among queued jobs (training and optimization share the queue)
    seed: int = 0
    source: SourceInfo | None = None  # set by the server
    data: EvaluationData | None = None  # set by the server

    @field_validator("model", "register_as")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_name(v)

    @model_validator(mode="after")
    def _mode(self) -> OptimizationSpec:
        if self.compare_version is not None:
            if self.passes:
                raise ValueError("give either passes (optimize) or compare_version (compare two versions), not both")
            if self.register_as is not None:
                raise ValueError("compare_version registers nothing; leave register_as out")
        elif not self.passes:
            raise ValueError('passes is empty: name at least one pass (e.g. ["graph", "quantize-dynamic"])')
        return self

    # -- what the training scheduler reads (aiaas.jobs.store.RunSpec) -----------------------------------
    @property
    def resources(self) -> Resources:
        return Resources(workers=1, threads_per_worker=self.workload.threads * self.workload.concurrency)

    @property
    def max_restarts(self) -> int:
        return 0  # an optimization is not resumed: a restarted server runs it again from the start

    @property
    def label(self) -> str:
        return "compare" if self.compare_version is not None else "optimize"

    def candidate_lists(self) -> list[list[PassItem]]:
        if self.passes and all(isinstance(p, list) for p in self.passes):
            return [list(p) for p in self.passes]
        return [list(self.passes)]  # type: ignore[arg-type]


def needs_torch(spec: OptimizationSpec) -> bool:
    """Whether a candidate has a torch-level pass (prune, distill, export-onnx): it needs the trained network.
    Unknown pass names and options raise InvalidInput here."""
    return any(
        PASSES[parse_pass(item).name].stage in ("torch", "export") for ps in spec.candidate_lists() for item in ps
    )


def parse_request(data: Any) -> OptimizationSpec:
    """Validate a client's request; InvalidInput names each wrong field. ``source``/``data`` are the server's."""
    if not isinstance(data, dict):
        raise InvalidInput("the request body must be a JSON object describing the optimization")
    for key in ("source", "data"):
        if key in data:
            raise InvalidInput(f"optimization.{key}: set by the server, not by the request", param=key)
    passes = data.get("passes")
    if isinstance(passes, str):  # "graph,quantize-dynamic", as on the command line
        data = {**data, "passes": [p.strip() for p in passes.split(",") if p.strip()]}
    try:
        return OptimizationSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidInput(format_errors(e, "optimization")) from None
