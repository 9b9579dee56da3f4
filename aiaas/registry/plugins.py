"""Catalog plug-ins: how the server, the console and the CLI find catalog models without importing them.

A catalog is a package that registers a :class:`CatalogPlugin` factory under the entry point group
``aiaas.catalog`` (``[project.entry-points."aiaas.catalog"]`` in its ``pyproject.toml``); aiaas's own built-in
catalog is one (``aiaas.catalog.plugin:BuiltinCatalog``). :func:`installed_catalog` loads every installed
plug-in once and merges them into one :class:`Catalog`; with none installed the catalog is empty, the server
serves its repository as usual and logs that no catalog is installed.

The interface is what a plug-in gets and gives: the spec types (``aiaas.registry.catalogspec``), the model
repository, ``aiaas.runtime.Model`` for serving classes, and the model card types. Reading specs must stay
light (no numpy, no torch): ``aiaas catalog list`` and the server's start read them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiaas.registry.catalogspec import CatalogSpec, Progress
from aiaas.registry.repository import ModelRepository

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("aiaas.catalog")

GROUP = "aiaas.catalog"  # the entry point group catalog plug-ins register under


@dataclass
class Status:
    """A catalog model's state in one repository."""

    state: str  # built | stale | not built | unavailable | failed
    detail: str = ""  # install command, error, or "version N"
    metrics: dict[str, Any] | None = None
    quick: bool | None = None


@dataclass
class HeldOut:
    """The held-out rows a catalog model was measured on, for the optimization gate."""

    inputs: dict[str, np.ndarray]  # the ONNX feed, all rows
    target: np.ndarray
    metric: str  # aiaas.optimize.artifacts.METRICS name
    output: str  # the ONNX output the metric reads
    name: str  # where the rows come from (for the report)
    calibration: dict[str, np.ndarray] | None = None


@runtime_checkable
class CatalogPlugin(Protocol):
    """What a catalog package provides. Every method but ``build`` and ``heldout`` must be cheap."""

    def specs(self) -> dict[str, CatalogSpec]:
        """Every model of this catalog by name; imports no framework (numpy, torch, ...)."""
        ...

    def status(self, spec: CatalogSpec, repo: ModelRepository, quick: bool) -> Status:
        """Whether ``spec`` is built in ``repo`` (``quick``: a quick build counts as built)."""
        ...

    def expected_seconds(self, spec: CatalogSpec, repo: ModelRepository) -> float:
        """How long a full build of ``spec`` should take here (the server builds the shortest first)."""
        ...

    def build(self, spec: CatalogSpec, repo: ModelRepository, quick: bool, progress: Progress) -> Status:
        """Build ``spec`` into ``repo`` in this process; a failed build is returned, not raised."""
        ...

    def build_command(self, home: Path, name: str, quick: bool) -> list[str]:
        """The command line that builds ``name`` into ``home`` in its own process (the server runs it)."""
        ...

    def sweep(self) -> list[str]:
        """Remove what builds killed before their cleanup left behind; returns what was removed."""
        ...

    def heldout(self, name: str) -> HeldOut | None:
        """The held-out rows of model ``name``, None when it has none."""
        ...

    def embedders(self) -> dict[str, str]:
        """Short name -> ``module:function`` text embedders this catalog offers to training recipes."""
        ...


