"""``--version``, ``--json`` on listings, a taken port reported at once, and no traceback for mistakes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from aiaas.cli.main import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


def aiaas(*args: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIAAS_HOME": str(home), "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "aiaas.cli.main", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_version() -> None:
    from aiaas import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"aiaas {__version__}"


def test_taken_port_is_reported_before_anything_loads(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = aiaas("serve", "--port", str(port), "--catalog", "none", home=tmp_path / "home")
    assert r.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in " ".join(r.stderr.split()), r.stderr
    assert not (tmp_path / "home" / "admin.key").exists()  # nothing was set up


def test_user_mistakes_print_one_line_not_a_traceback(tmp_path: Path) -> None:
    r = aiaas("keys", "create", "--tenant", "acme", "--budget", "lots", home=tmp_path / "home")
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    assert "invalid budget 'lots': expected AMOUNT[/day|month|total]" in r.stdout + r.stderr


def test_a_wrong_setting_names_the_variable_and_the_choices(tmp_path: Path) -> None:
    env = {**os.environ, "AIAAS_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "AIAAS_GOVERNANCE": "sometimes"}
    r = subprocess.run(
        [sys.executable, "-m", "aiaas.cli.main", "serve", "--catalog", "none"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr + r.stdout
    assert "AIAAS_GOVERNANCE: Input should be 'db' or 'off' (got 'sometimes')" in r.stderr


def test_listings_print_json_for_scripts(tmp_path: Path, dead_url: str) -> None:
    result = runner.invoke(app, ["models", "list", "--home", str(tmp_path), "--url", dead_url, "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == []
    result = runner.invoke(app, ["catalog", "list", "--home", str(tmp_path), "--json"])
    rows = json.loads(result.output)
    fashion = next(r for r in rows if r["name"] == "fashion-cnn")
    assert fashion["state"] in ("not built", "unavailable") and fashion["floors"][0]["metric"] == "accuracy"
    assert fashion["license"] and fashion["source"]


def test_catalog_list_fits_80_columns(tmp_path: Path) -> None:
    result = runner.invoke(app, ["catalog", "list", "--home", str(tmp_path)], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert "fashion-cnn" in result.output


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    """Start-up time is import time: `aiaas --help` must not load the database, HTTP or settings stacks (the
    commands that need them import them when they run)."""
    code = (
        "import sys; sys.argv = ['aiaas', '--help']\n"
        "try:\n    import aiaas.cli.main as m; m.app()\nexcept SystemExit:\n    pass\n"
        "heavy = [n for n in ('sqlalchemy', 'httpx', 'pydantic_settings', 'aiaas.settings', 'numpy', 'torch')"
        " if n in sys.modules]\nprint('HEAVY', heavy)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
    )
    assert "HEAVY []" in r.stdout, r.stdout[-300:] + r.stderr[-500:]
    assert "optimizations" in r.stdout and "chat" in r.stdout  # lazy commands are listed all the same
