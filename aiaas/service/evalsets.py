"""The rows an optimization is judged on, resolved and checked before the job is queued.

Where they come from, in order:

1. ``evaluation.file``: an uploaded file. NPZ: one array per model input (named like the input) and the target
   array; CSV/JSONL/Parquet: the feature columns and the target column, for a model with one 2-D input.
2. The version's own ``heldout.npz`` (``input:<name>`` arrays and ``target``; ``heldout.json`` may name the
   ``metric`` and ``output``): any model can ship its held-out set this way, and optimized versions keep it.
3. A training-job model: the job's validation file, read by the job's recipe exactly as the worker evaluated it
   (the served inputs, the encoded labels); calibration rows come from its training file.
4. A catalog model: its plug-in's ``heldout`` (the rows its build measured it on).

Everything is checked here, so a mistake answers 400 before any work: the arrays must match the ONNX inputs
(names, ranks, fixed dimensions), class names are mapped to the output's class indices, and the baseline model
runs on a few rows and the metric is computed on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput, ServiceUnavailable
from aiaas.jobs.jobdir import JobDir
from aiaas.optimize.artifacts import METRICS, Evaluation
from aiaas.optimize.jobspec import EvaluationRequest
from aiaas.registry.plugins import installed_catalog
from aiaas.training.files import detect_format, load_npz, load_table

TARGET_NAMES = ("label", "target", "y")
_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}
CALIBRATION_ROWS = 512


@dataclass
class EvalSet:
    inputs: dict[str, np.ndarray]
    target: np.ndarray
    metric: str
    output: str | int
    name: str
    calibration: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.target)


@dataclass
class Signature:
    """An ONNX file's inputs (name -> (ort type, shape)) and output names."""

    inputs: dict[str, tuple[str, list[Any]]]
    outputs: list[str]
    path: Path

    @classmethod
    def of(cls, path: Path) -> Signature:
        import onnxruntime as ort

        try:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # a file the runtime cannot open cannot be optimized either
            raise InvalidInput(f"{path.name} cannot be opened by onnxruntime: {e}") from None
        return cls(
            {i.name: (i.type, list(i.shape)) for i in sess.get_inputs()}, [o.name for o in sess.get_outputs()], path
        )


@dataclass
class TrainingInfo:
    """A version registered by a training job, and where that job keeps its data and checkpoints."""

    job_id: str
    job_dir: Path
    recipe: str
    hyperparameters: dict[str, Any]
    meta: dict[str, Any]
    training_file: Path
    validation_file: Path | None


# -- sources of rows ---------------------------------------------------------------------------------------
def from_file(path: Path, req: EvaluationRequest, sig: Signature, classes: list[Any] | None) -> EvalSet:
    fmt = detect_format(path)
    target_name = req.target
    if fmt == "npz":
        arrays = load_npz(path)
        target_name = target_name or next((n for n in TARGET_NAMES if n in arrays), None)
        if target_name is None or target_name not in arrays:
            raise InvalidInput(
                f"evaluation file: no target array {target_name or 'label/target/y'!r} (arrays: {', '.join(arrays)})",
                param="evaluation.target",
            )
        missing = [n for n in sig.inputs if n not in arrays]
        if missing:
            raise InvalidInput(
                f"evaluation file: no array for model input(s) {', '.join(missing)} (arrays: {', '.join(arrays)}); "
                "an NPZ holds one array per model input, named like the input, and the target",
                param="evaluation.file",
            )
        inputs = {n: arrays[n] for n in sig.inputs}
        target = arrays[target_name]
    else:
        if len(sig.inputs) != 1:
            raise InvalidInput(
                f"evaluation file: a {fmt} table feeds a model with one input; this one has {len(sig.inputs)} "
                f"({', '.join(sig.inputs)}): upload an NPZ",
                param="evaluation.file",
            )
        ((name, (_, shape)),) = sig.inputs.items()
        if len(shape) != 2:
            raise InvalidInput(
                f"evaluation file: a table feeds a 2-D input [rows, features]; input {name!r} has shape {shape}: "
                "upload an NPZ",
                param="evaluation.file",
            )
        table = load_table(path, fmt)
        target_name = target_name or next((n for n in TARGET_NAMES if n in table.columns), None)
        if target_name is None or target_name not in table.columns:
            raise InvalidInput(
                f"evaluation file: no target column {target_name or 'label/target/y'!r} (columns: "
                f"{', '.join(table.columns)}); name it with evaluation.target",
                param="evaluation.target",
            )
        features = req.features or [c for c, a in table.columns.items() if c != target_name and a.dtype != object]
        for c in features:
            if c not in table.columns:
                raise InvalidInput(f"evaluation file: no feature column {c!r}", param="evaluation.features")
            if table.columns[c].dtype == object:
                raise InvalidInput(f"evaluation file: feature column {c!r} holds text", param="evaluation.features")
        if isinstance(shape[1], int) and shape[1] != len(features):
            raise InvalidInput(
                f"evaluation file: input {name!r} takes {shape[1]} features and the table gives {len(features)} "
                f"({', '.join(features)}); list them in order with evaluation.features",
                param="evaluation.features",
            )
        inputs = {name: np.stack([table.columns[c] for c in features], axis=1)}
        target = table.columns[target_name]
    output = req.output if req.output is not None else 0
    return EvalSet(
        inputs,
        encode_target(target, classes),
        req.metric or default_metric(target, classes),
        output,
        f"file {path.name}",
    )


