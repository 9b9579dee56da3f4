"""Turn a finished job into a served model version.

The exported ONNX becomes the next version of the target model; ``model.yaml`` gets the job's tensor specs and
a card (data hash, hyperparameters, metrics, job id), and the same card is kept per version in
``<version>/training.json`` so older versions keep their history when the model-level card moves on. The version
directory is written before the config, so a repository poll never sees a config without its artifact.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from aiaas.errors import Conflict, InvalidInput, PermissionDenied
from aiaas.registry import ModelRepository
from aiaas.types.model_config import ModelCard, ModelConfig, TensorSpec

DEFAULT_MAX_BATCH = 64


def build_card(job_id: str, result: dict[str, Any]) -> ModelCard:
    meta = result.get("meta", {})
    extra = {
        "training_job": job_id,
        "recipe": result.get("recipe"),
        "data": result.get("data", {}),
        "hyperparameters": result.get("hyperparameters", {}),
        "workers": result.get("workers"),
        "steps": result.get("steps"),
        "evaluated_on": result.get("evaluated_on"),
    }
    # what a client needs to call the model: class names, feature order, id maps stay in training.json
    for key in ("classes", "features", "task", "layout", "embedder"):
        if key in meta:
            extra[key] = meta[key]
    return ModelCard(source=f"aiaas training job {job_id}", metrics=result.get("metrics", {}), extra=extra)


def register_result(
    repository: ModelRepository,
    model: str,
    job_id: str,
    job_dir: Path,
    owner: str | None = None,
    max_batch_size: int = DEFAULT_MAX_BATCH,
) -> int:
    """Add the job's ONNX as a new version of ``model``; returns the version number."""
    job_dir = Path(job_dir)
    result = json.loads((job_dir / "result.json").read_text())
    onnx_path = job_dir / result["onnx"]
    if not onnx_path.is_file():
        raise InvalidInput(f"job {job_id}: exported model {onnx_path} is missing")
    current = repository.read(model).config if repository.exists(model) else None
    if current is not None:
        if current.backend != "onnx":
            raise Conflict(
                f"model {model!r} exists with backend {current.backend!r}; a training job can only add ONNX versions"
            )
        if current.owner is not None and owner is not None and current.owner != owner:
            raise PermissionDenied(f"model {model!r} belongs to another tenant")
    card = build_card(job_id, result)
    with tempfile.TemporaryDirectory(dir=repository.root) as tmp:
        card_path = Path(tmp) / "training.json"
        card_path.write_text(
            json.dumps({"card": card.model_dump(), "meta": result.get("meta", {})}, indent=1, default=str)
        )
        version = repository.add_version(model, {"model.onnx": onnx_path, "training.json": card_path})
    base: dict[str, Any] = (
        current.model_dump(exclude={"name"})
        if current is not None
        else {
            "backend": "onnx",
            "max_batch_size": max_batch_size,
            "owner": owner,
            "task": "regression"
            if result.get("meta", {}).get("task") == "regression" or result.get("recipe") == "mf"
            else "classification",
        }
    )
    base.update(
        inputs=[TensorSpec.model_validate(t).model_dump() for t in result["inputs"]],
        outputs=[TensorSpec.model_validate(t).model_dump() for t in result["outputs"]],
        card=card.model_dump(),
        description=f"trained by aiaas job {job_id} (recipe {result.get('recipe')})",
    )
    repository.write_config(model, ModelConfig.model_validate(base))
    return version
