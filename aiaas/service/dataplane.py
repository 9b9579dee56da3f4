"""The data plane: transport-free inference, metadata and statistics over the loaded models.

Every transport (V2 REST now; OpenAI-style and others later) parses its wire format, then calls one method
here. Inputs are checked against the model's declared tensors so a client mistake is a 400 that names the
tensor and what was expected -- never a 500 from deep inside a runtime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiaas import __version__
from aiaas.batching import InferResult
from aiaas.codecs.datatypes import v2_datatype
from aiaas.errors import AiaasError, InvalidInput, NotFound, clip
from aiaas.runtime import SequenceUsage, Tensors, llm_usage
from aiaas.service.governance import Governance, ModelRef, Outcome, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.models import PLATFORMS, ModelManager, VersionRecord, parse_version
from aiaas.service.spans import infer_spans
from aiaas.types.model_config import TensorSpec

EXTENSIONS = ["binary_tensor_data", "model_repository", "statistics", "parameters"]


@dataclass(slots=True)
class InferOutcome:
    outputs: Tensors
    version: str
    result: InferResult
    headers: dict[str, str]


def _shape_ok(expected: list[int], got: tuple[int, ...]) -> bool:
    return len(expected) == len(got) and all(e == -1 or e == g for e, g in zip(expected, got, strict=True))


def check_inputs(model: str, specs: list[TensorSpec], inputs: Tensors, datatypes: dict[str, str] | None) -> None:
    if not specs:
        return
    by_name = {s.name: s for s in specs}
    for name, arr in inputs.items():
        spec = by_name.get(name)
        if spec is None:
            raise InvalidInput(f"model {model!r} has no input {name!r}; its inputs are {sorted(by_name)}")
        got = datatypes.get(name) if datatypes else v2_datatype(arr)
        if got != spec.datatype:
            raise InvalidInput(f"input {name!r} of model {model!r} must be {spec.datatype}, got {got}")
        if not _shape_ok(spec.shape, arr.shape):
            raise InvalidInput(
                f"input {name!r} of model {model!r} must have shape {spec.shape} (-1 = any), got {list(arr.shape)}"
            )
    missing = [s.name for s in specs if s.name not in inputs and not s.optional]
    if missing:
        raise InvalidInput(f"model {model!r} needs input(s) {missing}; the request has {sorted(inputs)}")


_PRICING: dict[int, tuple[Any, dict[str, float]]] = {}  # id(config) -> (config, pricing): model_dump per request costs


def model_ref(vr: VersionRecord, name: str) -> ModelRef:
    """What governance needs to know about version ``vr`` of model ``name`` (pricing cached per config)."""
    cfg = vr.config
    pricing: dict[str, float] = {}
    if cfg:
        cached = _PRICING.get(id(cfg))
        if cached is None or cached[0] is not cfg:
            if len(_PRICING) > 4096:  # configs of unloaded versions
                _PRICING.clear()
            cached = _PRICING[id(cfg)] = (cfg, cfg.pricing.model_dump())
        pricing = dict(cached[1])
    return ModelRef(name=name, version=str(vr.version), owner=cfg.owner if cfg else None, pricing=pricing)


class DataPlane:
    tracer: Any = None  # an OpenTelemetry tracer when AIAAS_OTEL_ENDPOINT is set (server/tracing.py)

    def __init__(self, models: ModelManager, governance: Governance, metrics: Metrics) -> None:
        self.models = models
        self.governance = governance
        self.metrics = metrics
        models.context.infer = self._infer_internal  # pipelines call other models through here

    # -- health and metadata --------------------------------------------------------------------
    @staticmethod
    def server_metadata() -> dict[str, Any]:
        return {"name": "aiaas", "version": __version__, "extensions": EXTENSIONS}

    def _visible(self, principal: Principal, name: str) -> None:
        rec = self.models.models.get(name)
        if rec is not None and rec.config is not None:
            ref = ModelRef(name=name, owner=rec.config.owner)
            if not self.governance.can_see(principal, ref):
                raise NotFound(f"unknown model {clip(name)!r}")

    def model_ready(self, principal: Principal, name: str, version: str | None) -> bool:
        self._visible(principal, name)
        rec = self.models.record(name)
        if version:
            v = parse_version(version)
            vr = rec.versions.get(v)
            if vr is None:
                if self.models.unloaded_version(rec, v):
                    return False
                raise NotFound(f"model {name!r} has no version {v}")
            return vr.ready
        return rec.latest_ready() is not None

    def model_metadata(self, principal: Principal, name: str, version: str | None) -> dict[str, Any]:
        self._visible(principal, name)
        rec = self.models.record(name)
        vr = self.models.resolve(name, version) if (version or rec.latest_ready()) else None
        cfg = vr.config if vr and vr.config else rec.config
        if cfg is None:
            raise NotFound(f"model {name!r} has no valid config: {rec.reason}")

        def tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
            return [{"name": t.name, "datatype": t.datatype, "shape": t.shape} for t in specs]

        return {
            "name": name,
            "versions": [str(v) for v in sorted(rec.versions) if rec.versions[v].ready],
            "platform": PLATFORMS.get(cfg.backend, cfg.backend),
            "inputs": tensors(cfg.inputs),
            "outputs": tensors(cfg.outputs),
            "parameters": {
                "max_batch_size": cfg.max_batch_size,
                "task": cfg.task,
                "description": cfg.description,
                "card": cfg.card.model_dump(exclude_defaults=True),
                "optional_inputs": [t.name for t in cfg.inputs if t.optional],
            },
        }

    def statistics(self, principal: Principal, name: str | None, version: str | None) -> dict[str, Any]:
        rows = []
        names = [name] if name else sorted(self.models.models)
        for n in names:
            if name:
                self._visible(principal, n)
            rec = self.models.record(n)
            if rec.config is not None and not self.governance.can_see(principal, ModelRef(n, owner=rec.config.owner)):
                continue
            for v, vr in sorted(rec.versions.items()):
                if version and str(v) != version:
                    continue
                if vr.executor is None:
                    continue
                s = vr.executor.stats
                rows.append(
                    {
                        "name": n,
                        "version": str(v),
                        "last_inference": s.last_inference_ms,
                        "inference_count": s.inference_count,
                        "execution_count": s.execution_count,
                        "inference_stats": {
                            "success": s.success.as_dict(),
                            "fail": s.fail.as_dict(),
                            "queue": s.queue.as_dict(),
                            "compute_input": {"count": s.compute_infer.count, "ns": 0},
                            "compute_infer": s.compute_infer.as_dict(),
                            "compute_output": {"count": s.compute_infer.count, "ns": 0},
                            "cache_hit": {"count": 0, "ns": 0},
                            "cache_miss": {"count": 0, "ns": 0},
                        },
                        "batch_stats": [
                            {
                                "batch_size": size,
                                "compute_input": {"count": c.count, "ns": 0},
                                "compute_infer": c.as_dict(),
                                "compute_output": {"count": c.count, "ns": 0},
                            }
                            for size, c in sorted(s.batches.items())
                        ],
                    }
                )
        if name and version and not rows:
            raise NotFound(f"model {name!r} has no loaded version {version}")
        return {"model_stats": rows}

    # -- inference ------------------------------------------------------------------------------
    async def infer(
        self,
        principal: Principal,
        name: str,
        version: str | None,
        inputs: Tensors,
        parameters: dict[str, Any],
        datatypes: dict[str, str] | None = None,
        requested: list[str] | None = None,
        endpoint: str = "v2.infer",
    ) -> InferOutcome:
        t0 = time.perf_counter()
        self._visible(principal, name)
        vr = self.models.resolve(name, version)
        label_v = str(vr.version)
        batched = vr.config is not None and vr.config.max_batch_size > 0
        units = float(_rows(inputs) if batched else 1)  # what a success meters: known before it runs
        try:
            admission = await self.governance.admit(principal, model_ref(vr, name), endpoint, units)
        except AiaasError as e:
            self.metrics.ops.refused(name, principal.tenant_id, e.status_code)
            raise
        status, result = 500, None
        usage: list[SequenceUsage] = []  # filled by an LLM: metered and counted in tokens, as /v1 does
        try:
            if not vr.ready:  # a reload swapped versions while admit awaited: take the current one
                vr = self.models.resolve(name, version)
            assert vr.config is not None and vr.executor is not None
            check_inputs(name, vr.config.inputs, inputs, datatypes)
            if requested is not None:
                known = {t.name for t in vr.config.outputs}
                unknown = [r for r in requested if known and r not in known]
                if unknown:
                    raise InvalidInput(f"model {name!r} has no output(s) {unknown}; its outputs are {sorted(known)}")
            result = await self._run(vr, inputs, parameters, usage)
            outputs = result.outputs
            if requested is not None:
                missing = [r for r in requested if r not in outputs]
                if missing:
                    raise InvalidInput(f"model {name!r} did not produce output(s) {missing}")
                outputs = {r: outputs[r] for r in requested}
            status = 200
            if self.tracer is not None:  # AIAAS_OTEL_ENDPOINT: queue / batch / model child spans
                infer_spans(self.tracer, name, label_v, time.time_ns(), result)
            return InferOutcome(outputs, label_v, result, admission.headers)
        except AiaasError as e:
            status = e.status_code
            e.headers.update(admission.headers)
            raise
        finally:
            elapsed = time.perf_counter() - t0
            rows = units if status == 200 else 0
            compute_s = result.compute_s * rows / max(1, result.batch_size) if result else 0.0
            outcome = Outcome(status=status, units_in=float(rows), compute_s=compute_s)
            if usage and status == 200:  # an LLM: prompt and generated tokens, as /v1 meters them
                outcome.units_in = float(sum(u.prompt_tokens for u in usage))
                outcome.units_out = float(sum(u.generated for u in usage))
            await self.governance.finish(admission, outcome)
            self._count_tokens(name, usage, t0)
            self.metrics.request_done(
                name,
                label_v,
                "success" if status == 200 else str(status),
                elapsed,
                result.queue_s if result is not None else None,
            )
            if status == 503:  # the model's queue was full
                self.metrics.ops.refused(name, principal.tenant_id, status)

    async def _infer_internal(
        self, name: str, version: int | None, inputs: Tensors, parameters: dict[str, Any]
    ) -> Tensors:
        t0 = time.perf_counter()
        vr = self.models.resolve(name, version)
        assert vr.config is not None and vr.executor is not None
        check_inputs(name, vr.config.inputs, inputs, None)
        usage: list[SequenceUsage] = []  # the calling request meters its own units; the tokens count here
        try:
            result = await self._run(vr, inputs, parameters, usage)
        finally:
            self._count_tokens(name, usage, t0)
        return result.outputs

    @staticmethod
    async def _run(
        vr: VersionRecord, inputs: Tensors, parameters: dict[str, Any], usage: list[SequenceUsage]
    ) -> InferResult:
        """The executor's inference with ``usage`` as the place an LLM records its sequences' tokens."""
        assert vr.executor is not None
        reset = llm_usage.set(usage)
        try:
            return await vr.executor.infer(inputs, parameters)
        finally:
            llm_usage.reset(reset)

    def _count_tokens(self, name: str, usage: list[SequenceUsage], t0: float) -> None:
        """The vLLM-style token families for each sequence an LLM ran (the same ones /v1 requests feed)."""
        for u in usage:
            self.metrics.ops.llm_request(name, u.prompt_tokens, u.generated, t0, u.t_first, u.t_end)


def _rows(inputs: Tensors) -> int:
    for arr in inputs.values():
        return int(arr.shape[0]) if isinstance(arr, np.ndarray) and arr.ndim else 1
    return 0
