"""What a catalog model is (part of the public catalog plug-in interface, next to ``aiaas.registry.plugins``):
a spec (where it comes from, what it needs, what quality it must reach) and a build function that
trains/exports/evaluates it into the model repository.

This module imports no numpy or torch: a plug-in's specs are read by ``aiaas catalog list`` and the server
without loading any framework; a build function imports what it needs when it runs.

A build writes one new version of ``models/<name>/`` with a model card: source, licence, training data and
split, metrics measured on held-out data by aiaas, parameters, size and latency. ``quick=True`` builds a
smaller variant (few epochs, small data) for CI; its card says so.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiaas.registry.repository import ModelRepository
from aiaas.types.model_config import ModelCard, ModelConfig

Progress = Callable[[float, str], None]  # (fraction done 0..1, what is happening)


@dataclass(frozen=True)
class Floor:
    """A held-out quality floor: ``metric`` ``op`` ``value`` (e.g. accuracy >= 0.90)."""

    metric: str
    op: str  # ">=", "<=", ">"
    value: float

    def holds(self, measured: float | None) -> bool | None:
        if measured is None:
            return None
        return {">=": measured >= self.value, "<=": measured <= self.value, ">": measured > self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Requirement:
    """A Python module or a Debian package (a file that proves it is installed) a model needs."""

    # (import name, pip requirement); a requirement starting with "--no-deps " gets its own pip command
    # (e.g. rapidocr-onnxruntime, whose declared opencv-python needs libGL; the headless build is used instead)
    pip: tuple[tuple[str, str], ...] = ()
    apt: tuple[tuple[str, str], ...] = ()  # (debian package, a path or command it installs)

    def missing(self) -> str | None:
        """None when everything is installed, else the exact command that installs what is missing."""
        pips = [req for mod, req in self.pip if importlib.util.find_spec(mod) is None]
        apts = [pkg for pkg, probe in self.apt if not (Path(probe).exists() or shutil.which(probe))]
        cmds = []
        if apts:
            cmds.append("apt-get install -y " + " ".join(apts))
        plain = [p for p in pips if not p.startswith("--no-deps ")]
        if plain:
            cmds.append("pip install " + " ".join(f"'{p}'" for p in plain))
        cmds += [f"pip install --no-deps '{p.removeprefix('--no-deps ').strip()}'" for p in pips if p not in plain]
        return " && ".join(cmds) or None


@dataclass
class BuildContext:
    repo: ModelRepository
    name: str
    quick: bool
    workdir: Path  # scratch space, removed after the build
    progress: Progress
    seed: int = 0

    def write(
        self,
        files: dict[str, Path],
        config: ModelConfig | dict[str, Any],
        card: ModelCard | dict[str, Any],
    ) -> int:
        """Add the artifacts as a new version and (re)write model.yaml with the card; returns the version."""
        cfg = config if isinstance(config, ModelConfig) else ModelConfig.model_validate(config)
        crd = card if isinstance(card, ModelCard) else ModelCard.model_validate(card)
        cfg = cfg.model_copy(update={"card": crd})
        version = self.repo.add_version(self.name, files)
        try:
            self.repo.write_config(self.name, cfg)
        except BaseException:
            shutil.rmtree(self.repo.version_dir(self.name, version), ignore_errors=True)
            raise
        return version


@dataclass
class BuildResult:
    metrics: dict[str, float]  # measured on held-out data
    seconds: float = 0.0
    version: int | None = None
    notes: str = ""


@dataclass(frozen=True)
class CatalogSpec:
    name: str  # model name in the repository
    scenario: str  # nlp | vision | speech | recommendation | game | driving | medical | credit
    task: str
    summary: str  # one line for `aiaas catalog list`
    source: str  # where weights / data come from
    license: str
    build: Callable[[BuildContext], BuildResult]
    requires: Requirement = field(default_factory=Requirement)
    floors: tuple[Floor, ...] = ()
    no_floor: str = ""  # why a model has no quality floor (required when ``floors`` is empty; shown in the README)
    depends: tuple[str, ...] = ()  # catalog models that must be built first (e.g. a pipeline's steps)
    revision: int = 1  # bump when the build changes, so existing repositories rebuild it
    example: str = ""  # the README's curl request body for this model (JSON)
    # expected full-build seconds on 2 cores, until this machine has measured its own (card.extra.catalog
    # .build_seconds): the server builds the shortest first, so most models are ready soonest
    build_s: float = 120.0


def timed(fn: Callable[[BuildContext], BuildResult]) -> Callable[[BuildContext], BuildResult]:
    def run(ctx: BuildContext) -> BuildResult:
        t0 = time.monotonic()
        result = fn(ctx)
        result.seconds = time.monotonic() - t0
        return result

    return run
