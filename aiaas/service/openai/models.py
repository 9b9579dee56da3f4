"""``/v1/models`` and the lookups every family shares: which models a caller may see, a text-generation
model's engine, and calling an ordinary model through the data plane (embeddings and audio, by convention:

* embedding model: input ``text`` BYTES [-1] -> output ``embedding`` FP32 [-1, D]
* speech recognizer: input ``audio`` BYTES [-1] (WAV bytes) -> output ``text`` BYTES [-1]
* speech synthesizer: input ``text`` BYTES [-1] -> output ``audio`` BYTES [-1] (WAV bytes))."""

from __future__ import annotations

import numpy as np

from aiaas.errors import InvalidInput, NotFound
from aiaas.llm.base import Engine
from aiaas.service.dataplane import DataPlane
from aiaas.service.governance import Governance, ModelRef, Principal
from aiaas.service.models import ModelManager, VersionRecord
from aiaas.service.openai.engine import llm_engine
from aiaas.types import openai as oa


def _not_found(name: str) -> NotFound:
    return NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")


class ModelsServing:
    def __init__(self, models: ModelManager, governance: Governance) -> None:
        self.models = models
        self.governance = governance

    def check_visible(self, principal: Principal, name: str) -> None:
        """404 (exactly like a missing model) for a model the caller may not see."""
        rec = self.models.models.get(name)
        if rec is None or (
            rec.config is not None and not self.governance.can_see(principal, ModelRef(name, owner=rec.config.owner))
        ):
            raise _not_found(name)

    @staticmethod
    def _card(name: str, vr: VersionRecord) -> oa.ModelCard:
        cfg = vr.config
        return oa.ModelCard(
            id=name,
            created=int(vr.loaded_at),
            owned_by=(cfg.owner if cfg and cfg.owner else "aiaas"),
            task=cfg.task if cfg else None,
        )

    def list_models(self, principal: Principal) -> oa.ModelList:
        cards = []
        for name in sorted(self.models.models):
            rec = self.models.models[name]
            vr = rec.latest_ready()
            if vr is None or rec.config is None:
                continue
            if not self.governance.can_see(principal, ModelRef(name, owner=rec.config.owner)):
                continue
            cards.append(self._card(name, vr))
        return oa.ModelList(data=cards)

    def get_model(self, principal: Principal, name: str) -> oa.ModelCard:
        self.check_visible(principal, name)
        vr = self.models.models[name].latest_ready()
        if vr is None:
            raise _not_found(name)
        return self._card(name, vr)

    def llm(self, principal: Principal, name: str) -> tuple[VersionRecord, Engine]:
        """The version to generate with and its engine; 400 for a model that does not generate text."""
        self.check_visible(principal, name)
        vr = self.models.resolve(name, None)
        engine = llm_engine(vr)
        if engine is None:
            raise InvalidInput(f"model {name!r} is not a text-generation model (backend llm)", param="model")
        return vr, engine

    def is_llm(self, name: str) -> bool:
        """Whether ``name`` is a loaded text-generation model (without any visibility check)."""
        rec = self.models.models.get(name)
        return rec is not None and llm_engine(rec.latest_ready()) is not None


async def infer(
    models: ModelsServing,
    dataplane: DataPlane,
    principal: Principal,
    model: str,
    inputs: dict[str, np.ndarray],
    endpoint: str,
) -> dict[str, np.ndarray]:
    """An ordinary model's outputs for ``inputs``, with the data plane's admission, batching and metering."""
    models.check_visible(principal, model)
    out = await dataplane.infer(principal, model, None, inputs, {}, endpoint=endpoint)
    return out.outputs
