"""The fast path's contract with FastAPI, Starlette and uvicorn (server/fastpath.py): the versions it was written
against are the ones pinned and installed, and every internal it uses still has the shape it expects. When an
upgrade breaks this, these tests fail naming what changed."""

from __future__ import annotations

import logging
import re
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from uvicorn.protocols.http import httptools_impl

from aiaas.server import fastpath
from aiaas.server.fastpath import WRITTEN_AGAINST, App, internals_problems

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_internals_have_the_shape_the_fast_path_was_written_against() -> None:
    problems = internals_problems()
    assert problems == [], (
        "server/fastpath.py relies on framework internals that changed; adapt it (or turn it off with "
        "AIAAS_FAST_PATH=0) before upgrading:\n  " + "\n  ".join(problems)
    )


def test_pyproject_pins_exactly_the_versions_written_against_and_they_are_installed() -> None:
    deps = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["dependencies"]
    for name, want in WRITTEN_AGAINST.items():
        pins = [d for d in deps if re.match(rf"{name}(\[[^]]*\])?\s*[=<>!~]", d)]
        assert pins == [f"{name}{'[standard]' if name == 'uvicorn' else ''}=={want}"], (
            f"pyproject.toml pins {pins} for {name}"
        )
        assert version(name) == want, (
            f"{name} {version(name)} is installed; server/fastpath.py was written against {want}"
        )


def test_a_changed_signature_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    async def send(self: Any, event: Any) -> None: ...

    monkeypatch.setattr(httptools_impl.RequestResponseCycle, "send", send)
    assert any("RequestResponseCycle.send" in p and "message" in p for p in internals_problems())


def test_a_missing_attribute_is_named() -> None:
    app = FastAPI()
    del app._native_telemetry
    assert "FastAPI instance has no attribute '_native_telemetry'" in internals_problems(app)


def test_a_fast_path_whose_internals_changed_turns_itself_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(
        fastpath, "internals_problems", lambda app: ["uvicorn RequestResponseCycle.send lost parameter(s) message"]
    )
    app = App()
    with caplog.at_level(logging.WARNING, logger="aiaas.server"):
        fastpath.install(app, enabled=True)
    assert app.fast_path is None
    assert (
        "V2 fast path off" in caplog.text
        and "RequestResponseCycle.send" in caplog.text
        and "written against" in caplog.text
    )
    monkeypatch.setattr(fastpath, "_uvicorn_problems", lambda: ["changed"])
    assert fastpath.http_protocol(True) == "auto"  # uvicorn's stock protocol


def test_on_when_the_internals_match() -> None:
    app = App()
    fastpath.install(app, enabled=True)
    assert app.fast_path is not None
    assert not isinstance(fastpath.http_protocol(True), str)
