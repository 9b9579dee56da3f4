"""A controllable python-backend model for the ModelManager tests (imported as ``rt_fakes:VersionEcho``).

Tests steer it through ``CONTROLS``: gates that hold ``load`` or ``predict`` until the test opens them, and
events that tell the test a call has started -- so ordering is proven without timings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from aiaas.runtime import Model, Tensors


@dataclass
class Controls:
    load_gate: threading.Event | None = None  # when set on a version, its load waits for the gate
    load_gate_version: int | None = None
    load_started: threading.Event = field(default_factory=threading.Event)
    predict_gate: threading.Event | None = None
    predict_gate_version: int | None = None
    predict_started: threading.Event = field(default_factory=threading.Event)
    unloaded: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


CONTROLS = Controls()


def reset() -> Controls:
    global CONTROLS
    CONTROLS = Controls()
    return CONTROLS


class VersionEcho(Model):
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

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
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
