"""Registering an optimized artifact: the next version of a model, with its report in ``optimization.json`` and
in the model card (``card.extra.optimization``).

Used by the pipeline (``aiaas.optimize.pipeline.register``) and by the server when an optimization job's accepted
candidate becomes a version (``aiaas.optimize.jobkind.register_result``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import config_from_onnx
from aiaas.types.model_config import ModelCard, ModelConfig


def card_report(report: dict[str, Any], chosen: str) -> dict[str, Any]:
    """The report for the model card: the chosen candidate in full, the others as one-line summaries."""
    out = {k: v for k, v in report.items() if k != "candidates"}
    out["candidates"] = []
    for c in report["candidates"]:
        if c["name"] == chosen:
            out["candidates"].append(c)
        else:
            m = c.get("measurement") or {}
            out["candidates"].append(
                {
                    "name": c["name"],
                    "decision": c["decision"],
                    "metric": m.get("metric"),
                    "size_bytes": m.get("size_bytes"),
                }
            )
    return out


def register_artifact(
    repository: ModelRepository,
    model: str,
    kind: str,
    path: Path,
    measurement: dict[str, Any],
    summary: dict[str, Any],
    *,
    companions: dict[str, Path] | None = None,
    onnx_name: str = "model.onnx",
    base_config: ModelConfig | None = None,
    owner: str | None = None,
) -> int:
    """Add an optimized artifact as the next version of ``model`` with ``summary`` (the card report) in
    ``optimization.json`` and in the model card.

    ``companions`` are the other files of the source version, copied alongside (a python-backend model that
    runs an ONNX file among its own files gets the optimized file under ``onnx_name`` and keeps the rest).
    The config is the model's own, else ``base_config`` (a new model made from another one, owned by
    ``owner``), else one read from the artifact.
    """
    current = repository.read(model).config if repository.exists(model) else None
    with tempfile.TemporaryDirectory(dir=repository.root) as tmp:
        report_path = Path(tmp) / "optimization.json"
        report_path.write_text(json.dumps(summary, indent=1, default=str))
        files = {n: p for n, p in (companions or {}).items() if n not in (onnx_name, "optimization.json")}
        if kind == "tvm":
            from aiaas.runtime.tvm import sidecar_path

            files.update({"model.so": path, "tvm.json": sidecar_path(path), "optimization.json": report_path})
        else:
            files.update({onnx_name: path, "optimization.json": report_path})
        version = repository.add_version(model, files)
    if current is not None:
        base = current.model_dump(exclude={"name"})
    elif base_config is not None:
        base = base_config.model_dump(exclude={"name"}) | {"owner": owner}
    elif kind == "onnx":
        base = config_from_onnx(path).model_dump(exclude={"name"}) | {"owner": owner}
    else:  # tvm: the signature from the compiled library's tvm.json, batching where the batch axis is dynamic
        from aiaas.runtime.tvm import config_from_sidecar, sidecar_path

        base = config_from_sidecar(sidecar_path(path)).model_dump(exclude={"name"}) | {"owner": owner}
    card = ModelCard.model_validate(base.get("card") or {})
    metric = measurement["metric"]
    card = card.model_copy(
        update={
            "metrics": {**card.metrics, metric["name"]: metric["value"]},
            "extra": {**card.extra, "optimization": {**summary, "version": version}},
        }
    )
    base["card"] = card.model_dump()
    repository.write_config(model, ModelConfig.model_validate(base))
    return version


__all__ = ["card_report", "register_artifact"]
