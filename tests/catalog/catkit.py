"""Shared by the catalog scenario tests: quick-build some catalog models into a fresh home and serve them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def serve_quick_builds(tmp_path_factory: pytest.TempPathFactory, tag: str, names: list[str]) -> Iterator[TestClient]:
    """Build ``names`` in quick mode (skipping those whose requirements are missing) and yield a client."""
    specs = all_specs()
    home = tmp_path_factory.mktemp(tag) / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    for name in names:
        if specs[name].requires.missing():
            continue  # its tests skip with the install command
        st = build(specs[name], repo, quick=True, progress=lambda f, m: None)
        assert st.state == "built", st.detail
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    with TestClient(app) as c:
        yield c


def needs(name: str) -> None:
    missing = all_specs()[name].requires.missing()
    if missing:
        pytest.skip(f"needs: {missing}")
