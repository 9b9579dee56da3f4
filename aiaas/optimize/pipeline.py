"""``optimize``: plan, run the passes, measure baseline and candidates in one process, gate, register.

Every pass list is validated (``plan``) before anything runs, so a wrong order fails in milliseconds and not
after a fine-tuning epoch. The baseline is the source as it would be served (a torch source is exported to fp32
ONNX first), measured with the same rows, threads and batch sizes as the candidates. An accepted candidate --
the fastest at the serving batch size among those that pass the gate -- becomes the next version of the model
with its report in the model card (``card.extra.optimization``) and in ``<version>/optimization.json``; a
rejected one leaves only its report.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiaas.errors import Conflict, InvalidInput
from aiaas.optimize.artifacts import (
    Artifact,
    Criterion,
    Evaluation,
    FineTune,
    OnnxSource,
    Progress,
    Source,
    TorchSource,
    Workload,
    file_sha256,
    module_sha256,
    no_progress,
)
from aiaas.optimize.gate import Decision, gate
from aiaas.optimize.measure import measure, pareto
from aiaas.optimize.passes import PassContext, export_onnx, run_pass
from aiaas.optimize.plan import PASSES, PassSpec, describe, plan
from aiaas.optimize.registration import card_report, register_artifact
from aiaas.optimize.speedci import speedup_ci
from aiaas.optimize.sysinfo import cpu_info, tool_versions
from aiaas.registry import ModelRepository

PassList = list[str | dict[str, Any] | PassSpec]


@dataclass
class Candidate:
    name: str
    passes: list[PassSpec]
    artifact: Artifact | None = None
    measurement: dict[str, Any] | None = None
    decision: Decision | None = None
    error: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passes": [p.to_dict() for p in self.passes],
            "details": self.artifact.details if self.artifact else {},
            "measurement": self.measurement,
            "decision": self.decision.to_dict()
            if self.decision
            else {"accepted": False, "reason": f"rejected: {self.error}"},
            "error": self.error,
            "seconds": round(self.seconds, 2),
        }


@dataclass
class OptimizationResult:
    accepted: bool
    reason: str
    report: dict[str, Any]
    model: str | None = None
    version: int | None = None  # the new version when accepted and a repository was given
    chosen: str | None = None
    candidates: list[Candidate] = field(default_factory=list)


def _candidate_lists(passes: PassList | list[PassList] | str) -> list[PassList]:
    if isinstance(passes, str):
        return [[p for p in passes.split(",") if p.strip()]]
    if passes and all(isinstance(p, list) for p in passes):
        return [list(p) for p in passes]  # type: ignore[arg-type]
    return [list(passes)]  # type: ignore[arg-type]


def check_requirements(
    specs: list[PassSpec], source: Source, evaluation: Evaluation, fine_tune: FineTune | None
) -> None:
    """What the passes need from outside, checked before any work."""
    for s in specs:
        if (
            s.name == "quantize-static"
            and evaluation.calibration is None
            and not (isinstance(source, TorchSource) and source.train is not None and source.wrap is None)
        ):
            raise InvalidInput(
                "quantize-static needs a calibration set (rows like the serving inputs, not the evaluation rows)"
            )
        if s.name == "distill":
            if not isinstance(source, TorchSource) or source.student is None:
                raise InvalidInput("distill needs a student architecture: a recipe or a student builder (width, depth)")
            if source.train is None or fine_tune is None:
                raise InvalidInput("distill needs the training rows and a fine-tune function")
        if (
            s.name == "prune"
            and int(s.options["fine_tune_epochs"]) > 0
            and (not isinstance(source, TorchSource) or source.train is None or fine_tune is None)
        ):
            raise InvalidInput("prune with fine_tune_epochs > 0 needs the training rows and a fine-tune function")


def _check_target(repository: ModelRepository | None, model: str | None, plans: list[list[PassSpec]]) -> None:
    if repository is None or model is None or not repository.exists(model):
        return
    entry = repository.read(model)
    backend = entry.config.backend if entry.config else None
    for specs in plans:
        kind = "tvm" if specs[-1].name == "tvm" else "onnx"
        if backend is not None and backend != kind:
            raise Conflict(
                f"model {model!r} is served by the {backend!r} backend and a {describe(specs)!r} candidate needs "
                f"{kind!r}; optimize into a new model name instead"
            )


def optimize(
    source: Source,
    passes: PassList | list[PassList] | str,
    evaluation: Evaluation,
    criterion: Criterion | None = None,
    workload: Workload | None = None,
    progress: Progress | None = None,
    *,
    repository: ModelRepository | None = None,
    model: str | None = None,
    fine_tune: FineTune | None = None,
    workdir: Path | None = None,
    export: dict[str, Any] | None = None,
) -> OptimizationResult:
    """Run one candidate per pass list (``passes`` may be a list of lists), gate them, register the best."""
    from_torch = isinstance(source, TorchSource)
    if fine_tune is None and from_torch:
        from aiaas.optimize.torch_passes import local_fine_tune

        fine_tune = local_fine_tune
    criterion = criterion or Criterion()
    workload = workload or Workload()
    progress = progress or no_progress
    model = model or source.model
    plans = [plan(p, "torch" if from_torch else "onnx", workload.target, export) for p in _candidate_lists(passes)]
    for specs in plans:
        check_requirements(specs, source, evaluation, fine_tune)
    _check_target(repository, model, plans)

    own_dir = workdir is None
    work = Path(tempfile.mkdtemp(prefix="aiaas-optimize-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(source, plans, evaluation, criterion, workload, progress, repository, model, fine_tune, work)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)


def _run(
    source: Source,
    plans: list[list[PassSpec]],
    evaluation: Evaluation,
    criterion: Criterion,
    workload: Workload,
    progress: Progress,
    repository: ModelRepository | None,
    model: str | None,
    fine_tune: FineTune | None,
    work: Path,
) -> OptimizationResult:
    ctx = PassContext(
        work,
        evaluation=evaluation,
        source=source if isinstance(source, TorchSource) else None,
        fine_tune=fine_tune,
        target=workload.target,
    )
    progress(0.0, "baseline")
    base, source_info = _baseline_artifact(source, plans, ctx)
    baseline = measure(base, evaluation, workload)
    baseline["details"] = base.details
    progress(0.1, "baseline measured")
    share = 0.9 / len(plans)
    trial = _Trial(source, base, baseline, evaluation, criterion, workload, ctx)
    candidates = [trial.run(specs, progress, 0.1 + k * share, share) for k, specs in enumerate(plans)]
    return _conclude(source_info, evaluation, criterion, workload, baseline, candidates, progress, repository, model)


def _baseline_artifact(
    source: Source, plans: list[list[PassSpec]], ctx: PassContext
) -> tuple[Artifact, dict[str, Any]]:
    """The artifact every candidate is measured against (the ONNX file, or the network exported as the first
    plan exports it) and what the report says about the source."""
    source_info: dict[str, Any]
    if isinstance(source, OnnxSource):
        source_info = {"kind": "onnx", "sha256": file_sha256(source.path), "file": source.path.name}
        base = Artifact("onnx", path=source.path)
    else:
        source_info = {
            "kind": "torch",
            "sha256": module_sha256(source.net),
            "hyperparameters": source.hyperparameters,
        }
        export_spec = next(s for s in plans[0] if s.name == "export-onnx")
        base = export_onnx(Artifact("torch", net=source.net), export_spec.options, ctx)
    source_info.update(recipe=source.recipe, model=source.model, version=source.version)
    return base, source_info


@dataclass
class _Trial:
    """One candidate's passes, measurement and gate decision; a failing pass fails the candidate only."""

    source: Source
    base: Artifact
    baseline: dict[str, Any]
    evaluation: Evaluation
    criterion: Criterion
    workload: Workload
    ctx: PassContext

    def run(self, specs: list[PassSpec], progress: Progress, start: float, share: float) -> Candidate:
        cand = Candidate(describe(specs), specs)
        t0 = time.perf_counter()
        source = self.source
        art = (
            Artifact("torch", net=copy.deepcopy(source.net))
            if isinstance(source, TorchSource)
            else Artifact("onnx", path=source.path)
        )
        step = "start"
        try:
            for i, spec in enumerate(specs):
                step = spec.name
                self.ctx.progress = _sub(progress, start + share * 0.7 * i / len(specs), share * 0.7 / len(specs))
                self.ctx.progress(0.0, f"{cand.name}: {spec.name}")
                art = run_pass(spec, art, self.ctx)
            cand.artifact = art
            step = "measure"
            progress(start + share * 0.7, f"{cand.name}: measuring")
            cand.measurement = measure(art, self.evaluation, self.workload)
            cand.measurement["speedup_ci"] = speedup_ci(self.base, art, self.evaluation, self.workload)
            cand.decision = gate(self.criterion, self.baseline, cand.measurement, self.workload.batch_size)
        except InvalidInput as e:
            cand.error = f"{step}: {e.message}"
        except Exception as e:  # a pass that crashes fails its candidate, not the optimization
            cand.error = f"{step}: {type(e).__name__}: {e}"
        cand.seconds = time.perf_counter() - t0
        progress(
            start + share, f"{cand.name}: {cand.decision.reason if cand.decision else 'failed: ' + str(cand.error)}"
        )
        return cand


