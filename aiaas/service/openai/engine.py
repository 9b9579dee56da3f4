"""The typed way from a loaded model version to its text-generation engine."""

from __future__ import annotations

from aiaas.llm.base import Engine
from aiaas.runtime.llm import LLMModel
from aiaas.service.models import VersionRecord


def llm_engine(vr: VersionRecord | None) -> Engine | None:
    """The engine of ``vr`` when it is a loaded text-generation model (backend ``llm``), else None."""
    model = vr.executor.loop_model() if vr is not None and vr.executor is not None else None
    return model.engine if isinstance(model, LLMModel) else None
