"""CLI for training: ``aiaas files upload|list|show|delete`` and ``aiaas jobs create|list|show|cancel|watch``.

Unlike the governance commands these talk to the running server over HTTP (the server owns the job processes):
``--url`` (default ``http://AIAAS_HOST:AIAAS_PORT``) with ``--api-key`` (default: the admin key of ``--home``,
read with ``read_admin_key``). ``jobs create --file`` takes a file id, or a local path that is uploaded first.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from aiaas.cli.lazy import LeanGroup
from aiaas.cli.output import JsonOpt, print_json
from aiaas.jobs.states import TERMINAL

if TYPE_CHECKING:
    import httpx

console = Console()
files_app = typer.Typer(
    help="Upload and manage training files (CSV, JSONL, NPZ, Parquet).", no_args_is_help=True, cls=LeanGroup
)
jobs_app = typer.Typer(help="Training jobs: create, list, show, cancel, watch.", no_args_is_help=True, cls=LeanGroup)

UrlOpt = Annotated[str | None, typer.Option("--url", help="server URL (default http://AIAAS_HOST:AIAAS_PORT)")]
KeyOpt = Annotated[str | None, typer.Option("--api-key", help="API key (default: the admin key of --home)")]
HomeOpt = Annotated[Path | None, typer.Option("--home", help="aiaas home, for the default URL and admin key")]


class _Server:
    """The server at ``--url`` (default: this environment's) with ``--api-key`` (default: the admin key of
    ``--home``); an error answer becomes a red message and exit code 1. JSON calls go through the standard
    library (``aiaas.cli.http``: listings start fast); uploads and streams through httpx, imported for them."""

    def __init__(self, url: str | None, api_key: str | None, home: Path | None, timeout: float = 600.0) -> None:
        from aiaas.cli.http import local

        server = local(home)
        key = api_key if api_key is not None else server.admin_key
        if not key:
            raise _fail("no API key: pass --api-key, or --home of a server whose admin.key you can read")
        self.base, self.key, self.timeout = (url or server.url).rstrip("/"), key, timeout
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """An httpx client on the same URL and key, for uploads and streamed answers."""
        if self._http is None:
            import httpx  # here, not at the top: `aiaas jobs --help` and the listings do not pay for it

            self._http = httpx.Client(
                base_url=self.base, headers={"Authorization": f"Bearer {self.key}"}, timeout=self.timeout
            )
        return self._http

    def __call__(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        """``method path`` with query ``params`` and a JSON body; the decoded answer (JSON, else text)."""
        if self._http is not None:  # an httpx client is open already (after an upload): reuse its connection
            return self._httpx(method, path, params=params, json=json)
        from aiaas.cli.http import call

        r = call(self.base, method, path, key=self.key, params=params, body=json, timeout=self.timeout)
        if r is None:
            raise _fail(f"cannot reach the server at {self.base}")
        if r.status >= 400:
            raise _fail(f"{r.error_message()} (HTTP {r.status})")
        return r.body

    def upload(self, path: Path) -> dict[str, Any]:
        with path.open("rb") as f:  # httpx streams the file object; it is never read whole
            info: dict[str, Any] = self._httpx(
                "POST",
                "/v1/files",
                files={"file": (path.name, f, "application/octet-stream")},
                data={"purpose": "training"},
            )
        return info

    def _httpx(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as e:
            raise _fail(f"cannot reach the server at {self.base}: {e}") from None
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                message = err["message"] if isinstance(err, dict) else str(err)
            except (ValueError, KeyError, TypeError):
                message = r.text[:500]
            raise _fail(f"{message} (HTTP {r.status_code})")
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


def _when(ts: float | None) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(ts)) if ts else ""


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def _eta(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds < 0:
        return "-"
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def parse_hp(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; a value is JSON when it parses (3, 0.1, [16,16], true), else a string."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--hp {item!r}: expected key=value, e.g. --hp epochs=5")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


# -- files ----------------------------------------------------------------------------------------------
@files_app.command("upload")
def files_upload(
    path: Annotated[Path, typer.Argument(help="a .csv, .jsonl, .npz or .parquet file", exists=True, dir_okay=False)],
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Upload a training file; the server checks every line and prints the file id."""
    info = _Server(url, api_key, home).upload(path)
    console.print(
        f"uploaded [bold]{info['filename']}[/bold] as [green]{info['id']}[/green]: "
        f"{info['format']}, {info['rows']} rows, columns {', '.join(info['columns'])}"
    )


