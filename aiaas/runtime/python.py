"""Python backend: a model that is code, named by import path in the config.

``parameters.class`` is either ``package.module:ClassName`` (importable) or ``file.py:ClassName``, a file in
the version directory (or the model directory), as in Triton's python backend. The class subclasses
``aiaas.runtime.Model``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from aiaas.runtime.base import Model, RuntimeContext, Tensors
from aiaas.types.model_config import ModelConfig


def resolve_class(spec: str, version_dir: Path) -> type[Model]:
    module_name, sep, cls_name = spec.partition(":")
    if not sep or not module_name or not cls_name:
        raise ValueError(f"parameters.class {spec!r} must look like 'package.module:ClassName' or 'model.py:ClassName'")
    if module_name.endswith(".py"):
        path = next(
            (p for p in (version_dir / module_name, version_dir.parent / module_name) if p.is_file()), None
        )
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


class PythonModel(Model):
    """Delegates to the user's class; exists so the backend name 'python' resolves like any other."""

    def __init__(self, config: ModelConfig, version_dir: Path, context: RuntimeContext) -> None:
        super().__init__(config, version_dir, context)
        self.inner = resolve_class(str(config.parameters["class"]), version_dir)(config, version_dir, context)
        self.is_async = self.inner.is_async  # type: ignore[misc]

    def load(self) -> None:
        self.inner.load()

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        return self.inner.predict(inputs, parameters)

    async def predict_async(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        return await self.inner.predict_async(inputs, parameters)

    def predict_stream(self, inputs: Tensors, parameters: dict[str, Any]):
        return self.inner.predict_stream(inputs, parameters)

    def unload(self) -> None:
        self.inner.unload()

    def signature(self):
        return self.inner.signature()
