"""What ``aiaas jobs create`` sends for its options (the server's own checks are tested in test_jobs_api.py)."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from aiaas.cli import jobs as cli_jobs
from aiaas.cli.main import app


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []

    def fake_call(self: Any, method: str, path: str, **kw: Any) -> Any:
        assert (method, path) == ("POST", "/v1/training/jobs")
        bodies.append(kw["json"])
        return {"id": "trjob-1", "status": "queued"}

    monkeypatch.setattr(cli_jobs._Server, "__call__", fake_call)
    return bodies


BASE = [
    "jobs",
    "create",
    "--recipe",
    "tabular",
    "--file",
    "file-abc",
    "--model",
    "m",
    "--api-key",
    "k",
    "--url",
    "http://127.0.0.1:9",
]


def test_zero_stage_goes_into_the_job(sent: list[dict[str, Any]]) -> None:
    r = CliRunner().invoke(app, [*BASE, "--workers", "2", "--strategy", "zero", "--zero-stage", "2"])
    assert r.exit_code == 0, r.output
    assert sent[-1]["strategy"] == "zero" and sent[-1]["zero_stage"] == 2
    assert sent[-1]["resources"] == {"workers": 2, "threads_per_worker": 1}


def test_without_zero_stage_the_server_default_applies(sent: list[dict[str, Any]]) -> None:
    r = CliRunner().invoke(app, BASE)
    assert r.exit_code == 0, r.output
    assert "zero_stage" not in sent[-1] and sent[-1]["strategy"] == "ddp"
