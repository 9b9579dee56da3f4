"""Fixtures of the CLI tests: a clean environment, a URL nothing listens on, and a real server sharing a home."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from v2kit import ServerProcess, free_port, running_server


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No AIAAS_* from the outer environment; a wide console so tables are not wrapped."""
    import os

    for k in list(os.environ):
        if k.startswith("AIAAS_"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def dead_url() -> str:
    """A URL on a port nothing listens on: the CLI must behave as with no server running."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-server") / "home"


@pytest.fixture(scope="module")
def server(server_home: Path) -> Iterator[ServerProcess]:
    """A real server with no AIAAS_ADMIN_KEY: it writes $home/admin.key, which the CLI reads from the same home."""
    with running_server(server_home, None) as s:
        yield s
