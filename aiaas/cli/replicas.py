"""CLI: ``aiaas models replicas M`` and ``aiaas models scale M N`` (over HTTP, against the running server)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from aiaas.cli.jobs import HomeOpt, KeyOpt, UrlOpt, _Server

console = Console()
_COLORS = {"ready": "green", "failed": "red", "stopped": "red"}


def print_replicas(doc: dict[str, Any]) -> None:
    table = Table(title=f"replicas of {doc['model']}")
    for col in (
        "id",
        "version",
        "placement",
        "node",
        "pid",
        "state",
        "started",
        "batches",
        "rows",
        "ms/batch",
        "restarts",
        "last error",
    ):
        table.add_column(col)
    for r in doc["replicas"]:
        color = _COLORS.get(r["state"], "yellow")
        started = datetime.fromtimestamp(r["started_at"], UTC).strftime("%H:%M:%S") if r.get("started_at") else ""
        node = r["node"] if r["node"] == r.get("host") else f"{r['node'][:12]} ({r.get('host')})"
        table.add_row(
            r["id"],
            str(r["version"]),
            r["placement"],
            node,
            str(r.get("pid") or ""),
            f"[{color}]{r['state']}[/{color}]",
            started,
            str(r["batches"]),
            str(r["rows"]),
            f"{r['batch_ms_avg']:.2f}",
            str(r["restarts"]),
            r.get("last_error", "")[:60],
        )
    console.print(table)


def register(app: typer.Typer, models_app: typer.Typer) -> None:  # app: the CLI's signature (aiaas.cli.lazy)
    @models_app.command("replicas")
    def replicas(model: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
        """A model's replicas: placement, node, pid, state, batches, restarts, last error."""
        print_replicas(_Server(url, api_key, home)("GET", f"/v1/models/{model}/replicas"))

    @models_app.command("scale")
    def scale(
        model: str,
        replicas: Annotated[int, typer.Argument(help="the replica count (new ones start before old ones retire)")],
        url: UrlOpt = None,
        api_key: KeyOpt = None,
        home: HomeOpt = None,
    ) -> None:
        """Change a model's replica count without dropping a request (admin, or the owning tenant's developer)."""
        t0 = time.monotonic()
        with console.status(f"scaling {model} to {replicas} replica(s)..."):
            doc = _Server(url, api_key, home)("POST", f"/v1/models/{model}/scale", json={"replicas": replicas})
        print_replicas(doc)
        console.print(f"{model}: {replicas} replica(s) in {time.monotonic() - t0:.1f}s")
