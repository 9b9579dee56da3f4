"""Start-up cost is import cost: ``--help`` of every command and the listings against a running server must not
import the database, numeric, model-runtime or catalog stacks (each CLI call paid ~1.7 s for them). The
listings read the same rows from the server as from the database, so their output does not depend on which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner
from v2kit import ServerProcess

from aiaas.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("sqlalchemy", "alembic", "numpy", "onnxruntime", "torch", "aiaas.store", "aiaas.catalog", "aiaas.client",
         "aiaas.registry", "httpx")  # fmt: skip
# Runs each command in turn in one interpreter and records the heavy modules loaded after each: the first
# command that shows one is the culprit. Printed last, on a line of its own.
PROBE = """
import json, sys
import aiaas.cli.main as m
seen = {}
for args in json.loads(sys.argv[1]):
    try:
        m.app(args=args, prog_name="aiaas")
    except SystemExit:
        pass
    seen[" ".join(args)] = sorted(n for n in json.loads(sys.argv[2]) if n in sys.modules)
print("\\nPROBE " + json.dumps(seen))
"""
HELP = [["--help"], ["models", "--help"], ["models", "list", "--help"], ["keys", "--help"], ["keys", "list", "--help"],
        ["keys", "create", "--help"], ["tenants", "--help"], ["tenants", "list", "--help"], ["usage", "--help"],
        ["audit", "--help"], ["jobs", "--help"], ["jobs", "list", "--help"], ["files", "list", "--help"],
        ["catalog", "--help"], ["catalog", "list", "--help"], ["optimizations", "--help"]]  # fmt: skip


def probe(commands: list[list[str]], env: dict[str, str]) -> dict[str, list[str]]:
    r = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands), json.dumps(HEAVY)], capture_output=True,
                       text=True, timeout=120, env={**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "100"})  # fmt: skip
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert last.startswith("PROBE "), r.stdout[-500:] + r.stderr[-1500:]
    seen: dict[str, list[str]] = json.loads(last[len("PROBE ") :])
    return seen


def test_help_of_every_command_imports_nothing_heavy(tmp_path: Path) -> None:
    seen = probe(HELP, {"AIAAS_HOME": str(tmp_path)})
    assert seen == {" ".join(c): [] for c in HELP}


def _json(args: list[str], home: Path, port: int) -> object:
    r = subprocess.run([sys.executable, "-m", "aiaas.cli.main", *args, "--json"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "AIAAS_HOME": str(home), "AIAAS_PORT": str(port),
                                         "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 0, r.stderr[-1500:]
    return json.loads(r.stdout)


def test_listings_ask_the_running_server_and_print_what_the_database_holds(server: ServerProcess, dead_url: str) -> None:
    home = server.home
    for args in (["tenants", "create", "acme"], ["keys", "create", "--tenant", "acme", "--budget", "5/month"]):
        assert CliRunner().invoke(app, [*args, "--home", str(home)]).exit_code == 0
    listings = [["keys", "list"], ["keys", "list", "--tenant", "acme"], ["tenants", "list"], ["usage"],
                ["usage", "--group-by", "key", "--tenant", "acme"], ["audit", "--limit", "5"], ["models", "list"]]  # fmt: skip
    seen = probe(listings, {"AIAAS_HOME": str(home), "AIAAS_PORT": str(server.port)})
    assert seen == {" ".join(c): [] for c in listings}  # no SQLAlchemy, store or httpx: the server answered

    dead_port = int(dead_url.rsplit(":", 1)[1])  # no server there: the same commands open the database
    for args in (["keys", "list"], ["tenants", "list"], ["audit", "--limit", "5"]):
        assert _json(args, home, server.port) == _json(args, home, dead_port), args
    usage = ["usage", "--tenant", "acme", "--start", "2020-01-01", "--end", "2100-01-01"]  # not "30 days ago"
    assert _json(usage, home, server.port) == _json(usage, home, dead_port)
    keys = _json(["keys", "list", "--tenant", "acme"], home, server.port)
    assert isinstance(keys, list) and [k["tenant"] for k in keys] == ["acme"]


def test_a_listing_the_server_refuses_falls_back_to_the_database_and_its_error(server: ServerProcess) -> None:
    r = subprocess.run([sys.executable, "-m", "aiaas.cli.main", "usage", "--group-by", "colour"], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "AIAAS_HOME": str(server.home),
                                                    "AIAAS_PORT": str(server.port), "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert r.returncode == 1 and "error:" in r.stdout and "colour" in r.stdout, r.stdout + r.stderr[-800:]
    assert "Traceback" not in r.stdout + r.stderr