def from_heldout_npz(version_dir: Path, sig: Signature, req: EvaluationRequest) -> EvalSet | None:
    path = version_dir / "heldout.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=True) as z:
        inputs = {k.removeprefix("input:"): z[k] for k in z.files if k.startswith("input:")}
        target = z["target"] if "target" in z.files else None
    if target is None:
        raise InvalidInput(f"{path.name} of this version has no 'target' array", param="evaluation")
    meta: dict[str, Any] = {}
    if (version_dir / "heldout.json").is_file():
        meta = json.loads((version_dir / "heldout.json").read_text())
    out = req.output if req.output is not None else meta.get("output", 0)
    return EvalSet(
        inputs,
        target,
        req.metric or meta.get("metric") or default_metric(target, None),
        out,
        meta.get("name") or "the version's heldout.npz",
    )


def from_training_job(info: TrainingInfo, req: EvaluationRequest) -> EvalSet:
    """The job's validation rows through its recipe: the served inputs, the labels as class indices."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise ServiceUnavailable(
            f"reading the validation rows of training job {info.job_id} needs torch on the server "
            "(pip install 'aiaas[train]'); or pass evaluation.file"
        )
    from aiaas.training.recipes import get_recipe

    if info.validation_file is None:
        raise InvalidInput(
            f"the model's training job {info.job_id} had no validation file, so the model has no held-out set: "
            "upload one (aiaas files upload eval.csv) and pass evaluation.file",
            param="evaluation.file",
        )
    recipe = get_recipe(info.recipe, info.hyperparameters)
    meta = info.meta
    recipe.build_model(meta)  # recipes that depend on meta (classification vs regression) configure themselves
    pair = recipe.parity_inputs(info.validation_file, meta, 1 << 40)
    if pair is None:
        raise InvalidInput(
            f"recipe {info.recipe!r} cannot replay its validation rows as served inputs here; pass evaluation.file",
            param="evaluation.file",
        )
    feed = pair[0]
    target = recipe.tensors(info.validation_file, meta)[-1].numpy()
    classification = "classes" in meta
    if not classification and "y_mean" in meta:  # tabular regression trains on a standardized target
        target = target * float(meta["y_std"]) + float(meta["y_mean"])
    calibration = None
    cal = recipe.parity_inputs(info.training_file, meta, CALIBRATION_ROWS)
    if cal is not None:
        calibration = cal[0]
    metric = req.metric or ("accuracy" if classification else "rmse")
    output: str | int = req.output if req.output is not None else ("probabilities" if classification else 0)
    return EvalSet(feed, target, metric, output, f"validation file of training job {info.job_id}", calibration)


def from_catalog(name: str, req: EvaluationRequest) -> EvalSet | None:
    try:
        h = installed_catalog().heldout(name)
    except ImportError as e:
        raise InvalidInput(
            f"the held-out set of catalog model {name!r} needs {e.name}, which is not installed here"
        ) from None
    if h is None:
        return None
    out = req.output if req.output is not None else h.output
    return EvalSet(h.inputs, h.target, req.metric or h.metric, out, h.name, h.calibration)


# -- checks --------------------------------------------------------------------------------------------------
def default_metric(target: np.ndarray, classes: list[Any] | None) -> str:
    if classes or target.dtype == object or target.dtype.kind in "biuU":
        return "accuracy"
    return "rmse"


def encode_target(target: np.ndarray, classes: list[Any] | None) -> np.ndarray:
    """Class names (or labels) -> class indices when the model's classes are known and every value is one."""
    if not classes:
        return target
    index = {str(c): i for i, c in enumerate(classes)}
    keys = [
        str(int(v)) if isinstance(v, float | np.floating) and float(v).is_integer() else str(v) for v in target.tolist()
    ]
    if all(k in index for k in keys):
        return np.asarray([index[k] for k in keys], dtype=np.int64)
    return target


def finish(ev: EvalSet, sig: Signature, req: EvaluationRequest, calibration: EvalSet | None = None) -> Evaluation:
    """Cast to the model's input types, cut to ``rows``, check against the ONNX file; 400 naming what is wrong."""
    if ev.metric not in METRICS:
        raise InvalidInput(f"unknown metric {ev.metric!r}; use one of {', '.join(METRICS)}", param="evaluation.metric")
    if isinstance(ev.output, str) and ev.output not in sig.outputs:
        raise InvalidInput(
            f"the model has no output {ev.output!r} (outputs: {', '.join(sig.outputs)})", param="evaluation.output"
        )
    if isinstance(ev.output, int) and not 0 <= ev.output < len(sig.outputs):
        raise InvalidInput(
            f"output index {ev.output} is out of range: the model has {len(sig.outputs)} output(s)",
            param="evaluation.output",
        )
    n = len(ev.target)
    rows = min(n, req.rows) if req.rows else n
    if rows < 2:
        raise InvalidInput("the evaluation set has fewer than 2 rows", param="evaluation")
    inputs = _cast(ev.inputs, sig, n, "evaluation")
    inputs = {k: v[:rows] for k, v in inputs.items()}
    cal = calibration.inputs if calibration is not None else ev.calibration
    cal_inputs = _cast(cal, sig, None, "calibration") if cal is not None else None
    evaluation = Evaluation(
        inputs, ev.target[:rows], metric=ev.metric, output=ev.output, calibration=cal_inputs, name=ev.name
    )
    _smoke(evaluation, sig)
    return evaluation


