"""The built-in catalog as a plug-in: ``aiaas.catalog.plugin:BuiltinCatalog`` is registered under the entry point
group ``aiaas.catalog`` (pyproject.toml), which is how the server, the console and the CLI find it
(``aiaas.registry.plugins``); nothing outside this package imports it."""

from __future__ import annotations

import sys
from pathlib import Path

from aiaas.registry.catalogspec import CatalogSpec, Progress
from aiaas.registry.plugins import HeldOut, Status
from aiaas.registry.repository import ModelRepository


class BuiltinCatalog:
    """aiaas's scenario models (``aiaas/catalog/models/``). Specs import no framework; builds and held-out sets
    import theirs when called."""

    def __init__(self) -> None:
        self._specs: dict[str, CatalogSpec] | None = None  # read once: the specs never change while it runs

    def __repr__(self) -> str:
        return "BuiltinCatalog()"

    def specs(self) -> dict[str, CatalogSpec]:
        if self._specs is None:
            from aiaas.catalog.registry import all_specs

            self._specs = all_specs()
        return self._specs

    def status(self, spec: CatalogSpec, repo: ModelRepository, quick: bool) -> Status:
        from aiaas.catalog.builder import status

        return status(spec, repo, quick)

    def expected_seconds(self, spec: CatalogSpec, repo: ModelRepository) -> float:
        from aiaas.catalog.builder import expected_seconds

        return expected_seconds(spec, repo)

    def build(self, spec: CatalogSpec, repo: ModelRepository, quick: bool, progress: Progress) -> Status:
        from aiaas.catalog.builder import build

        return build(spec, repo, quick, progress)

    def build_command(self, home: Path, name: str, quick: bool) -> list[str]:
        return [sys.executable, "-m", "aiaas.catalog", "--home", str(home), *(["--quick"] if quick else []), name]

    def sweep(self) -> list[str]:
        from aiaas.catalog.builder import sweep_workdirs

        return sweep_workdirs()

    def heldout(self, name: str) -> HeldOut | None:
        from aiaas.catalog.heldout import heldout

        return heldout(name)

    def embedders(self) -> dict[str, str]:
        # the repository's minilm-embedding model (built by this catalog) as a training recipe's text embedder
        return {"catalog": "aiaas.catalog.runtime.nlp_embedding:repository_embedder"}
