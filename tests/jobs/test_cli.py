"""The issue's "done when", end to end against a real server process: upload a CSV with ``aiaas files upload``,
start a 2-worker DDP job with ``aiaas jobs create``, follow it with ``aiaas jobs watch``, then call the new model
version through V2."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from security.kit import ADMIN_SECRET, served
from typer.testing import CliRunner

from aiaas.cli.main import app

from .conftest import blobs_csv

pytestmark = pytest.mark.slow


def test_upload_create_watch_and_call_from_the_cli(tmp_path: Path) -> None:
    train, val = tmp_path / "train.csv", tmp_path / "val.csv"
    train.write_bytes(blobs_csv(400, seed=0))
    val.write_bytes(blobs_csv(100, seed=1))
    runner = CliRunner()
    with served(tmp_path / "home", tmp_path / "server.log", AIAAS_TRAINING_CORES="2") as (url, _proc):
        conn = ["--url", url, "--api-key", ADMIN_SECRET]

        r = runner.invoke(app, ["files", "upload", str(train), *conn])
        assert r.exit_code == 0, r.output
        assert "400 rows" in r.output
        file_id = re.search(r"file-[0-9a-f]+", r.output).group(0)  # type: ignore[union-attr]

        r = runner.invoke(
            app,
            [
                "jobs",
                "create",
                "--recipe",
                "tabular",
                "--file",
                file_id,
                "--validation-file",
                str(val),
                "--model",
                "churn",
                "--workers",
                "2",
                "--hp",
                "label=label",
                "--hp",
                "epochs=3",
                "--hp",
                "hidden=[16]",
                *conn,
            ],
        )
        assert r.exit_code == 0, r.output
        assert "uploaded val.csv" in r.output  # a local path is uploaded first
        job_id = re.search(r"trjob-[0-9a-f]+", r.output).group(0)  # type: ignore[union-attr]

        r = runner.invoke(app, ["jobs", "watch", job_id, "--interval", "0.3", *conn])
        assert r.exit_code == 0, r.output
        assert f"job {job_id} succeeded" in r.output and "model churn version 1" in r.output
        assert "accuracy" in r.output and "registered model 'churn' version 1" in r.output

        r = runner.invoke(app, ["jobs", "list", "--status", "succeeded", *conn])
        assert r.exit_code == 0 and job_id in r.output

        x = [2.0, 1.0, -1.0, 0.0]  # a + 0.5 b - 0.3 c = 2.8, far on the positive side: class 1
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x}]}
        resp = httpx.post(
            f"{url}/v2/models/churn/versions/1/infer",
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_SECRET}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        assert {o["name"]: o for o in resp.json()["outputs"]}["label"]["data"] == [1]

        r = runner.invoke(app, ["jobs", "show", "trjob-doesnotexist", *conn])
        assert r.exit_code == 1 and "no training job" in r.output
