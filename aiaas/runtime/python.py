"""Python backend: a model that is code, named by import path in the config.

``parameters.class`` is either ``package.module:ClassName`` (importable) or ``file.py:ClassName``, a file in
the version directory (or the model directory), as in Triton's python backend. The class subclasses
``aiaas.runtime.Model`` (an ``async def predict``, run on the event loop) or ``aiaas.runtime.BlockingModel``
(a blocking ``run``, run in batcher threads or worker processes).

Classes written for the earlier interface keep loading: a ``Model`` subclass whose ``predict`` is a plain
``def`` is served as a blocking model (its ``predict`` runs in threads), and one that set ``is_async = True``
with an ``async def predict_async`` is served on the event loop through ``predict_async``.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiaas.runtime.base import BlockingFn, BlockingModel, Model, RuntimeContext, Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

log = logging.getLogger("aiaas.runtime")


def resolve_class(spec: str, version_dir: Path) -> type[Model]:
    module_name, sep, cls_name = spec.partition(":")
    if not sep or not module_name or not cls_name:
        raise ValueError(f"parameters.class {spec!r} must look like 'package.module:ClassName' or 'model.py:ClassName'")
    if module_name.endswith(".py"):
        path = next((p for p in (version_dir / module_name, version_dir.parent / module_name) if p.is_file()), None)
        if path is None or Path(module_name).name != module_name:
            raise ValueError(f"python file {module_name!r} not found in {version_dir} or its model directory")
        unique = f"aiaas_user_model_{abs(hash(str(path)))}"
        mod_spec = importlib.util.spec_from_file_location(unique, path)
        assert mod_spec and mod_spec.loader
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[unique] = module
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, Model):
        raise ValueError(f"{spec!r} is not a subclass of aiaas.runtime.Model")
    return cls


def legacy_sync(cls: type[Model]) -> bool:
    """A class of the earlier interface whose ``predict`` is a plain (blocking) ``def``."""
    return (
        not issubclass(cls, BlockingModel) and not _legacy_async(cls) and not inspect.iscoroutinefunction(cls.predict)
    )


def _legacy_async(cls: type[Model]) -> bool:
    """A class of the earlier interface that ran on the event loop through ``is_async`` and ``predict_async``."""
    return bool(getattr(cls, "is_async", False)) and inspect.iscoroutinefunction(getattr(cls, "predict_async", None))


def user_on_loop(cls: type[Model], config: ModelConfig, version_dir: Path) -> bool:
    """Whether the user's class runs on the event loop (its ``predict`` awaits) rather than in threads."""
    return cls.on_loop(config, version_dir) and not legacy_sync(cls)


class PythonModel(Model):
    """Delegates to the user's class; exists so the backend name 'python' resolves like any other."""

    def __init__(self, config: ModelConfig, version_dir: Path, context: RuntimeContext) -> None:
        super().__init__(config, version_dir, context)
        cls = resolve_class(str(config.parameters["class"]), version_dir)
        self.inner = cls(config, version_dir, context)
        self._blocking: BlockingFn | None = self.inner.blocking()
        if legacy_sync(cls):
            log.info(
                "model %r: %s defines a blocking 'def predict'; it is served from threads (the current "
                "interface: subclass aiaas.runtime.BlockingModel and implement run)",
                config.name,
                cls.__name__,
            )
            self._blocking = self.inner.predict  # type: ignore[assignment]

    @classmethod
    def on_loop(cls, config: ModelConfig, version_dir: Path) -> bool:
        return user_on_loop(resolve_class(str(config.parameters.get("class", "")), version_dir), config, version_dir)

    def load(self) -> None:
        self.inner.load()

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        if self._blocking is not None:
            return await asyncio.to_thread(self._blocking, inputs, parameters)
        if _legacy_async(type(self.inner)):
            result: Tensors = await self.inner.predict_async(inputs, parameters)  # type: ignore[attr-defined]
            return result
        return await self.inner.predict(inputs, parameters)

    def blocking(self) -> BlockingFn | None:
        return self._blocking

    def predict_stream(self, inputs: Tensors, parameters: dict[str, Any]) -> AsyncIterator[Tensors]:
        if type(self.inner).predict_stream is Model.predict_stream:  # the default: this class's predict, once
            return super().predict_stream(inputs, parameters)
        return self.inner.predict_stream(inputs, parameters)

    def unload(self) -> None:
        self.inner.unload()

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return self.inner.signature()
