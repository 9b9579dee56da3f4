"""CLI for governance: ``aiaas tenants ...``, ``aiaas keys ...``, ``aiaas usage``, ``aiaas audit``.

The commands work on the database directly through ``GovernanceAdmin`` (no running server needed), acting
as the bootstrap admin: whoever can run them can already read the database. The database is the one the
server uses: ``--home`` (default $AIAAS_HOME or ~/.aiaas) and ``AIAAS_DATABASE_URL``. Register with
``register(app)`` or add ``tenants_app``, ``keys_app``, ``usage`` and ``audit`` to the main Typer app.

The listings (``tenants list``, ``keys list``, ``usage``, ``audit``) first ask a running server of the same home
(its ``/v1`` management API, authenticated with the home's admin key) and print the same rows; only when none
answers them (no server, or a server that refuses this home's key) do they open the database, which costs
SQLAlchemy, the store and its migrations at start. The service imports stay inside the functions, so
``aiaas keys --help`` imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from aiaas.cli.lazy import LeanGroup
from aiaas.cli.output import JsonOpt, print_json
from aiaas.errors import AiaasError, InvalidInput

if TYPE_CHECKING:
    from aiaas.service.governance.admin import GovernanceAdmin
    from aiaas.service.governance.base import Principal
    from aiaas.settings import Settings
    from aiaas.store.db import Store

console = Console()
tenants_app = typer.Typer(help="Manage tenants.", no_args_is_help=True, cls=LeanGroup)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True, cls=LeanGroup)

HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home (default: $AIAAS_HOME or ~/.aiaas)")]


def _settings(home: Path | None) -> Settings:
    from aiaas.settings import Settings

    return Settings(home=home) if home is not None else Settings()


@contextmanager
def _admin(home: Path | None) -> Iterator[GovernanceAdmin]:
    """Open the store (migrating it), yield the admin service, and turn service errors into exit code 1."""
    from aiaas.service.governance.admin import GovernanceAdmin
    from aiaas.store.db import Store

    settings = _settings(home)
    store: Store | None = None
    try:
        store = Store(settings.effective_database_url)
        store.upgrade()
        admin = GovernanceAdmin(store)
        admin.ensure_system_tenant()
        yield admin
    except AiaasError as exc:
        console.print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    finally:
        if store is not None:
            store.dispose()


def _listing(home: Path | None, path: str, params: dict[str, Any], read: Callable[[GovernanceAdmin], Any]) -> Any:
    """What a running server of this home answers to ``GET path`` (the ``data`` of a list); else ``read`` on the
    database. Any answer but 200 goes to the database too, which gives the same rows and the same errors."""
    from aiaas.cli.http import call, local

    server = local(home)  # no admin key: no server of this home can be asked
    answer = call(server.url, "GET", path, key=server.admin_key, params=params) if server.admin_key else None
    if answer is not None and answer.status == 200 and isinstance(answer.body, dict):
        return answer.body["data"] if answer.body.get("object") == "list" else answer.body
    with _admin(home) as admin:
        return read(admin)


def _cli() -> Principal:
    """The bootstrap admin the commands act as on the database (imported here: it pulls SQLAlchemy)."""
    from aiaas.service.governance.admin import CLI_PRINCIPAL

    return CLI_PRINCIPAL


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if row.get(c) is None else _fmt(row.get(c)) for c in columns))
    console.print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def parse_budget(text: str) -> tuple[float, str]:
    """``10/month`` -> (10.0, "month"); a bare number means per month."""
    from aiaas.service.governance.validation import PERIODS, check_number

    amount, _, period = text.partition("/")
    period = period.strip() or "month"
    try:
        value = float(amount)
    except ValueError:
        raise InvalidInput(f"invalid budget {text!r}: expected AMOUNT[/day|month|total], e.g. 10/month") from None
    if period not in PERIODS:
        raise InvalidInput(f"invalid budget period {period!r}: expected one of {', '.join(PERIODS)}")
    check_number(value, "budget")
    return value, period


# --- tenants ---------------------------------------------------------------------------------------------
@tenants_app.command("create")
def tenants_create(name: str, home: HomeOpt = None) -> None:
    """Create a tenant."""
    with _admin(home) as admin:
        info = admin.create_tenant(_cli(), name)
    console.print(f"created tenant [bold]{info['id']}[/bold]")


@tenants_app.command("list")
def tenants_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List tenants."""
    rows = _listing(home, "/v1/tenants", {}, lambda admin: admin.list_tenants(_cli()))
    if as_json:
        return print_json(rows)
    _table("tenants", rows, ["id", "active_keys", "created_at"])


@tenants_app.command("delete")
def tenants_delete(
    name: str, yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False, home: HomeOpt = None
) -> None:
    """Delete a tenant with its keys, grants, limits and budgets (usage history stays)."""
    if not yes:
        typer.confirm(f"delete tenant {name!r} and all its keys?", abort=True)
    with _admin(home) as admin:
        info = admin.delete_tenant(_cli(), name)
    console.print(f"deleted tenant [bold]{name}[/bold] and {info['deleted_keys']} key(s)")


