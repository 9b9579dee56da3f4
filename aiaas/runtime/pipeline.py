"""Pipeline backend: a model whose config chains other served models, served as one model.

Each step calls another model through the server's own data plane (so every step keeps its batching and
replicas) -- the seed's "split a big model into small chained services". Sources are either a pipeline input
name or ``<step>.<output>`` of an earlier step. A failing step is named in the error.
"""

from __future__ import annotations

from typing import Any

from aiaas.errors import AiaasError, InferenceError
from aiaas.runtime.base import Model, Tensors


class PipelineModel(Model):
    """Runs on the event loop (``predict`` awaits the other models), one instance per version."""

    def load(self) -> None:
        pipe = self.config.pipeline
        assert pipe is not None
        if self.context.infer is None:
            raise ValueError("pipelines need the server's data plane (no infer function in the runtime context)")
        known_inputs = {t.name for t in self.config.inputs}
        produced: set[str] = set()
        for step in pipe.steps:
            if step.name in produced:
                raise ValueError(
                    f"pipeline step name {step.name!r} is used twice: '<step>.<output>' would be ambiguous"
                )
            for dst, src in step.inputs.items():
                if "." in src and src.split(".", 1)[0] in {s.name for s in pipe.steps}:
                    if src.split(".", 1)[0] not in produced:
                        raise ValueError(
                            f"pipeline step {step.name!r} input {dst!r} uses {src!r} before that step runs"
                        )
                elif known_inputs and src not in known_inputs:
                    raise ValueError(f"pipeline step {step.name!r} input {dst!r}: {src!r} is not a pipeline input")
            produced.add(step.name)
        for out, src in pipe.outputs.items():
            if src.split(".", 1)[0] not in produced:
                raise ValueError(f"pipeline output {out!r}: {src!r} names no step")

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        pipe = self.config.pipeline
        infer = self.context.infer
        assert pipe is not None and infer is not None
        values: dict[str, Any] = dict(inputs)
        for step in pipe.steps:
            feed = {}
            for dst, src in step.inputs.items():
                if src not in values:
                    raise InferenceError(f"pipeline step {step.name!r}: input {dst!r} needs {src!r}, which is missing")
                feed[dst] = values[src]
            try:
                out = await infer(step.model, step.version, feed, parameters)
            except AiaasError as e:
                e.message = f"pipeline step {step.name!r} (model {step.model!r}): {e.message}"
                e.args = (e.message,)
                raise
            except Exception as e:
                raise InferenceError(f"pipeline step {step.name!r} (model {step.model!r}) failed: {e}") from e
            for k, v in out.items():
                values[f"{step.name}.{k}"] = v
        missing = {name: src for name, src in pipe.outputs.items() if src not in values}
        if missing:  # a silently absent output would surface far away, as a confusing client-side KeyError
            name, src = next(iter(missing.items()))
            raise InferenceError(f"pipeline output {name!r} needs {src!r}, which its step did not produce")
        return {name: values[src] for name, src in pipe.outputs.items()}