def _sub(progress: Progress, start: float, width: float) -> Progress:
    """A progress callback for a slice [start, start + width] of the whole."""
    return lambda f, msg: progress(min(1.0, start + width * max(0.0, min(1.0, f))), msg)


def _conclude(
    source_info: dict[str, Any],
    evaluation: Evaluation,
    criterion: Criterion,
    workload: Workload,
    baseline: dict[str, Any],
    candidates: list[Candidate],
    progress: Progress,
    repository: ModelRepository | None,
    model: str | None,
) -> OptimizationResult:
    """The Pareto front, the fastest accepted candidate, the report, and the registration when asked."""
    measured = {c.name: c for c in candidates if c.measurement is not None}
    serving = f"batch_{workload.batch_size}"
    points = {"baseline": _point(baseline, serving)} | {
        n: _point(c.measurement, serving) for n, c in measured.items() if c.measurement is not None
    }
    front = pareto(points, evaluation.higher)
    accepted = [c for c in candidates if c.decision and c.decision.accepted]
    chosen = min(accepted, key=lambda c: c.measurement["latency"][serving]["p50_ms"]) if accepted else None  # type: ignore[index]

    report = _report(source_info, evaluation, criterion, workload, baseline, candidates, front, chosen)
    if chosen is None:
        reasons = "; ".join(
            f"{c.name}: {c.decision.reason if c.decision else 'failed: ' + str(c.error)}" for c in candidates
        )
        progress(1.0, "no candidate accepted")
        return OptimizationResult(False, reasons, report, model=model, candidates=candidates)

    assert chosen.decision is not None and chosen.artifact is not None
    version = None
    if repository is not None and model is not None:
        progress(0.95, f"registering {chosen.name} as a new version of {model}")
        version = register(repository, model, chosen, report)
        report["registered"] = {"model": model, "version": version}
    progress(1.0, chosen.decision.reason)
    return OptimizationResult(
        True,
        chosen.decision.reason,
        report,
        model=model,
        version=version,
        chosen=chosen.name,
        candidates=candidates,
    )