# --- keys ------------------------------------------------------------------------------------------------
@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="tenant that owns the key")],
    role: Annotated[str, typer.Option(help="admin | developer | user")] = "user",
    name: Annotated[str | None, typer.Option(help="a label for the key")] = None,
    rpm: Annotated[int | None, typer.Option(help="requests per minute")] = None,
    upm: Annotated[float | None, typer.Option(help="units per minute")] = None,
    concurrency: Annotated[int | None, typer.Option(help="requests in flight")] = None,
    budget: Annotated[str | None, typer.Option(help="spending limit, e.g. 10/month, 1/day, 100/total")] = None,
    models: Annotated[str | None, typer.Option(help="comma-separated model allow-list")] = None,
    expires_days: Annotated[float | None, typer.Option(help="expire after this many days")] = None,
    home: HomeOpt = None,
) -> None:
    """Create an API key; its secret is printed once and cannot be shown again."""
    from aiaas.service.governance.validation import check_number

    with _admin(home) as admin:
        parsed_budget = parse_budget(budget) if budget else None
        for value, param in ((rpm, "rpm"), (upm, "upm"), (concurrency, "concurrency")):
            check_number(value, param)
        allow = [m.strip() for m in models.split(",") if m.strip()] if models else None
        info = admin.create_key(_cli(), tenant, role, name=name, models=allow, expires_days=expires_days)
        if rpm is not None or upm is not None or concurrency is not None:
            admin.set_limits(_cli(), "key", info["id"], rpm=rpm, upm=upm, concurrency=concurrency)
        if parsed_budget is not None:
            admin.set_budget(_cli(), "key", info["id"], amount=parsed_budget[0], period=parsed_budget[1])
    _table("key", [info], ["id", "tenant", "role", "models", "expires_at"])
    console.print("[yellow]API key (shown once, store it now):[/yellow]")
    console.print(info["key"], soft_wrap=True, highlight=False)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's keys")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (never their secrets)."""
    rows = _listing(home, "/v1/keys", {"tenant": tenant}, lambda admin: admin.list_keys(_cli(), tenant))
    if as_json:
        return print_json(rows)
    _table("API keys", rows, ["id", "tenant", "role", "name", "status", "models", "created_at", "expires_at"])


@keys_app.command("revoke")
def keys_revoke(key_id: str, home: HomeOpt = None) -> None:
    """Revoke a key (running servers stop accepting it within their key cache TTL, 5 s by default)."""
    with _admin(home) as admin:
        admin.revoke_key(_cli(), key_id)
    console.print(f"revoked key [bold]{key_id}[/bold]")


@keys_app.command("rotate")
def keys_rotate(key_id: str, home: HomeOpt = None) -> None:
    """Replace a key by a new one with the same settings; the old one is revoked."""
    with _admin(home) as admin:
        info = admin.rotate_key(_cli(), key_id)
    console.print(f"rotated key [bold]{key_id}[/bold] -> [bold]{info['id']}[/bold]; the old key is revoked")
    console.print("[yellow]new API key (shown once, store it now):[/yellow]")
    console.print(info["key"], soft_wrap=True, highlight=False)


# --- usage and audit -------------------------------------------------------------------------------------
def usage(
    tenant: Annotated[str | None, typer.Option("--tenant", help="one tenant (default: all)")] = None,
    group_by: Annotated[str, typer.Option("--group-by", help="model | key | day")] = "model",
    start: Annotated[str | None, typer.Option(help="ISO date/time (default: 30 days ago)")] = None,
    end: Annotated[str | None, typer.Option(help="ISO date/time, exclusive (default: now)")] = None,
    key: Annotated[str | None, typer.Option("--key", help="one key")] = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show metered usage and cost."""
    params: dict[str, Any] = {"tenant": tenant, "start": start, "end": end, "group_by": group_by, "key": key}
    result = _listing(home, "/v1/usage", params, lambda admin: admin.usage(_cli(), **params))
    if as_json:
        return print_json(result)
    columns = [group_by, "requests", "errors", "units_in", "units_out", "compute_s", "cost", "avg_latency_ms"]
    _table(f"usage of {tenant or 'all tenants'} since {result['start']}", result["data"], columns)


def audit(
    tenant: Annotated[str | None, typer.Option("--tenant", help="one tenant (default: all)")] = None,
    action: Annotated[str | None, typer.Option(help="e.g. key.create")] = None,
    limit: Annotated[int, typer.Option(help="newest N rows")] = 50,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit trail, newest first."""
    params: dict[str, Any] = {"tenant": tenant, "action": action, "limit": limit}
    rows = _listing(home, "/v1/audit", params, lambda admin: admin.audit(_cli(), **params))
    if as_json:
        return print_json(rows)
    _table("audit log", rows, ["at", "actor_key", "tenant", "action", "target", "details"])


def register(app: typer.Typer) -> None:
    """Add every governance command to the main CLI."""
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")
    commands: list[tuple[str, Callable[..., None]]] = [("usage", usage), ("audit", audit)]
    for name, command in commands:
        app.command(name)(command)
