from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from aiaas.cli.governance import register
from aiaas.service.governance.admin import CLI_PRINCIPAL, GovernanceAdmin
from aiaas.service.governance.usage import UsageRow, UsageWriter
from aiaas.store.db import Store
from aiaas.store.models import ApiKey

app = typer.Typer()
register(app)
runner = CliRunner()
ENV = {"COLUMNS": "250", "AIAAS_DATABASE_URL": ""}
KEY_RE = re.compile(r"aiaas-([0-9a-f]{12})-\S+")


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env={**ENV, **(env or {})})
    assert result.exit_code == 0, result.output
    return result.output


def test_tenants_and_keys(tmp_path: Path) -> None:
    home = ["--home", str(tmp_path)]
    assert "created tenant acme" in run("tenants", "create", "acme", *home)
    assert "acme" in run("tenants", "list", *home)
    out = run(
        "keys",
        "create",
        "--tenant",
        "acme",
        "--role",
        "developer",
        "--rpm",
        "60",
        "--upm",
        "1000",
        "--concurrency",
        "4",
        "--budget",
        "10/month",
        "--models",
        "a,b",
        "--expires-days",
        "30",
        *home,
    )
    match = KEY_RE.search(out)
    assert match, out
    secret, key_id = match.group(0), match.group(1)
    assert out.count(secret) == 1  # printed exactly once
    store = Store(f"sqlite:///{tmp_path / 'aiaas.db'}")
    try:
        with store.session() as session:
            row = session.get(ApiKey, key_id)
            assert row is not None and row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
            assert row.allowed_models == ["a", "b"] and row.expires_at is not None
        admin = GovernanceAdmin(store)
        assert admin.get_limits(CLI_PRINCIPAL, "key", key_id)["concurrency"] == 4
        budget = admin.get_budget(CLI_PRINCIPAL, "key", key_id)
        assert (budget["limit"], budget["period"]) == (10.0, "month")
        listed = run("keys", "list", "--tenant", "acme", *home)
        assert key_id in listed and secret.split("-", 2)[2] not in listed  # the whole secret part (it may hold "-")
        rotated = run("keys", "rotate", key_id, *home)
        new = KEY_RE.search(rotated)
        assert new and new.group(1) != key_id
        assert f"revoked key {new.group(1)}" in run("keys", "revoke", new.group(1), *home)
        with store.session() as session:
            statuses = {r.id: r.revoked_at is not None for r in session.scalars(select(ApiKey))}
        assert statuses[key_id] and statuses[new.group(1)]
        audit = run("audit", *home)
        assert "key.rotate" in audit and "tenant.create" in audit
        assert "deleted tenant acme and 2 key(s)" in run("tenants", "delete", "acme", "--yes", *home)
    finally:
        store.dispose()


@pytest.mark.anyio
async def test_usage_table(tmp_path: Path) -> None:
    run("tenants", "create", "acme", "--home", str(tmp_path))
    store = Store(f"sqlite:///{tmp_path / 'aiaas.db'}")
    writer = UsageWriter(store)
    for model in ("resnet", "resnet", "whisper"):
        writer.record(UsageRow("acme", "k1", model, "1", "infer", 200, 5.0, 10, 1, 0.1, 0.25))
    await writer.flush()
    store.dispose()
    out = run("usage", "--tenant", "acme", "--group-by", "model", "--home", str(tmp_path))
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "resnet" in lines and "whisper" in lines
    assert re.search(r"│\s*2\s*│", lines["resnet"]) and "0.5" in lines["resnet"]


def test_errors_exit_nonzero_and_database_url_is_respected(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.db"
    env = {"AIAAS_DATABASE_URL": f"sqlite:///{other}"}
    run("tenants", "create", "viaenv", "--home", str(tmp_path / "home"), env=env)
    assert other.exists() and not (tmp_path / "home" / "aiaas.db").exists()
    result = runner.invoke(app, ["tenants", "create", "../evil", "--home", str(tmp_path)], env=ENV)
    assert result.exit_code == 1 and "invalid name" in result.output
    result = runner.invoke(app, ["keys", "create", "--tenant", "ghost", "--home", str(tmp_path)], env=ENV)
    assert result.exit_code == 1 and "tenant 'ghost' not found" in result.output
    result = runner.invoke(
        app, ["keys", "create", "--tenant", "viaenv", "--budget", "5/week", "--home", str(tmp_path)], env={**ENV, **env}
    )
    assert result.exit_code == 1 and "budget period" in result.output
