"""``aiaas catalog list|build``: the built-in scenario models, their measured quality against their floors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from aiaas.cli.lazy import LeanGroup
from aiaas.cli.output import JsonOpt, print_json

catalog_app = typer.Typer(help="The built-in scenario catalog.", no_args_is_help=True, cls=LeanGroup)
console = Console()

HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home; env AIAAS_HOME")]


def _repo(home: Path | None) -> Any:
    from aiaas.registry import ModelRepository
    from aiaas.settings import Settings

    settings = Settings(home=home) if home else Settings()
    repo = ModelRepository(settings.models_dir)
    repo.ensure()
    return repo


def _served(home: Path | None) -> dict[str, tuple[str, str]]:
    """Model -> (state, detail) from a running server's repository index; {} when none answers at once."""
    from aiaas.cli.http import call, local

    server = local(home)
    r = call(server.url, "POST", "/v2/repository/index", body={}, timeout=1.0, key=server.admin_key)
    if r is None or (r.status == 200 and not isinstance(r.body, list)):
        return {}
    rows: list[dict[str, Any]] = r.body if r.status == 200 else []
    out: dict[str, tuple[str, str]] = {}
    for row in rows:
        if row.get("state") == "READY":
            out[row["name"]] = ("served", f"version {row['version']} (server)")
        elif row["name"] not in out:
            out[row["name"]] = (row.get("state", "").lower() or "unknown", row.get("reason", ""))
    return out


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@catalog_app.command("list")
def catalog_list(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Every catalog model: state, measured metric next to its floor, source and licence."""
    from aiaas.registry.plugins import installed_catalog

    catalog = installed_catalog()
    repo = _repo(home)
    served = _served(home)
    rows: list[dict[str, Any]] = []
    for spec in catalog.specs().values():
        st = catalog.status(spec, repo, quick=True)  # a quick build counts as built here; the label says so
        if spec.name in served:  # what the running server says wins: "building", the version it serves
            st.state, st.detail = served[spec.name]
        floors = []
        for f in spec.floors:
            measured = (st.metrics or {}).get(f.metric)
            ok = f.holds(measured if isinstance(measured, (int, float)) else None)
            floors.append({"metric": f.metric, "measured": measured, "op": f.op, "floor": f.value, "holds": ok})
        rows.append(
            {
                "name": spec.name,
                "scenario": spec.scenario,
                "task": spec.task,
                "state": st.state,
                "quick": bool(st.quick),
                "detail": st.detail,
                "floors": floors,
                "source": spec.source,
                "license": spec.license,
            }
        )
    if as_json:
        return print_json(rows)
    # Fits 80 columns: name, state, metric; the source and licence are on each model's card and in --json.
    table = Table(title="aiaas catalog", caption="source and licence: --json, or the model's card")
    table.add_column("name", no_wrap=True)
    table.add_column("state", overflow="fold", max_width=24)
    table.add_column("measured vs floor", overflow="fold")
    for r in rows:
        color = {"built": "green", "served": "green", "unavailable": "red", "failed": "red"}.get(r["state"], "yellow")
        lines = []
        for f in r["floors"]:
            mark = "" if f["holds"] is None else (" [green]PASS[/green]" if f["holds"] else " [red]MISS[/red]")
            measured = _fmt(f["measured"]) if f["measured"] is not None else "-"
            lines.append(f"{f['metric']} {measured} ({f['op']} {f['floor']:g}){mark}")
        state = r["state"] + (" (quick)" if r["quick"] else "") + (f"\n{r['detail']}" if r["detail"] else "")
        table.add_row(f"{r['name']}\n[dim]{r['task']}[/dim]", f"[{color}]{state}[/{color}]", "\n".join(lines) or "-")
    console.print(table)


@catalog_app.command("build")
def catalog_build(
    names: Annotated[list[str] | None, typer.Argument(help="models to build (default: all)")] = None,
    home: HomeOpt = None,
    quick: Annotated[bool, typer.Option(help="few epochs / small data (what CI checks)")] = False,
    force: Annotated[bool, typer.Option(help="rebuild models that are already built")] = False,
) -> None:
    """Train, export and evaluate catalog models into the repository, with a progress bar per model."""
    from aiaas.registry.plugins import installed_catalog

    catalog = installed_catalog()
    repo = _repo(home)
    try:
        specs = catalog.select(names or None)
    except ValueError as e:
        console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    failed = 0
    with Progress(
        TextColumn("{task.fields[name]:<22}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
    ) as bar:
        for spec in specs:
            task = bar.add_task("", total=1.0, name=spec.name)
            st = catalog.status(spec, repo, quick)
            if st.state == "built" and not force:
                bar.update(task, completed=1.0, description=f"[green]up to date[/green] ({st.detail})")
                continue

            def progress(frac: float, msg: str, task: TaskID = task) -> None:
                bar.update(task, completed=max(0.0, min(1.0, frac)), description=msg)

            st = catalog.build(spec, repo, quick, progress)
            color = "green" if st.state == "built" else "red"
            bar.update(task, completed=1.0, description=f"[{color}]{st.state}[/{color}] {st.detail}")
            failed += st.state != "built"
    catalog_list(home)
    if failed:
        raise typer.Exit(1)
