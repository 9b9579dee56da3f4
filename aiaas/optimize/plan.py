"""Pass names, their options, and the order check that runs before any work.

The user's order is kept; ``plan`` only refuses orders that cannot work and says why. The model moves through
three stages -- a torch network, an ONNX graph, a compiled TVM library -- and a pass can only run in its own
stage: ``prune`` and ``distill`` need float torch weights, ``graph``/``quantize-*``/``fp16`` rewrite ONNX,
``tvm`` compiles ONNX into a library nothing else can read (so it is last). Precision changes do not stack
(int8 after fp16, static after dynamic quantization): ORT's quantizers expect an fp32 graph.

A torch source with no ``export-onnx`` in the list gets one after its torch passes (marked ``implicit``): the
candidate must be an ONNX (or TVM) artifact to be measured and served.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Literal

from aiaas.errors import InvalidInput
from aiaas.runtime.tvm import TVM_INSTALL

Stage = Literal["torch", "export", "onnx", "tvm"]


@dataclass(frozen=True)
class PassInfo:
    name: str
    stage: Stage
    options: dict[str, Any]  # option -> default
    precision: bool = False  # changes the numeric type of the weights (at most one per plan)
    help: str = ""


PASSES: dict[str, PassInfo] = {
    p.name: p
    for p in (
        PassInfo(
            "export-onnx",
            "export",
            {"exporter": "auto", "opset": 17, "check_rows": 4},
            help="torch -> ONNX with a dynamic batch axis (dynamo exporter, TorchScript fallback)",
        ),
        PassInfo(
            "graph",
            "onnx",
            {"level": "extended", "transformer": "auto", "num_heads": 0, "hidden_size": 0},
            help="onnxruntime offline graph optimization; BERT-style fusions for transformer encoders",
        ),
        PassInfo(
            "quantize-dynamic",
            "onnx",
            {
                "per_channel": False,
                "weight_type": "qint8",
                "reduce_range": "auto",
                "op_types": None,
                "preprocess": True,
            },
            precision=True,
            help="int8 weights, activations quantized at run time",
        ),
        PassInfo(
            "quantize-static",
            "onnx",
            {
                "method": "minmax",
                "per_channel": False,
                "reduce_range": "auto",
                "activation_type": "quint8",
                "weight_type": "qint8",
                "calibration_rows": 256,
                "calibration_batch": 16,
                "op_types": None,
                "preprocess": True,
            },
            precision=True,
            help="QDQ int8 weights and activations, calibrated on a calibration set",
        ),
        PassInfo(
            "fp16",
            "onnx",
            {"force": False, "keep_io_types": True},
            precision=True,
            help="float16 weights and compute (GPU targets)",
        ),
        PassInfo(
            "prune",
            "torch",
            {
                "amount": 0.5,
                "method": "unstructured",
                "scope": "global",
                "norm": 1,
                "fine_tune_epochs": 0,
                "learning_rate": 1e-3,
                "batch_size": 64,
            },
            help="magnitude pruning (unstructured weights or structured channels/neurons) + fine-tuning",
        ),
        PassInfo(
            "distill",
            "torch",
            {
                "width": 0.5,
                "depth": 1.0,
                "temperature": 4.0,
                "alpha": 0.7,
                "epochs": 3,
                "learning_rate": 1e-3,
                "batch_size": 64,
            },
            help="train a smaller student on the teacher's soft labels (KL at a temperature + hard-label CE)",
        ),
        PassInfo(
            "tvm",
            "tvm",
            {"target": None, "mcpu": None, "opt_level": 3},
            help="compile with apache-tvm (relax ONNX frontend, llvm target); optional",
        ),
    )
}

_ENUMS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("export-onnx", "exporter"): ("auto", "dynamo", "torchscript"),
    ("graph", "level"): ("basic", "extended", "all"),
    ("graph", "transformer"): ("auto", "bert", "none"),
    ("quantize-dynamic", "weight_type"): ("qint8", "quint8"),
    ("quantize-dynamic", "reduce_range"): ("auto", True, False),
    ("quantize-static", "method"): ("minmax", "entropy", "percentile"),
    ("quantize-static", "reduce_range"): ("auto", True, False),
    ("quantize-static", "activation_type"): ("quint8", "qint8"),
    ("quantize-static", "weight_type"): ("qint8", "quint8"),
    ("prune", "method"): ("unstructured", "structured"),
    ("prune", "scope"): ("global", "layer"),
}


@dataclass
class PassSpec:
    name: str
    options: dict[str, Any] = field(default_factory=dict)  # defaults filled in
    implicit: bool = False  # added by plan (export-onnx for a torch source), not asked for

    @property
    def info(self) -> PassInfo:
        return PASSES[self.name]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "options": self.options}
        if self.implicit:
            out["implicit"] = True
        return out


def parse_pass(item: str | dict[str, Any] | PassSpec) -> PassSpec:
    """``"quantize-dynamic"``, ``{"name": "prune", "amount": 0.5}`` or ``{"name": ..., "options": {...}}``."""
    if isinstance(item, PassSpec):
        name, given = item.name, dict(item.options)
    elif isinstance(item, str):
        name, given = item.strip(), {}
    elif isinstance(item, dict):
        if "name" not in item:
            raise InvalidInput(f"pass {item!r} has no 'name'", param="passes")
        name = str(item["name"])
        given = dict(item.get("options") or {})
        given.update({k: v for k, v in item.items() if k not in ("name", "options")})
    else:
        raise InvalidInput(f"a pass is a name or an object with 'name', not {type(item).__name__}", param="passes")
    info = PASSES.get(name)
    if info is None:
        raise InvalidInput(f"unknown pass {name!r}; passes: {', '.join(PASSES)}", param="passes")
    unknown = sorted(set(given) - set(info.options))
    if unknown:
        raise InvalidInput(
            f"pass {name!r}: unknown option(s) {', '.join(unknown)}; options: {', '.join(info.options)}",
            param="passes",
        )
    for key, value in given.items():
        allowed = _ENUMS.get((name, key))
        if allowed is not None and value not in allowed:
            raise InvalidInput(
                f"pass {name!r}: {key} must be one of {', '.join(map(str, allowed))}, not {value!r}",
                param="passes",
            )
    _check_ranges(name, given)
    return PassSpec(name, {**info.options, **given})


def _check_ranges(name: str, o: dict[str, Any]) -> None:
    def bad(msg: str) -> InvalidInput:
        return InvalidInput(f"pass {name!r}: {msg}", param="passes")

    if name == "prune" and "amount" in o and not (0 < float(o["amount"]) < 1):
        raise bad(f"amount is the fraction of weights to remove, in (0, 1), not {o['amount']}")
    if name == "distill":
        for key in ("width", "depth"):
            if key in o and not (0 < float(o[key]) <= 1):
                raise bad(f"{key} is a shrink factor in (0, 1], not {o[key]}")
        if "temperature" in o and float(o["temperature"]) <= 0:
            raise bad("temperature must be > 0")
        if "alpha" in o and not (0 <= float(o["alpha"]) <= 1):
            raise bad("alpha (weight of the soft-label loss) must be in [0, 1]")


def plan(
    passes: list[str | dict[str, Any] | PassSpec] | str,
    source: Literal["onnx", "torch"] = "onnx",
    target: Literal["cpu", "gpu"] = "cpu",
    export: dict[str, Any] | None = None,
) -> list[PassSpec]:
    """Validate the user's pass order for a source kind and target; returns the passes with defaults filled.
    ``export``: options of the implicit ``export-onnx`` (e.g. the exporter the source's served model used).

    Raises InvalidInput naming the first problem, before anything runs.
    """
    if isinstance(passes, str):
        passes = [p for p in passes.split(",") if p.strip()]
    if not passes:
        raise InvalidInput("no passes given; passes: " + ", ".join(PASSES), param="passes")
    specs = [parse_pass(p) for p in passes]
    _check_order(specs)
    if source == "onnx":
        _check_onnx_source([s.name for s in specs])
    else:
        _check_torch_source(specs)
        if "export-onnx" not in [s.name for s in specs]:
            _insert_export(specs, export)
    _check_target(specs, target)
    return specs


def _check_order(specs: list[PassSpec]) -> None:
    """Each pass once, one precision change, ``tvm`` last."""
    names = [s.name for s in specs]
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise InvalidInput(f"pass {s.name!r} appears twice; give it once with the options you want", param="passes")
        seen.add(s.name)

    precision = [s.name for s in specs if s.info.precision]
    if len(precision) > 1:
        raise InvalidInput(
            f"{precision[1]!r} after {precision[0]!r}: only one precision change per candidate (onnxruntime's "
            "quantizers and the fp16 converter expect an fp32 graph); try them as separate candidates",
            param="passes",
        )

    if "tvm" in names and names[-1] != "tvm":
        raise InvalidInput(
            "'tvm' must be the last pass (it compiles the graph into a library no other pass can read); it is "
            f"followed by {names[names.index('tvm') + 1]!r}",
            param="passes",
        )


def _check_onnx_source(names: list[str]) -> None:
    """An ONNX source: no export, no torch-level pass."""
    if "export-onnx" in names:
        raise InvalidInput("'export-onnx' needs a torch source; this model is already ONNX", param="passes")
    torch_passes = [n for n in names if PASSES[n].stage == "torch"]
    if torch_passes:
        raise InvalidInput(
            f"{torch_passes[0]!r} works on the torch network and this source is an ONNX file; run it on the "
            "model's torch checkpoint (a training-job model) instead",
            param="passes",
        )


def _check_torch_source(specs: list[PassSpec]) -> None:
    """A torch source with an explicit ``export-onnx``: torch passes before it, ONNX passes after it."""
    names = [s.name for s in specs]
    export_at = names.index("export-onnx") if "export-onnx" in names else None
    for i, s in enumerate(specs):
        stage = s.info.stage
        if stage == "torch" and export_at is not None and i > export_at:
            after = [n for n in names[:i] if PASSES[n].stage in ("onnx", "tvm")]
            what = f"after {after[-1]!r}" if after else "after 'export-onnx'"
            raise InvalidInput(
                f"{s.name!r} {what}: {s.name} needs the float torch network, which is gone once the model is "
                f"exported{' and quantized' if any(PASSES[n].precision for n in after) else ''}; put {s.name!r} "
                "before 'export-onnx'",
                param="passes",
            )
        if stage in ("onnx", "tvm") and export_at is not None and i < export_at:
            raise InvalidInput(
                f"{s.name!r} before 'export-onnx': the source is a torch network; 'export-onnx' must come "
                f"before every ONNX pass ({', '.join(n for n in names if PASSES[n].stage in ('onnx', 'tvm'))})",
                param="passes",
            )


def _insert_export(specs: list[PassSpec], export: dict[str, Any] | None) -> None:
    """A torch source without ``export-onnx``: add it implicitly before the first ONNX pass (in place)."""
    first_onnx = next((i for i, s in enumerate(specs) if s.info.stage in ("onnx", "tvm")), len(specs))
    if any(s.info.stage == "torch" for s in specs[first_onnx:]):
        bad = next(s.name for s in specs[first_onnx:] if s.info.stage == "torch")
        raise InvalidInput(
            f"{bad!r} after {specs[first_onnx].name!r}: {bad} needs the float torch network; put it first",
            param="passes",
        )
    specs.insert(
        first_onnx,
        PassSpec("export-onnx", parse_pass({"name": "export-onnx", **(export or {})}).options, implicit=True),
    )


def _check_target(specs: list[PassSpec], target: Literal["cpu", "gpu"]) -> None:
    """What the target machine can run: fp16 only on GPU (unless forced), tvm only when installed."""
    for s in specs:
        if s.name == "fp16" and target == "cpu" and not s.options.get("force"):
            raise InvalidInput(
                "'fp16' is for GPU targets: on CPU onnxruntime runs most float16 ops by casting back to float32, "
                "so the model gets slower; pass fp16 with force=true to try it anyway",
                param="passes",
            )
        if s.name == "tvm" and importlib.util.find_spec("tvm") is None:
            raise InvalidInput(
                f"pass 'tvm' needs apache-tvm, which is not installed here: {TVM_INSTALL}", param="passes"
            )


def describe(specs: list[PassSpec]) -> str:
    return "+".join(s.name for s in specs if not s.implicit) or "baseline"
