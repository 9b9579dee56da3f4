"""The process an optimization job runs: ``python -m aiaas.optimize.worker --spec JOB_DIR/spec.json``.

The job scheduler launches it instead of torchrun (``aiaas.optimize.jobkind.OptimizationKind.command``) and treats it
like a training job: it writes progress and messages to ``events.jsonl`` (the launcher pumps them into the
database: state, sub-status, progress, paging), an error that no retry can fix to ``errors/rank0.json`` with
``fatal: true``, and ``result.json`` last. It registers nothing: the accepted candidate is copied to
``export/`` and the server registers it (``aiaas.optimize.jobkind.register_result``), the same way a
training job's ONNX becomes a version -- so the repository is written by one process and the new version
loads at once.

Fine-tuning (``prune`` with ``fine_tune_epochs``) and ``distill`` train with the training recipe of the model's
training job -- its data loader, its loss, its optimizer's weight decay -- inside this process, which the
scheduler has already counted against the training cores; see ``recipe_fine_tune``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.jobs.events import EventWriter
from aiaas.jobs.jobdir import JobDir, die_with_parent, write_json_atomic
from aiaas.jobs.runner import DEADLINE_ENV
from aiaas.optimize.artifacts import (
    Criterion,
    Evaluation,
    FineTune,
    LossFn,
    OnnxSource,
    Progress,
    Source,
    TorchSource,
    TrainOptions,
    TrainSet,
    Workload,
)
from aiaas.optimize.jobspec import EvaluationData, OptimizationSpec, SourceInfo, TrainingSource, needs_torch

if TYPE_CHECKING:
    from torch import nn

    from aiaas.optimize.pipeline import OptimizationResult

log = logging.getLogger("aiaas.optimize.worker")
EMIT_EVERY_S = 0.5  # progress events at most this often (and on every new message)
WORK = "work"  # scratch directory of the passes, inside the job directory


def load_npz(path: Path) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """``input:<name>`` arrays (the model's feed) and ``target`` from an evaluation / calibration NPZ."""
    with np.load(path, allow_pickle=True) as z:
        inputs = {k.removeprefix("input:"): z[k] for k in z.files if k.startswith("input:")}
        target = z["target"] if "target" in z.files else None
    return inputs, target


def save_npz(path: Path, inputs: dict[str, np.ndarray], target: np.ndarray | None = None) -> None:
    arrays = {f"input:{k}": v for k, v in inputs.items()}
    if target is not None:
        arrays["target"] = target
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def workload_of(spec: OptimizationSpec) -> Workload:
    w = spec.workload
    sizes = w.batch_sizes or [1, 32]  # the server fills them in from the model's max_batch_size
    return Workload(
        batch_size=max(sizes),
        threads=w.threads,
        concurrency=w.concurrency,
        target=w.target,
        iterations=w.iterations,
        max_seconds=w.max_seconds,
        throughput_seconds=w.throughput_seconds,
        warmup=w.warmup,
        extra_batch_sizes=tuple(b for b in sizes if b != max(sizes)),
    )


class Reporter:
    """optimize()'s progress callback -> events: ``metrics`` events carry the fraction done (the progress bar),
    ``message`` events the steps a user reads (each candidate's passes, its decision)."""

    def __init__(self, events: EventWriter) -> None:
        self.events = events
        self.last_message = ""
        self.last_emit = 0.0
        self.fraction = 0.0

    @staticmethod
    def phase(fraction: float, message: str) -> str:
        if message.startswith("epoch ") or message.startswith("fine-tuning"):
            return "fine-tuning"
        if fraction < 0.1 or message.startswith("baseline"):
            return "baseline"
        return "measuring" if message.endswith(": measuring") else "optimizing"

    def __call__(self, fraction: float, message: str) -> None:
        self.fraction = max(self.fraction, fraction)
        now = time.monotonic()
        new = message != self.last_message
        if not new and now - self.last_emit < EMIT_EVERY_S:
            return
        phase = self.phase(fraction, message)
        if new and phase != "fine-tuning":
            self.events.emit(message, phase=phase)
        self.events.emit(
            f"{self.fraction:.0%} {message}",
            type="metrics",
            phase=phase,
            fraction=round(self.fraction, 4),
            step=round(self.fraction * 1000),
            total_steps=1000,
            detail=message,
        )
        self.last_message, self.last_emit = message, now


# -- sources -------------------------------------------------------------------------------------------
def torch_source(t: TrainingSource, model: str, version: int) -> TorchSource:
    """The network of a training job's final checkpoint, with what its recipe knows: the served wrapper
    (standardization, softmax head), the training rows, the loss, and a smaller student of the same family."""
    import torch

    from aiaas.optimize.torch_passes import recipe_student
    from aiaas.training.recipes import get_recipe

    state = torch.load(t.checkpoint, map_location="cpu", weights_only=False)
    meta = state["meta"]
    recipe = get_recipe(t.recipe, t.hyperparameters)
    net = recipe.build_model(meta)
    net.load_state_dict(state["model"])
    net.eval()
    data = recipe.tensors(Path(t.training_file), meta)

    def wrap(n: nn.Module) -> nn.Module:
        return recipe.export_module(n, meta)

    def loss(output: torch.Tensor, targets: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return recipe.loss(output, targets[0])

    return TorchSource(
        net=net,
        example_inputs=tuple(recipe.example_inputs(meta)),
        input_names=list(recipe.input_names),
        output_names=list(recipe.output_names),
        wrap=wrap,
        train=TrainSet(tuple(data[:-1]), (data[-1],)),
        loss=loss,
        student=recipe_student(t.recipe, t.hyperparameters, meta),
        recipe=t.recipe,
        hyperparameters=recipe.params.model_dump(),
        model=model,
        version=version,
    )


def recipe_fine_tune(weight_decay: float, events: EventWriter, deadline: float) -> FineTune:
    """Fine-tuning the way the training service trains the recipe: AdamW with the recipe's weight decay over
    shuffled minibatches, metrics events (step, loss, samples/s, ETA) like a training job's, and the job's
    ``max_runtime_s`` deadline. One process: the networks pruning and distillation see here are the recipes'
    small ones, and the job already holds its cores in the training scheduler."""

    def tune(model: nn.Module, data: TrainSet, loss: LossFn, options: TrainOptions, progress: Progress) -> None:
        import torch

        gen = torch.Generator().manual_seed(options.seed)
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=options.learning_rate, weight_decay=weight_decay
        )
        n = len(data)
        steps = max(1, math.ceil(n / options.batch_size))
        total, step, t0 = options.epochs * steps, 0, time.perf_counter()
        model.train()
        for epoch in range(options.epochs):
            perm = torch.randperm(n, generator=gen)
            running = 0.0
            for s in range(steps):
                if time.time() > deadline:
                    raise InvalidInput(
                        "the optimization ran past max_runtime_s while fine-tuning; raise it or lower epochs"
                    )
                idx = perm[s * options.batch_size : (s + 1) * options.batch_size]
                value = loss(model(*(t[idx] for t in data.inputs)), tuple(t[idx] for t in data.targets))
                opt.zero_grad()
                value.backward()
                opt.step()
                running += float(value.detach())
                step += 1
            elapsed = time.perf_counter() - t0
            events.emit(
                f"fine-tuning epoch {epoch + 1}/{options.epochs}",
                type="metrics",
                phase="fine-tuning",
                step=step,
                total_steps=total,
                epoch=epoch,
                loss=round(running / steps, 6),
                samples_per_s=round(step * options.batch_size / max(elapsed, 1e-9), 1),
                eta_s=round((total - step) * elapsed / max(step, 1), 1),
            )
            progress((epoch + 1) / options.epochs, f"epoch {epoch + 1}/{options.epochs}: loss {running / steps:.4f}")
        model.eval()

    return tune


# -- the run -------------------------------------------------------------------------------------------
def run(spec_path: Path) -> None:
    jd = JobDir(spec_path.parent)
    spec = OptimizationSpec.model_validate_json(spec_path.read_text())
    src, data = spec.source, spec.data
    if src is None or data is None:
        raise InvalidInput("spec.json has no source/data: the server prepares them before the job runs")
    events = EventWriter(jd.events)
    deadline = float(os.environ.get(DEADLINE_ENV, "inf"))
    work = jd.root / WORK
    for stale in (work, jd.export):  # a job the server restarted runs again from the start
        shutil.rmtree(stale, ignore_errors=True)
    jd.result.unlink(missing_ok=True)
    evaluation = load_evaluation(jd.root, data)
    criterion = Criterion(spec.criterion.max_relative_loss, spec.criterion.min_speedup)
    workload = workload_of(spec)
    reporter = Reporter(events)
    events.emit(
        f"{spec.label} {spec.model} version {src.version} on {data.rows} rows of {data.name} ({data.metric}); "
        f"batch sizes {sorted({1, workload.batch_size, *workload.extra_batch_sizes})}, {workload.threads} thread(s)",
        phase="baseline",
    )
    if spec.compare_version is not None:
        result = _compare(jd, spec, src, evaluation, criterion, workload, reporter)
    else:
        result = _optimize(jd, spec, src, evaluation, criterion, workload, reporter, events, deadline)
    out: dict[str, Any] = {
        "accepted": result.accepted,
        "reason": result.reason,
        "chosen": result.chosen,
        "report": result.report,
        "mode": spec.label,
    }
    if spec.compare_version is None:
        out.update(_export_chosen(jd, result, src.register_into))
    shutil.rmtree(work, ignore_errors=True)
    write_json_atomic(jd.result, out)
    if spec.compare_version is None and result.accepted:
        events.emit(f"chose {result.chosen}", phase="measuring")


def load_evaluation(root: Path, data: EvaluationData) -> Evaluation:
    """The evaluation rows (and calibration rows, if any) the server copied into the job directory."""
    inputs, target = load_npz(root / data.file)
    if target is None:
        raise InvalidInput(f"{data.file} has no 'target' array")
    calibration = load_npz(root / data.calibration)[0] if data.calibration else None
    return Evaluation(inputs, target, metric=data.metric, output=data.output, calibration=calibration, name=data.name)


def _compare(
    jd: JobDir,
    spec: OptimizationSpec,
    src: SourceInfo,
    evaluation: Evaluation,
    criterion: Criterion,
    workload: Workload,
    reporter: Reporter,
) -> OptimizationResult:
    """Two versions of the model measured against each other (``compare_version``)."""
    from aiaas.optimize.pipeline import compare

    assert src.compare_onnx is not None and spec.compare_version is not None
    return compare(
        OnnxSource(jd.root / src.onnx, model=spec.model, version=src.version),
        OnnxSource(jd.root / src.compare_onnx, model=spec.model, version=spec.compare_version),
        evaluation,
        criterion,
        workload,
        reporter,
    )


def _optimize(
    jd: JobDir,
    spec: OptimizationSpec,
    src: SourceInfo,
    evaluation: Evaluation,
    criterion: Criterion,
    workload: Workload,
    reporter: Reporter,
    events: EventWriter,
    deadline: float,
) -> OptimizationResult:
    """The candidate pass lists run on the source: the training checkpoint for torch passes, else the ONNX file."""
    from aiaas.optimize.pipeline import optimize

    source: Source
    fine_tune: FineTune | None = None
    export: dict[str, Any] | None = None
    if needs_torch(spec):
        if src.training is None:
            raise InvalidInput("torch passes need the model's training checkpoint")
        import torch

        torch.set_num_threads(workload.threads)
        source = torch_source(src.training, spec.model, src.version)
        from aiaas.training.recipes import get_recipe

        decay = float(
            getattr(get_recipe(src.training.recipe, src.training.hyperparameters).params, "weight_decay", 0.0)
        )
        fine_tune = recipe_fine_tune(decay, events, deadline)
        export = {"exporter": "torchscript"}  # the training service's exporter: baseline = the served graph
    else:
        source = OnnxSource(jd.root / src.onnx, model=spec.model, version=src.version)
    return optimize(
        source,
        spec.candidate_lists(),  # type: ignore[arg-type]
        evaluation,
        criterion,
        workload,
        reporter,
        model=spec.model,
        fine_tune=fine_tune,
        workdir=jd.root / WORK,
        export=export,
    )


def _export_chosen(jd: JobDir, result: OptimizationResult, register_into: str) -> dict[str, Any]:
    """The accepted candidate copied to ``export/`` for the server to register; the result fields naming it
    (none when nothing was accepted)."""
    chosen = next((c for c in result.candidates if c.name == result.chosen), None)
    if chosen is None or chosen.artifact is None:
        return {}
    art = chosen.artifact
    assert art.path is not None
    jd.export.mkdir(parents=True, exist_ok=True)
    name = "model.so" if art.kind == "tvm" else "model.onnx"
    shutil.copy2(art.path, jd.export / name)
    if art.kind == "tvm":
        from aiaas.runtime.tvm import sidecar_path

        shutil.copy2(sidecar_path(art.path), jd.export / "tvm.json")
    return {"artifact": {"kind": art.kind, "file": f"export/{name}"}, "registered_model": register_into}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aiaas.optimize.worker")
    ap.add_argument("--spec", required=True, type=Path)
    args = ap.parse_args(argv)
    die_with_parent()
    spec_path = args.spec.resolve()
    jd = JobDir(spec_path.parent)
    (jd.errors / "rank0.json").unlink(missing_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr, force=True
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run(spec_path)
    except SystemExit:
        raise
    except BaseException as e:
        log.exception("optimization failed")
        # every error is fatal here (an optimization is not retried): the launcher fails the job with it
        jd.write_error(0, 0, e, fatal=True, message=getattr(e, "message", None) or f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
