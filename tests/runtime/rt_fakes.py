"""Controllable python-backend models for the ModelManager tests (imported as ``rt_fakes:VersionEcho``, and
``rt_fakes:AsyncEcho`` / ``rt_fakes:LegacyAsyncEcho`` / ``rt_fakes:LegacySyncEcho`` for the Model interface).

Tests steer it through ``CONTROLS``: gates that hold ``load`` or ``predict`` until the test opens them, and
events that tell the test a call has started -- so ordering is proven without timings.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiaas.runtime import BlockingModel, Model, Tensors


@dataclass
class Controls:
    load_gate: threading.Event | None = None  # when set on a version, its load waits for the gate
    load_gate_version: int | None = None
    load_started: threading.Event = field(default_factory=threading.Event)
    predict_gate: threading.Event | None = None
    predict_gate_version: int | None = None
    predict_started: threading.Event = field(default_factory=threading.Event)
    unloaded: list[int] = field(default_factory=list)
    loaded: list[int] = field(default_factory=list)  # id() of every instance whose load ran
    served: set[int] = field(default_factory=set)  # id() of every instance that answered a request
    lock: threading.Lock = field(default_factory=threading.Lock)


CONTROLS = Controls()


def reset() -> Controls:
    global CONTROLS
    CONTROLS = Controls()
    return CONTROLS


class VersionEcho(BlockingModel):
    """y = x + version, so every answer says which version produced it."""

    def load(self) -> None:
        c = CONTROLS
        if self.config.parameters.get("fail"):
            raise ValueError(f"version {self.version_dir.name} refuses to load")
        self.version = int(self.version_dir.name)
        if c.load_gate is not None and c.load_gate_version == self.version:
            c.load_started.set()
            if not c.load_gate.wait(10):
                raise RuntimeError("load gate never opened")

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        c = CONTROLS
        if c.predict_gate is not None and c.predict_gate_version in (None, self.version):
            c.predict_started.set()
            if not c.predict_gate.wait(10):
                raise RuntimeError("predict gate never opened")
        return {"y": inputs["x"] + self.version}

    def unload(self) -> None:
        with CONTROLS.lock:
            CONTROLS.unloaded.append(self.version)


class NotAModel:
    pass


class AsyncEcho(Model):
    """y = x + 1 from an ``async def predict`` (runs on the event loop); records which instances load and serve."""

    def load(self) -> None:
        with CONTROLS.lock:
            CONTROLS.loaded.append(id(self))

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        await asyncio.sleep(0)
        CONTROLS.served.add(id(self))
        return {"y": inputs["x"] + 1}


class LegacyAsyncEcho(Model):
    """The earlier interface's async model: ``is_async = True``, a refusing sync predict, ``predict_async``."""

    is_async = True

    def load(self) -> None:
        with CONTROLS.lock:
            CONTROLS.loaded.append(id(self))

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:  # type: ignore[override]
        raise RuntimeError("runs on the event loop; call predict_async")

    async def predict_async(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        await asyncio.sleep(0)
        CONTROLS.served.add(id(self))
        return {"y": inputs["x"] + 1}


class LegacySyncEcho(Model):
    """The earlier interface's ordinary model: a blocking ``def predict`` on ``Model``."""

    def load(self) -> None:
        with CONTROLS.lock:
            CONTROLS.loaded.append(id(self))

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:  # type: ignore[override]
        assert threading.current_thread() is not threading.main_thread(), "a blocking predict ran on the loop"
        CONTROLS.served.add(id(self))
        return {"y": inputs["x"] + 1}
