"""Start-up cost is import cost: ``--help`` of every command and the listings against a running server must not
import the database, numeric, model-runtime or catalog stacks (each CLI call paid ~1.7 s for them), nor
pydantic-settings (``Settings``: ~0.1 s); ``--help`` not even pydantic. The listings read the same rows from the
server as from the database, so their output does not depend on which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner
from v2kit import ServerProcess

from aiaas.cli.http import DEFAULT_HOST, DEFAULT_PORT, local
from aiaas.cli.main import app
from aiaas.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "sqlalchemy",
    "alembic",
    "numpy",
    "onnxruntime",
    "torch",
    "aiaas.store",
    "aiaas.catalog",
    "aiaas.client",
    "aiaas.registry",
    "httpx",
    "pydantic_settings",
    "aiaas.settings",
    "asyncio",
)
# Typer 0.29 coerces option values through pydantic, so a command that runs imports it; --help must not
# (aiaas.cli.lazy.LeanGroup: an unset --help of a group reads False, which Typer passes without pydantic)
HELP_HEAVY = (*HEAVY, "pydantic")
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
HELP = [
    ["--help"],
    ["models", "--help"],
    ["models", "list", "--help"],
    ["keys", "--help"],
    ["keys", "list", "--help"],
    ["keys", "create", "--help"],
    ["tenants", "--help"],
    ["tenants", "list", "--help"],
    ["usage", "--help"],
    ["audit", "--help"],
    ["jobs", "--help"],
    ["jobs", "list", "--help"],
    ["files", "list", "--help"],
    ["catalog", "--help"],
    ["catalog", "list", "--help"],
    ["optimizations", "--help"],
    ["run", "--help"],
    ["chat", "--help"],
    ["ps", "--help"],
    ["optimize", "--help"],
    ["serve", "--help"],
    ["files", "--help"],
    ["models", "replicas", "--help"],
    ["optimizations", "list", "--help"],
]


def probe(commands: list[list[str]], env: dict[str, str], heavy: tuple[str, ...] = HEAVY) -> dict[str, list[str]]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands), json.dumps(heavy)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "COLUMNS": "100"},
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert last.startswith("PROBE "), r.stdout[-500:] + r.stderr[-1500:]
    seen: dict[str, list[str]] = json.loads(last[len("PROBE ") :])
    return seen


def test_help_of_every_command_imports_nothing_heavy(tmp_path: Path) -> None:
    seen = probe(HELP, {"AIAAS_HOME": str(tmp_path)}, HELP_HEAVY)
    assert seen == {" ".join(c): [] for c in HELP}


def _json(args: list[str], home: Path, port: int) -> object:
    r = subprocess.run(
        [sys.executable, "-m", "aiaas.cli.main", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIAAS_HOME": str(home), "AIAAS_PORT": str(port), "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr[-1500:]
    return json.loads(r.stdout)


def test_listings_ask_the_running_server_and_print_what_the_database_holds(
    server: ServerProcess, dead_url: str
) -> None:
    home = server.home
    for args in (["tenants", "create", "acme"], ["keys", "create", "--tenant", "acme", "--budget", "5/month"]):
        assert CliRunner().invoke(app, [*args, "--home", str(home)]).exit_code == 0
    listings = [
        ["keys", "list"],
        ["keys", "list", "--tenant", "acme"],
        ["tenants", "list"],
        ["usage"],
        ["usage", "--group-by", "key", "--tenant", "acme"],
        ["audit", "--limit", "5"],
        ["models", "list"],
        ["jobs", "list"],
        ["files", "list"],
        ["optimizations", "list"],
        ["ps", "--interval", "0"],
    ]
    seen = probe(listings, {"AIAAS_HOME": str(home), "AIAAS_PORT": str(server.port)})
    assert seen == {" ".join(c): [] for c in listings}  # no SQLAlchemy, store, httpx nor Settings: the server answered

    dead_port = int(dead_url.rsplit(":", 1)[1])  # no server there: the same commands open the database
    for args in (["keys", "list"], ["tenants", "list"], ["audit", "--limit", "5"]):
        assert _json(args, home, server.port) == _json(args, home, dead_port), args
    usage = ["usage", "--tenant", "acme", "--start", "2020-01-01", "--end", "2100-01-01"]  # not "30 days ago"
    assert _json(usage, home, server.port) == _json(usage, home, dead_port)
    keys = _json(["keys", "list", "--tenant", "acme"], home, server.port)
    assert isinstance(keys, list) and [k["tenant"] for k in keys] == ["acme"]


def test_a_listing_the_server_refuses_falls_back_to_the_database_and_its_error(server: ServerProcess) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "aiaas.cli.main", "usage", "--group-by", "colour"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIAAS_HOME": str(server.home), "AIAAS_PORT": str(server.port), "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 1 and "error:" in r.stdout and "colour" in r.stdout, r.stdout + r.stderr[-800:]
    assert "Traceback" not in r.stdout + r.stderr


def test_local_assumes_the_defaults_of_settings() -> None:
    assert (Settings.model_fields["host"].default, Settings.model_fields["port"].default) == (
        DEFAULT_HOST,
        DEFAULT_PORT,
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"AIAAS_PORT": "8123", "AIAAS_HOST": "0.0.0.0"},
        {"aiaas_port": "8124", "AIAAS_HOME": "/srv/aiaas"},
        {"AIAAS_ADMIN_KEY": "from-env"},
        {"AIAAS_PORT": "08125"},
    ],
)
def test_local_server_is_the_one_settings_configures(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI finds the server and its admin key without Settings; it must find the same ones."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    found = local(None)
    assert (found.home, found.url) == (settings.home, f"http://{settings.host}:{settings.port}")
    assert found.admin_key == settings.admin_key  # None unless set: no admin.key in these homes
    (tmp_path / "admin.key").write_text("from-file\n")
    assert local(tmp_path).admin_key == (settings.admin_key or "from-file")


@pytest.mark.parametrize("env", [{"AIAAS_PORT": "eighty"}, {"AIAAS_PORT": ""}, {"AIAAS_PORT": "1", "aiaas_port": "2"}])
def test_values_settings_might_read_differently_are_left_to_settings(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    try:
        settings = Settings()
    except ValueError as e:  # pydantic's ValidationError: local() raises the same one
        with pytest.raises(type(e)):
            local(None)
    else:
        assert local(None).url == f"http://{settings.host}:{settings.port}"
