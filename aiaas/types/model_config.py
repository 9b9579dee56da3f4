"""The schema of ``models/<name>/model.yaml``.

A model directory looks like Triton's::

    models/
      mlp/
        model.yaml          # this schema
        1/model.onnx        # version 1 artifacts
        2/model.onnx        # version 2 artifacts

Shapes are full tensor shapes as clients see them (``-1`` = variable). When ``max_batch_size > 0`` the first
dimension is the batch axis and must be ``-1``; the dynamic batcher concatenates requests along it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
DATATYPES: tuple[str, ...] = get_args(Datatype)  # the KServe V2 tensor datatypes

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_name(name: str, what: str = "model name") -> str:
    # fullmatch, not match: "$" also matches before a trailing newline, which would let "name\n" through
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".." in name:
        raise ValueError(
            f"invalid {what} {name[:80]!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class TensorSpec(_Strict):
    name: str
    datatype: Datatype
    shape: list[int]  # full shape; -1 = any size
    optional: bool = False  # an input the client may leave out

    @field_validator("shape")
    @classmethod
    def _dims(cls, v: list[int]) -> list[int]:
        if any(d < -1 or d == 0 for d in v):
            raise ValueError(f"shape {v}: each dimension must be a positive size or -1")
        return v


class BatchingConfig(_Strict):
    max_queue_delay_ms: float = 2.0  # how long the first request of a batch waits for company
    preferred_batch_sizes: list[int] = []  # run as soon as one of these sizes is reached
    max_queue_size: int = 1024  # requests waiting beyond this are refused with 503 + Retry-After
    timeout_ms: float = 30_000  # a request still queued after this is dropped with a 504


class VersionPolicy(_Strict):
    latest: int | None = None  # serve the N highest versions
    all: bool = False  # serve every version
    specific: list[int] | None = None  # serve exactly these versions

    @model_validator(mode="after")
    def _one(self) -> VersionPolicy:
        chosen = sum(x for x in (self.latest is not None, self.all, self.specific is not None))
        if chosen > 1:
            raise ValueError("version_policy: choose one of latest, all, specific")
        if self.latest is not None and self.latest < 1:
            raise ValueError("version_policy.latest must be >= 1")
        return self

    def select(self, versions: list[int]) -> list[int]:
        versions = sorted(versions)
        if self.all:
            return versions
        if self.specific is not None:
            return [v for v in versions if v in set(self.specific)]
        return versions[-(self.latest or 1) :]


class RuntimeOptions(_Strict):
    intra_op_threads: int = 0  # threads inside one operator (0 = settings.default_intra_op_threads / runtime default)
    inter_op_threads: int = 0  # threads across operators (0 = runtime default)
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = "all"
    execution_mode: Literal["sequential", "parallel"] = "sequential"
    # onnxruntime's intra-op threads busy-wait for work between runs (its default). That buys microseconds on
    # an idle machine and burns the cores that request parsing needs under load, so it is off unless asked.
    allow_spinning: bool = False


class Pricing(_Strict):
    per_request: float = 0.0  # currency units charged per request
    per_1k_units: float = 0.0  # per 1000 metered units (items, tokens, audio seconds)
    per_compute_second: float = 0.0  # per second of model compute


class ModelCard(_Strict):
    source: str | None = None  # where the weights/data come from
    license: str | None = None
    metrics: dict[str, Any] = {}  # measured on held-out data
    notes: str | None = None
    extra: dict[str, Any] = {}  # anything else (training job, data hash, ...)


class PipelineStep(_Strict):
    name: str  # step name, used to reference its outputs as <step>.<output>
    model: str  # the model this step calls
    version: int | None = None  # None = the model's latest ready version
    inputs: dict[str, str]  # step input name -> source: "<pipeline input>" or "<step>.<output>"

    @field_validator("name")
    @classmethod
    def _n(cls, v: str) -> str:
        return check_name(v, "pipeline step name")


class PipelineConfig(_Strict):
    steps: list[PipelineStep] = Field(min_length=1)
    outputs: dict[str, str]  # pipeline output name -> "<step>.<output>"


class Resources(_Strict):
    """What one replica asks of a Ray cluster (``placement: ray``); ignored by the other placements."""

    num_cpus: float = Field(default=1.0, ge=0)  # CPUs reserved per replica actor
    num_gpus: float = Field(default=0.0, ge=0)  # GPUs (fractions allowed) per replica actor
    memory: int = Field(default=0, ge=0)  # bytes of memory reserved per replica actor (0 = no reservation)
    strategy: Literal["SPREAD", "PACK"] = "SPREAD"  # placement group: replicas on distinct nodes, or packed


class Autoscale(_Strict):
    """Replicas follow the measured queue time (docs/cluster.md). ``min_replicas: 0`` scales to zero when idle."""

    min_replicas: int = Field(default=1, ge=0, le=1024)
    max_replicas: int = Field(default=4, ge=1, le=1024)
    target_queue_ms: float = Field(default=50.0, gt=0)  # add a replica while requests wait longer than this
    scale_down_delay_s: float = Field(default=30.0, ge=0)  # remove one after the queue stayed short this long

    @model_validator(mode="after")
    def _range(self) -> Autoscale:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"autoscale: min_replicas {self.min_replicas} > max_replicas {self.max_replicas}")
        return self


class ModelConfig(_Strict):
    name: str | None = None  # defaults to the directory name; must match it when given
    backend: Literal["onnx", "python", "pipeline", "llm", "tvm"] | str  # runtime adapter (tvm: model.so + tvm.json)
    task: str | None = None  # e.g. classification, embedding, asr
    description: str = ""
    inputs: list[TensorSpec] = []  # empty: taken from the artifact where the backend can (onnx)
    outputs: list[TensorSpec] = []
    max_batch_size: int = 0  # > 0 enables dynamic batching along dim 0, up to this many rows
    batching: BatchingConfig = BatchingConfig()
    instances: int = 1  # concurrent executors (replicas) per version
    version_policy: VersionPolicy = VersionPolicy()
    runtime: RuntimeOptions = RuntimeOptions()
    parameters: dict[str, Any] = {}  # backend-specific: python -> {"class": "pkg.mod:Class", ...}
    pipeline: PipelineConfig | None = None
    pricing: Pricing = Pricing()
    owner: str | None = None  # tenant id owning the model; None = public
    card: ModelCard = ModelCard()
    metering: Literal["items", "none"] | str = "items"  # unit metered per request (items = batch rows)
    # --- placement: where the replicas run (docs/cluster.md) ---
    # thread: in the server process; process: one worker process per replica; ray: actors on a Ray cluster;
    # auto: process for python-backend models (settings.python_placement), thread for everything else
    placement: Literal["auto", "thread", "process", "ray"] = "auto"
    resources: Resources = Resources()
    autoscale: Autoscale | None = None  # None: a fixed count (instances); else follow the queue time

    @field_validator("max_batch_size", "instances")
    @classmethod
    def _nonneg(cls, v: int, info: Any) -> int:
        if v < 0 or (info.field_name == "instances" and v < 1) or v > 1_000_000:
            raise ValueError(f"{info.field_name} out of range: {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        if self.name is not None:
            check_name(self.name)
        if self.max_batch_size > 0:
            for t in (*self.inputs, *self.outputs):
                if not t.shape or t.shape[0] != -1:
                    raise ValueError(
                        f"tensor {t.name!r}: with max_batch_size > 0 the first dimension is the batch axis "
                        f"and must be -1 (got shape {t.shape})"
                    )
        if self.backend == "pipeline" and self.pipeline is None:
            raise ValueError("backend 'pipeline' needs a 'pipeline:' section with steps and outputs")
        if self.backend == "python" and "class" not in self.parameters:
            raise ValueError("backend 'python' needs parameters.class: 'package.module:ClassName'")
        names = [t.name for t in self.inputs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate input names in {names}")
        return self