@files_app.command("list")
def files_list(
    limit: int = 50, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None, as_json: JsonOpt = False
) -> None:
    """Files of your tenant (all tenants for an admin), newest first."""
    page = _Server(url, api_key, home)("GET", "/v1/files", params={"limit": limit})
    if as_json:
        return print_json(page["data"])
    table = Table(title="files")
    table.add_column("id", no_wrap=True)
    for col in ("filename", "format", "rows", "bytes", "owner", "created"):
        table.add_column(col)
    for f in page["data"]:
        table.add_row(
            f["id"], f["filename"], f["format"], str(f["rows"]), str(f["bytes"]), f["owner"], _when(f["created_at"])
        )
    console.print(table)


@files_app.command("show")
def files_show(file_id: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
    """One file's summary (format, rows, column types, sha256)."""
    console.print_json(data=_Server(url, api_key, home)("GET", f"/v1/files/{file_id}"))


@files_app.command("delete")
def files_delete(file_id: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
    """Delete a file (jobs made from it keep their own copy)."""
    _Server(url, api_key, home)("DELETE", f"/v1/files/{file_id}")
    console.print(f"deleted {file_id}")


# -- jobs -----------------------------------------------------------------------------------------------
def _file_id(server: _Server, value: str) -> str:
    path = Path(value)
    if path.is_file():
        info = server.upload(path)
        console.print(f"uploaded {path.name} as [green]{info['id']}[/green] ({info['rows']} rows)")
        return str(info["id"])
    if value.startswith("file-"):
        return value
    raise _fail(f"{value!r} is neither a local file nor a file id (file-...)")


@jobs_app.command("create")
def jobs_create(
    recipe: Annotated[str, typer.Option(help="tabular | image | text | mf")],
    file: Annotated[str, typer.Option("--file", help="training data: a file id, or a local path to upload")],
    model: Annotated[str, typer.Option(help="target model; the result becomes its next version")],
    validation_file: Annotated[str | None, typer.Option("--validation-file", help="file id or local path")] = None,
    workers: Annotated[int, typer.Option(help="worker processes (DDP ranks)")] = 1,
    threads_per_worker: Annotated[int, typer.Option(help="torch threads in each worker")] = 1,
    hp: Annotated[list[str] | None, typer.Option("--hp", help="hyperparameter key=value (repeatable)")] = None,
    strategy: Annotated[str, typer.Option(help="ddp (horovod, zero where installed)")] = "ddp",
    zero_stage: Annotated[
        int | None, typer.Option("--zero-stage", help="ZeRO stage 1 or 2 (with --strategy zero)")
    ] = None,
    checkpoint_every: Annotated[int | None, typer.Option(help="checkpoint every N steps")] = None,
    keep_last: Annotated[int | None, typer.Option(help="checkpoints to keep")] = None,
    max_restarts: Annotated[int | None, typer.Option(help="worker-group restarts on failure")] = None,
    max_runtime: Annotated[float | None, typer.Option("--max-runtime", help="seconds for the whole job")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    priority: Annotated[int | None, typer.Option(help="higher runs first")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="then watch it until it finishes")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Start a training job."""
    server = _Server(url, api_key, home)
    body: dict[str, Any] = {
        "recipe": recipe,
        "model": model,
        "training_file": _file_id(server, file),
        "hyperparameters": parse_hp(hp or []),
        "resources": {"workers": workers, "threads_per_worker": threads_per_worker},
        "strategy": strategy,
    }
    if validation_file:
        body["validation_file"] = _file_id(server, validation_file)
    checkpoint = {k: v for k, v in (("every_n_steps", checkpoint_every), ("keep_last", keep_last)) if v is not None}
    if checkpoint:
        body["checkpoint"] = checkpoint
    for key, value in (
        ("max_restarts", max_restarts),
        ("max_runtime_s", max_runtime),
        ("seed", seed),
        ("priority", priority),
        ("zero_stage", zero_stage),
    ):
        if value is not None:
            body[key] = value
    job = server("POST", "/v1/training/jobs", json=body)
    if job["status"] == "failed":
        raise _fail(f"job {job['id']} failed: {job['reason']}")
    console.print(
        f"created job [bold]{job['id']}[/bold] ({job['status']}): {recipe} -> model {model}, {workers} worker(s)"
    )
    if watch:
        _watch(server, job["id"], 0.5)


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="only these states, e.g. running,queued")] = None,
    limit: int = 50,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Jobs of your tenant (all tenants for an admin), newest first."""

    def cells(j: dict[str, Any]) -> list[str]:
        p = j.get("progress") or {}
        prog = f"{p['step']}/{p['total_steps']}" if "step" in p else ""
        return [j["model"], str(j.get("model_version") or ""), j["recipe"], prog]

    print_job_table(
        _Server(url, api_key, home),
        "/v1/training/jobs",
        "training jobs",
        status,
        limit,
        ("model", "version", "recipe", "progress"),
        cells,
        as_json=as_json,
    )


def print_job_table(
    server: _Server,
    path: str,
    title: str,
    status: str | None,
    limit: int,
    columns: tuple[str, ...],
    cells: Callable[[dict[str, Any]], list[str]],
    out: Console | None = None,
    as_json: bool = False,
) -> None:
    """One page of jobs of any kind as a table: id, status (sub-status), the kind's own columns, owner, created."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = server("GET", path, params=params)
    if as_json:
        return print_json(page["data"])
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for col in ("status", *columns, "owner", "created"):
        table.add_column(col, overflow="fold")
    for j in page["data"]:
        status_text = j["status"] + (f" ({j['sub_status']})" if j.get("sub_status") else "")
        table.add_row(j["id"], status_text, *cells(j), str(j.get("owner") or ""), _when(j["created_at"]))
    (out or console).print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
    """Everything about one job, as JSON."""
    console.print_json(data=_Server(url, api_key, home)("GET", f"/v1/training/jobs/{job_id}"))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
    """Cancel a job: every worker process is stopped."""
    job = _Server(url, api_key, home)("POST", f"/v1/training/jobs/{job_id}/cancel")
    console.print(f"{job_id}: {job['status']}")


@jobs_app.command("watch")
def jobs_watch(
    job_id: str,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 0.5,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Follow a job: a live progress bar (step/total, loss, samples/s, ETA), its messages, the final metrics.
    Exits 0 when the job succeeds, 1 otherwise."""
    _watch(_Server(url, api_key, home), job_id, interval)


def poll_job(server: _Server, path: str, after: int, progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    """One look at a job (training or optimization, at ``path``): the job, and its message events after ``after``,
    printed above the progress bar. Returns (job, events page); the caller goes on from ``page["last_seq"]``."""
    job = server("GET", path)
    page = server("GET", f"{path}/events", params={"after": after, "limit": 1000, "type": "message"})
    for e in page["data"]:
        color = {"error": "red", "warning": "yellow"}.get(e["level"], "dim")
        progress.console.print(
            f"[{color}]{time.strftime('%H:%M:%S', time.localtime(e['ts']))} {e['message']}[/{color}]"
        )
    return job, page


def _watch(server: _Server, job_id: str, interval: float) -> None:
    columns = (
        TextColumn("[bold]{task.fields[phase]:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[rate]} samples/s"),
        TextColumn("ETA {task.fields[eta]}"),
    )
    after = 0
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(job_id, total=None, phase="", loss="-", rate="-", eta="-")
        while True:
            job, page = poll_job(server, f"/v1/training/jobs/{job_id}", after, progress)
            after = page["last_seq"]
            p = job.get("progress") or {}
            fields: dict[str, Any] = {"phase": job.get("sub_status") or job["status"]}
            if "step" in p:
                fields.update(
                    total=p.get("total_steps"),
                    completed=p["step"],
                    loss=_num(p.get("loss", "-")),
                    rate=f"{p.get('samples_per_s', 0):.0f}",
                    eta=_eta(p.get("eta_s")),
                )
            if job["status"] == "succeeded" and p.get("total_steps"):
                fields.update(completed=p["total_steps"], eta="0:00")
            progress.update(task, **fields)
            if job["status"] in TERMINAL and not page["has_more"]:
                break
            time.sleep(interval)
    _final(job)


def _final(job: dict[str, Any]) -> None:
    status = job["status"]
    if status != "succeeded":
        console.print(f"[red]job {job['id']} {status}[/red]: {job.get('reason') or ''}")
        raise typer.Exit(1)
    console.print(
        f"[green]job {job['id']} succeeded[/green]: model [bold]{job['model']}[/bold] version {job['model_version']}"
    )
    table = Table(title="final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in (job.get("metrics") or {}).items():
        table.add_row(k, _num(v))
    result = job.get("result") or {}
    for k in ("steps", "train_samples_per_s", "workers"):
        if k in result:
            table.add_row(k, _num(result[k]))
    console.print(table)
    console.print(f"call it: POST /v2/models/{job['model']}/versions/{job['model_version']}/infer")
