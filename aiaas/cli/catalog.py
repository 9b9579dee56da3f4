"""``aiaas catalog list|build``: the built-in scenario models, their measured quality against their floors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from aiaas.settings import Settings

catalog_app = typer.Typer(help="The built-in scenario catalog.", no_args_is_help=True)
console = Console()

HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home; env AIAAS_HOME")]


def _repo(home: Path | None) -> Any:
    from aiaas.registry import ModelRepository

    settings = Settings(home=home) if home else Settings()
    repo = ModelRepository(settings.models_dir)
    repo.ensure()
    return repo


def _fmt(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


@catalog_app.command("list")
def catalog_list(home: HomeOpt = None) -> None:
    """Every catalog model: state, measured metric next to its floor, source and licence."""
    from aiaas.catalog.builder import status
    from aiaas.catalog.registry import all_specs

    repo = _repo(home)
    table = Table(title="aiaas catalog")
    for col in ("name", "scenario", "task", "state", "metric (measured vs floor)", "source", "licence"):
        table.add_column(col, overflow="fold")
    for spec in all_specs().values():
        st = status(spec, repo, quick=True)  # a quick build counts as built here; the label says so
        color = {"built": "green", "unavailable": "red", "failed": "red"}.get(st.state, "yellow")
        lines = []
        for f in spec.floors:
            measured = (st.metrics or {}).get(f.metric)
            ok = f.holds(measured if isinstance(measured, (int, float)) else None)
            mark = "" if ok is None else (" [green]PASS[/green]" if ok else " [red]MISS[/red]")
            lines.append(f"{f.metric} {_fmt(measured) if measured is not None else '-'} ({f.op} {f.value:g}){mark}")
        state = st.state + (" (quick)" if st.quick else "") + (f"\n{st.detail}" if st.detail else "")
        table.add_row(spec.name, spec.scenario, spec.task, f"[{color}]{state}[/{color}]", "\n".join(lines) or "-",
                      spec.source, spec.license)
    console.print(table)


@catalog_app.command("build")
def catalog_build(
    names: Annotated[list[str] | None, typer.Argument(help="models to build (default: all)")] = None,
    home: HomeOpt = None,
    quick: Annotated[bool, typer.Option(help="few epochs / small data (what CI checks)")] = False,
    force: Annotated[bool, typer.Option(help="rebuild models that are already built")] = False,
) -> None:
    """Train, export and evaluate catalog models into the repository, with a progress bar per model."""
    from aiaas.catalog.builder import build, status
    from aiaas.catalog.registry import select

    repo = _repo(home)
    try:
        specs = select(names or None)
    except ValueError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    failed = 0
    with Progress(TextColumn("{task.fields[name]:<22}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), TextColumn("{task.description}"), console=console) as bar:
        for spec in specs:
            task = bar.add_task("", total=1.0, name=spec.name)
            st = status(spec, repo, quick)
            if st.state == "built" and not force:
                bar.update(task, completed=1.0, description=f"[green]up to date[/green] ({st.detail})")
                continue

            def progress(frac: float, msg: str, task: TaskID = task) -> None:
                bar.update(task, completed=max(0.0, min(1.0, frac)), description=msg)

            st = build(spec, repo, quick, progress)
            color = "green" if st.state == "built" else "red"
            bar.update(task, completed=1.0, description=f"[{color}]{st.state}[/{color}] {st.detail}")
            failed += st.state != "built"
    catalog_list(home)
    if failed:
        raise typer.Exit(1)
