"""Schemathesis over the OpenAPI document of a real server: every answer is one the document lists (status,
content type, headers, body schema), a schema-violating request is refused, and nothing is a server error.

Bounded: at most 5 examples per operation and 25 s for the whole run (``--max-time``: fuzzing and stateful
testing repeat until it is spent, so the budget is the cost), all phases (examples, coverage, fuzzing, stateful)
with a fixed seed, every operation tested (checked in the summary), one worker (hypothesis is not thread-safe in
places). ``positive_data_acceptance`` is the one check left out: JSON Schema cannot say that a tensor's ``data``
must match its ``shape``, or that a tenant must exist, so schema-valid requests are
refused with 400/404 by design.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import build_models
from security.kit import ADMIN_SECRET, served

pytest.importorskip("schemathesis")

CHECKS_EXCLUDED = "positive_data_acceptance"


def test_the_openapi_document_describes_what_the_server_answers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    build_models(home)
    with served(home, tmp_path / "server.log") as (url, _proc):
        cmd = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{url}/openapi.json",
            "--checks",
            "all",
            "--exclude-checks",
            CHECKS_EXCLUDED,
            "-H",
            f"Authorization: Bearer {ADMIN_SECRET}",
            "--max-examples",
            "5",
            "--max-time",
            "25",
            "--seed",
            "7",
            "--workers",
            "1",
            "--generation-database",
            "none",
            "--no-color",
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
        log = (tmp_path / "server.log").read_text(errors="replace")
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    # the smaller budget still reaches every operation: "Selected: N/N" and "Tested: N" in the summary
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested, done.stdout[-3000:]
    assert int(tested.group(1)) == int(selected.group(1)) == int(selected.group(2)), done.stdout[-3000:]
    assert "Traceback" not in log and "unhandled error" not in log, log[-5000:]
