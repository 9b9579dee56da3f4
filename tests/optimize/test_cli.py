"""The CLI: ``aiaas optimize`` (progress, comparison table, exit status), ``aiaas models compare`` and
``aiaas optimizations``, against the app in-process (the HTTP client is the app's TestClient), plus the table
and argument parsing on their own."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from aiaas.cli import optimize as cli_opt
from aiaas.cli.jobs import _Server
from aiaas.cli.main import app

from .svc import ROOT, World, mlp_rows, npz_bytes, world

runner = CliRunner()


@pytest.fixture
def w(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with world(tmp_path) as w:

        def init(self: _Server, url: Any, api_key: Any, home: Any, timeout: float = 600.0) -> None:
            self.base, self.key, self.timeout = str(w.client.base_url), "", timeout
            self._http = w.client  # an httpx.Client on the app: every CLI request goes through the real API
            self._http.headers.update(ROOT)

        monkeypatch.setattr(_Server, "__init__", init)
        monkeypatch.setattr(cli_opt.console, "width", 160)  # the table's natural width (CliRunner: 80)
        yield w


@pytest.mark.slow
def test_optimize_compare_list_show(w: World, tmp_path: Path) -> None:
    x, y = mlp_rows(200)
    local = tmp_path / "eval.npz"
    local.write_bytes(npz_bytes(x=x, label=y))
    r = runner.invoke(
        app,
        [
            "optimize",
            "pub",
            "--passes",
            "graph",
            "--max-loss",
            "1%",
            "--eval-file",
            str(local),
            "--batch-sizes",
            "1,8",
            "--interval",
            "0.2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "created optimization optjob-" in r.output and "accuracy on 200 rows of uploaded file eval.npz" in r.output
    assert re.search(r"baseline .* baseline", r.output) and re.search(r"graph \* .* accepted", r.output)
    for column in ("size", "params", "sparsity", "p50 b1 ms", "p50 b8 ms", "rows/s b8", "accuracy", "delta", "speedup"):
        assert column in r.output, column
    assert "registered pub version 2" in r.output and "POST /v2/models/pub/versions/2/infer" in r.output
    job_id = re.search(r"optjob-[0-9a-f]+", r.output).group(0)  # type: ignore[union-attr]
    file_id = re.search(r"file-[0-9a-f]+", r.output).group(0)  # type: ignore[union-attr]

    r = runner.invoke(
        app, ["models", "compare", "pub", "1", "2", "--eval-file", file_id, "--batch-sizes", "1,8", "--interval", "0.2"]
    )
    assert r.exit_code == 0, r.output
    assert "pub: version 2 against version 1" in r.output
    assert re.search(r"version 1 .* baseline", r.output) and re.search(r"version 2 .* accepted", r.output)

    r = runner.invoke(app, ["optimizations", "list"])
    assert r.exit_code == 0 and job_id in r.output and "compare" in r.output
    r = runner.invoke(app, ["optimizations", "show", job_id])
    assert r.exit_code == 0 and "registered pub version 2" in r.output


def test_request_errors_exit_1_with_the_servers_message(w: World) -> None:
    r = runner.invoke(app, ["optimize", "pub", "--passes", "graph", "--eval-file", "file-nope"])
    assert r.exit_code == 1 and "file-nope" in r.output and "(HTTP 404)" in r.output
    r = runner.invoke(app, ["optimize", "pub", "--passes", "prune:amount=0.95"])
    assert r.exit_code == 1 and "work on the torch network" in r.output and "(HTTP 400)" in r.output
    r = runner.invoke(app, ["optimize", "pub", "--passes", "quantize-dynamic,quantize-static"])
    assert r.exit_code == 1 and "only one precision change" in r.output and "(HTTP 400)" in r.output
    r = runner.invoke(app, ["optimize", "pub", "--passes", "prune:amount"])
    assert r.exit_code == 1 and "options are name:key=value" in r.output
    r = runner.invoke(app, ["optimize", "pub", "--passes", "graph", "--max-loss", "lots"])
    assert r.exit_code == 1 and "not a fraction" in r.output
    r = runner.invoke(app, ["optimizations", "show", "optjob-nope"])
    assert r.exit_code == 1 and "no optimization job" in r.output
    assert w.client.get("/v1/optimizations").json()["data"] == []


def test_parsing() -> None:
    assert cli_opt.parse_passes("graph, quantize-dynamic") == ["graph", "quantize-dynamic"]
    assert cli_opt.parse_passes("prune:amount=0.95:fine_tune_epochs=1,export-onnx:exporter=torchscript") == [
        {"name": "prune", "amount": 0.95, "fine_tune_epochs": 1},
        {"name": "export-onnx", "exporter": "torchscript"},
    ]
    assert cli_opt.parse_fraction("1%") == 0.01 and cli_opt.parse_fraction("0.05") == 0.05
    with pytest.raises(typer.Exit):
        cli_opt.parse_passes(" , ")


def _measurement(metric: float, p50: float, size: int = 2048) -> dict[str, Any]:
    return {
        "size_bytes": size,
        "parameters": 1000,
        "weight_sparsity": 0.5,
        "metric": {"name": "accuracy", "value": metric},
        "latency": {"batch_1": {"p50_ms": p50 / 4}, "batch_32": {"p50_ms": p50}},
        "throughput": {"samples_per_s": 32000 / p50},
    }


def _job(accepted: bool) -> dict[str, Any]:
    decision = {
        "accepted": accepted,
        "relative_loss": 0.0 if accepted else 0.72,
        "speedup": 1.5,
        "reason": "accepted: fine"
        if accepted
        else "rejected: accuracy 0.25 vs 0.9 baseline, -72.2% relative > 1% allowed",
    }
    return {
        "id": "optjob-1",
        "status": "succeeded",
        "mode": "optimize",
        "model": "m",
        "version": 1,
        "accepted": accepted,
        "decision": decision["reason"],
        "model_version": 2 if accepted else None,
        "register_into": "m",
        "evaluation": {"metric": "accuracy", "rows": 100, "name": "held-out"},
        "report": {
            "workload": {"batch_size": 32},
            "evaluation": {"metric": "accuracy"},
            "chosen": "prune" if accepted else None,
            "baseline": _measurement(0.9, 2.0),
            "candidates": [
                {"name": "prune", "measurement": _measurement(0.25 if not accepted else 0.9, 1.3), "decision": decision}
            ],
        },
    }


def test_table_and_exit_status(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_opt.console, "width", 160)
    assert cli_opt.print_result(_job(accepted=True)) == 0
    out = capsys.readouterr().out
    assert re.search(r"prune \* .* 2.0 KB .* 50.0% .* 1.50x +accepted", out) and "registered m version 2" in out
    assert cli_opt.print_result(_job(accepted=False)) == cli_opt.REJECTED_EXIT
    out = capsys.readouterr().out
    assert (
        "rejected" in out and "-72.0%" in out and "-72.2% relative > 1% allowed" in out and "nothing registered" in out
    )
    assert cli_opt.print_result({"id": "optjob-1", "status": "failed", "reason": "boom"}) == 1
    assert "optimization optjob-1 failed" in capsys.readouterr().out