class Catalog:
    """Every installed plug-in as one catalog: specs merged by name (the first plug-in that names a model
    owns it), every other call sent to the plug-in that owns the model."""

    def __init__(self, plugins: Sequence[CatalogPlugin]) -> None:
        self.plugins = list(plugins)
        self._owned: dict[str, tuple[CatalogSpec, CatalogPlugin]] | None = None  # read once: specs do not change

    def specs(self) -> dict[str, CatalogSpec]:
        return {name: spec for name, (spec, _) in self._owners().items()}

    def _owners(self) -> dict[str, tuple[CatalogSpec, CatalogPlugin]]:
        if self._owned is not None:
            return self._owned
        owners: dict[str, tuple[CatalogSpec, CatalogPlugin]] = {}
        for plugin in self.plugins:
            for name, spec in plugin.specs().items():
                if name in owners:
                    log.warning("catalog model %r is named by two plug-ins; %r keeps it", name, owners[name][1])
                    continue
                owners[name] = (spec, plugin)
        self._owned = owners
        return owners

    def _owner(self, name: str) -> CatalogPlugin:
        owner = self._owners().get(name)
        if owner is None:
            raise ValueError(f"unknown catalog model {name!r}")
        return owner[1]

    def select(self, names: list[str] | None) -> list[CatalogSpec]:
        """Specs for ``names`` (None = all) in dependency order; unknown names raise ValueError."""
        return in_dependency_order(self.specs(), names)

    def status(self, spec: CatalogSpec, repo: ModelRepository, quick: bool) -> Status:
        return self._owner(spec.name).status(spec, repo, quick)

    def expected_seconds(self, spec: CatalogSpec, repo: ModelRepository) -> float:
        return self._owner(spec.name).expected_seconds(spec, repo)

    def build(self, spec: CatalogSpec, repo: ModelRepository, quick: bool, progress: Progress) -> Status:
        return self._owner(spec.name).build(spec, repo, quick, progress)

    def build_command(self, home: Path, name: str, quick: bool) -> list[str]:
        return self._owner(name).build_command(home, name, quick)

    def sweep(self) -> list[str]:
        return [removed for plugin in self.plugins for removed in plugin.sweep()]

    def heldout(self, name: str) -> HeldOut | None:
        """The first plug-in's answer that is not None (a plug-in may hold rows for a model it does not list)."""
        for plugin in self.plugins:
            rows = plugin.heldout(name)
            if rows is not None:
                return rows
        return None

    def embedders(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for plugin in self.plugins:
            for short, path in plugin.embedders().items():
                out.setdefault(short, path)
        return out


def in_dependency_order(specs: dict[str, CatalogSpec], names: list[str] | None) -> list[CatalogSpec]:
    """``specs[n]`` for ``names`` (None = all), each after the models it depends on; unknown names raise
    ValueError naming the known ones, a dependency cycle raises ValueError naming the cycle."""
    wanted = list(specs) if names is None else names
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        raise ValueError(f"unknown catalog model(s) {unknown}; known: {', '.join(sorted(specs))}")
    ordered: list[CatalogSpec] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise ValueError(f"catalog dependency cycle: {' -> '.join((*stack, name))}")
        spec = specs[name]
        for dep in spec.depends:
            visit(dep, (*stack, name))
        if spec not in ordered:
            ordered.append(spec)

    for n in wanted:
        visit(n, ())
    return ordered


def discover(group: str = GROUP) -> Catalog:
    """Load every plug-in registered under ``group``. A plug-in that fails to load is logged and skipped, so one
    broken catalog does not stop the server; with none the catalog is empty (logged once)."""
    plugins: list[CatalogPlugin] = []
    for ep in sorted(entry_points(group=group), key=lambda ep: ep.name):
        try:
            plugin = ep.load()()
        except Exception as e:  # a broken third-party catalog must not take the server down
            log.error("catalog plug-in %s (%s) failed to load: %s: %s", ep.name, ep.value, type(e).__name__, e)
            continue
        if not isinstance(plugin, CatalogPlugin):
            log.error("catalog plug-in %s (%s) is not a CatalogPlugin; skipped", ep.name, ep.value)
            continue
        plugins.append(plugin)
    if not plugins:
        log.warning("no catalog plug-in is installed (entry point group %r): the catalog is empty", group)
    return Catalog(plugins)


@functools.cache
def installed_catalog() -> Catalog:
    """The installed plug-ins, discovered once per process."""
    return discover()