def _cast(arrays: dict[str, np.ndarray], sig: Signature, n: int | None, what: str) -> dict[str, np.ndarray]:
    out = {}
    for name, (ort_type, shape) in sig.inputs.items():
        if name not in arrays:
            raise InvalidInput(
                f"the {what} rows have no input {name!r} (they have {', '.join(arrays)})", param="evaluation"
            )
        a = np.asarray(arrays[name])
        want = _ORT_DTYPES.get(ort_type)
        if want is not None and a.dtype != want:
            if a.dtype == object or (
                a.dtype.kind == "f" and np.dtype(want).kind in "iu" and not np.all(np.mod(a, 1) == 0)
            ):
                raise InvalidInput(
                    f"{what} input {name!r}: {a.dtype} values cannot feed a {ort_type} input", param="evaluation"
                )
            a = a.astype(want)
        if a.ndim != len(shape):
            raise InvalidInput(
                f"{what} input {name!r} has shape {list(a.shape)}; the model takes {shape}", param="evaluation"
            )
        for axis, (have, need) in enumerate(zip(a.shape, shape, strict=True)):
            if axis > 0 and isinstance(need, int) and need > 0 and have != need:
                raise InvalidInput(
                    f"{what} input {name!r} has shape {list(a.shape)}; the model takes {shape}", param="evaluation"
                )
        if n is not None and len(a) != n:
            raise InvalidInput(f"{what} input {name!r} has {len(a)} rows and the target {n}", param="evaluation")
        out[name] = np.ascontiguousarray(a)
    return out


def _smoke(evaluation: Evaluation, sig: Signature) -> None:
    """Run the baseline on a few rows and score them: a wrong feed or metric fails now, not after an hour."""
    import onnxruntime as ort

    k = min(8, len(evaluation))
    sess = ort.InferenceSession(str(sig.path), providers=["CPUExecutionProvider"])
    try:
        outs = sess.run(None, {n: v[:k] for n, v in evaluation.inputs.items()})
    except Exception as e:  # onnxruntime names the input and the problem
        raise InvalidInput(f"the model cannot run on the evaluation rows: {str(e)[:400]}", param="evaluation") from None
    idx = evaluation.output if isinstance(evaluation.output, int) else sig.outputs.index(evaluation.output)
    probe = Evaluation({}, evaluation.target[:k], metric=evaluation.metric, output=idx)
    try:
        value = probe.score(np.asarray(outs[idx]))
    except Exception as e:  # shapes or types that the metric cannot compare
        raise InvalidInput(
            f"metric {evaluation.metric!r} cannot compare output {sig.outputs[idx]!r} (shape "
            f"{list(np.shape(outs[idx]))}) "
            f"with the target (shape {list(evaluation.target.shape)}): {e}",
            param="evaluation",
        ) from None
    if not np.isfinite(value):
        raise InvalidInput(f"metric {evaluation.metric!r} is not finite on the evaluation rows", param="evaluation")


def training_info(version_dir: Path, job_dir_of: Any, max_depth: int = 5) -> TrainingInfo | None:
    """The training job behind a version: its ``training.json``, or -- for an optimized version -- the version
    its ``optimization.json`` was made from. ``job_dir_of(job_id)`` answers the job's directory or None."""
    for _ in range(max_depth):
        card_path = version_dir / "training.json"
        if card_path.is_file():
            doc = json.loads(card_path.read_text())
            job_id = (doc.get("card") or {}).get("extra", {}).get("training_job")
            job_dir = job_dir_of(job_id) if job_id else None
            if job_dir is None:
                return None
            jd = JobDir(Path(job_dir))
            spec = json.loads(jd.spec.read_text())
            result = json.loads(jd.result.read_text()) if jd.result.is_file() else {}
            val = spec.get("validation_file")
            return TrainingInfo(
                job_id,
                jd.root,
                spec["recipe"],
                spec.get("hyperparameters") or {},
                result.get("meta") or doc.get("meta") or {},
                jd.root / spec["training_file"],
                jd.root / val if val else None,
            )
        opt = version_dir / "optimization.json"
        if not opt.is_file():
            return None
        source_version = (json.loads(opt.read_text()).get("source") or {}).get("version")
        if not isinstance(source_version, int):
            return None
        version_dir = version_dir.parent / str(source_version)
    return None