def _report(
    source_info: dict[str, Any],
    evaluation: Evaluation,
    criterion: Criterion,
    workload: Workload,
    baseline: dict[str, Any],
    candidates: list[Candidate],
    front: list[str],
    chosen: Candidate | None,
) -> dict[str, Any]:
    return {
        "source": source_info,
        "environment": {"cpu": cpu_info(), "tools": tool_versions()},
        "workload": vars(workload).copy(),
        "criterion": vars(criterion).copy(),
        "evaluation": {
            "metric": evaluation.metric_name,
            "rows": len(evaluation),
            "name": evaluation.name,
            "higher_is_better": evaluation.higher,
        },
        "baseline": baseline,
        "candidates": [c.to_dict() for c in candidates],
        "pareto": front,
        "chosen": chosen.name if chosen else None,
        "note": "timings from one process on a possibly shared machine: compare ratios, not absolute milliseconds",
    }


def compare(
    baseline: OnnxSource,
    candidate: OnnxSource,
    evaluation: Evaluation,
    criterion: Criterion | None = None,
    workload: Workload | None = None,
    progress: Progress | None = None,
) -> OptimizationResult:
    """Measure two ONNX versions of a model on the same rows, threads and batch sizes, one after the other in
    this process; the gate says whether ``candidate`` meets the criterion against ``baseline``. The report has
    the shape of an optimization's (one candidate, no passes); nothing is registered."""
    criterion = criterion or Criterion()
    workload = workload or Workload()
    progress = progress or no_progress
    b_name, c_name = f"version {baseline.version}", f"version {candidate.version}"
    progress(0.0, "baseline")
    base = measure(Artifact("onnx", path=baseline.path), evaluation, workload)
    base["details"] = {}
    progress(0.45, f"{c_name}: measuring")
    cand = Candidate(c_name, [], artifact=Artifact("onnx", path=candidate.path))
    t0 = time.perf_counter()
    try:
        cand.measurement = measure(cand.artifact, evaluation, workload)  # type: ignore[arg-type]
        cand.measurement["speedup_ci"] = speedup_ci(
            Artifact("onnx", path=baseline.path),
            cand.artifact,  # type: ignore[arg-type]
            evaluation,
            workload,
        )
        cand.decision = gate(criterion, base, cand.measurement, workload.batch_size)
    except Exception as e:  # a version that cannot run on these rows is reported, not raised
        cand.error = f"measure: {type(e).__name__}: {e}"
    cand.seconds = time.perf_counter() - t0
    serving = f"batch_{workload.batch_size}"
    points = {b_name: _point(base, serving)}
    if cand.measurement is not None:
        points[c_name] = _point(cand.measurement, serving)
    source_info = {
        "kind": "onnx",
        "sha256": file_sha256(baseline.path),
        "model": baseline.model,
        "version": baseline.version,
        "compared_with": {"version": candidate.version, "sha256": file_sha256(candidate.path)},
    }
    report = _report(
        source_info, evaluation, criterion, workload, base, [cand], pareto(points, evaluation.higher), None
    )
    report["baseline_name"] = b_name
    reason = cand.decision.reason if cand.decision else f"failed: {cand.error}"
    progress(1.0, f"{c_name}: {reason}")
    accepted = bool(cand.decision and cand.decision.accepted)
    return OptimizationResult(accepted, reason, report, model=baseline.model, candidates=[cand])


def _point(m: dict[str, Any], serving: str) -> tuple[float, float, float]:
    return float(m["size_bytes"]), float(m["latency"][serving]["p50_ms"]), float(m["metric"]["value"])


def register(repository: ModelRepository, model: str, chosen: Candidate, report: dict[str, Any]) -> int:
    """The chosen candidate as the next version of ``model``; the model-level card carries its report."""
    art = chosen.artifact
    assert art is not None and art.path is not None and chosen.measurement is not None
    return register_artifact(
        repository, model, art.kind, art.path, chosen.measurement, card_report(report, chosen.name)
    )


__all__ = [
    "PASSES",
    "Candidate",
    "OptimizationResult",
    "check_requirements",
    "compare",
    "optimize",
    "register",
]
