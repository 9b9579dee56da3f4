"""CLI for optimizations: ``aiaas optimize MODEL --passes ...``, ``aiaas models compare MODEL V1 V2`` and
``aiaas optimizations list|show|cancel|watch``.

Like ``aiaas jobs`` these talk to the running server over HTTP (``--url``, ``--api-key``; default the admin key
of ``--home``): the server owns the repository, the held-out sets, the tenancy and the job processes, and its
scheduler keeps an optimization's measurements from competing with training jobs for cores. ``models
compare`` is an optimization job too (``compare_version``): both versions are measured by one process on the
same rows, threads and batch sizes, which is what makes their ratios meaningful -- and it works against a
remote server exactly as against a local one.

Exit status: 0 when a candidate was accepted (compare: the job ran), 2 when the optimization ran and accepted
nothing (the table says why), 1 when the job failed or was cancelled.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from aiaas.cli.jobs import HomeOpt, KeyOpt, UrlOpt, _fail, _file_id, _Server, poll_job, print_job_table
from aiaas.cli.lazy import LeanGroup
from aiaas.cli.output import JsonOpt
from aiaas.jobs.states import TERMINAL

# Piped output (no terminal to measure) gets a width that fits the comparison table instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
optimizations_app = typer.Typer(
    help="Optimization jobs: list, show, cancel, watch.", no_args_is_help=True, cls=LeanGroup
)
REJECTED_EXIT = 2


def parse_passes(text: str) -> list[str | dict[str, Any]]:
    """``graph,quantize-dynamic`` or ``prune:amount=0.95:fine_tune_epochs=1,quantize-dynamic``: a pass per comma,
    options as ``:key=value`` (values are JSON when they parse: 0.95, true, [1,2])."""
    out: list[str | dict[str, Any]] = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, *opts = item.split(":")
        if not opts:
            out.append(name)
            continue
        entry: dict[str, Any] = {"name": name}
        for opt in opts:
            key, sep, value = opt.partition("=")
            if not sep or not key:
                raise _fail(f"--passes {item!r}: options are name:key=value, e.g. prune:amount=0.5")
            try:
                entry[key] = json.loads(value)
            except ValueError:
                entry[key] = value
        out.append(entry)
    if not out:
        raise _fail("--passes is empty: e.g. --passes graph,quantize-dynamic")
    return out


def parse_fraction(text: str) -> float:
    """``1%`` or ``0.01``."""
    try:
        return float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    except ValueError:
        raise _fail(f"{text!r} is not a fraction: use e.g. 1% or 0.01") from None


# -- the table -----------------------------------------------------------------------------------------------
def _size(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _ms(m: dict[str, Any], batch: int) -> str:
    lat = (m.get("latency") or {}).get(f"batch_{batch}")
    return f"{lat['p50_ms']:.3g}" if lat else "-"


def _pct(x: Any) -> str:
    return f"{x * 100:.1f}%" if isinstance(x, int | float) else "-"


def comparison_table(report: dict[str, Any], title: str = "optimization") -> Table:
    """Baseline and candidates side by side: size, parameters, sparsity, p50 at batch 1 and at the serving
    batch, throughput at the serving batch, the metric, its change against the baseline, the speedup at the
    serving batch and the decision. ``*`` marks the candidate that was registered."""
    serving = int((report.get("workload") or {}).get("batch_size") or 1)
    metric = (report.get("evaluation") or {}).get("metric", "metric")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("candidate", overflow="fold")
    for col in (
        "size",
        "params",
        "sparsity",
        "p50 b1 ms",
        f"p50 b{serving} ms",
        f"rows/s b{serving}",
        metric,
        "delta",
        "speedup",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("decision", no_wrap=True)

    def row(
        name: str, m: dict[str, Any] | None, delta: str, speed: str, decision: str, style: str | None = None
    ) -> None:
        m = m or {}
        value = (m.get("metric") or {}).get("value")
        params = m.get("parameters")
        sparsity = m.get("weight_sparsity", m.get("sparsity"))
        tput = (m.get("throughput") or {}).get("samples_per_s")
        table.add_row(
            name,
            _size(m.get("size_bytes")),
            _count(params),
            _pct(sparsity),
            _ms(m, 1),
            _ms(m, serving),
            _count(tput),
            f"{value:.4g}" if isinstance(value, int | float) else "-",
            delta,
            speed,
            decision,
            style=style,
        )

    row(str(report.get("baseline_name") or "baseline"), report.get("baseline"), "", "", "baseline", "dim")
    for c in report.get("candidates") or []:
        d = c.get("decision") or {}
        loss, speedup = d.get("relative_loss"), d.get("speedup")
        delta = f"{-loss * 100:+.1f}%" if isinstance(loss, int | float) and abs(loss) < 1e9 else "-"
        speed = f"{speedup:.2f}x" if isinstance(speedup, int | float) else "-"
        ci = d.get("speedup_ci")
        if isinstance(ci, list) and len(ci) == 2:  # the interval the gate judged (interleaved runs)
            speed += f" [{ci[0]:.2f}-{ci[1]:.2f}]"
        verdict = "accepted" if d.get("accepted") else ("failed" if c.get("error") else "rejected")
        chosen = c.get("name") == report.get("chosen")
        row(
            c.get("name", "?") + (" *" if chosen else ""),
            c.get("measurement"),
            delta,
            speed,
            verdict,
            "green" if d.get("accepted") else "red",
        )
    return table


def _count(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}" if isinstance(n, float) else str(n)


def print_result(job: dict[str, Any]) -> int:
    """The table, each candidate's reason, and what to do next; returns the exit status."""
    status = job["status"]
    if status != "succeeded":
        console.print(f"[red]optimization {job['id']} {status}[/red]: {job.get('reason') or ''}")
        return 1
    report = job.get("report") or {}
    comparing = job.get("mode") == "compare"
    title = (
        f"{job['model']}: version {job.get('compare_version')} against version {job.get('version')}"
        if comparing
        else f"{job['model']} version {job.get('version')}"
    )
    console.print(comparison_table(report, title))
    ev = job.get("evaluation") or {}
    console.print(
        f"[dim]{ev.get('metric')} on {ev.get('rows')} rows of {ev.get('name')}; {report.get('note', '')}[/dim]"
    )
    for c in report.get("candidates") or []:
        d = c.get("decision") or {}
        color = "green" if d.get("accepted") else "red"
        console.print(f"[{color}]{c.get('name')}[/{color}]: {d.get('reason') or c.get('error')}")
        q = (c.get("measurement") or {}).get("quantization")
        if q:  # int8 where it matters: an op left in float32 is speed not gained
            ops = ", ".join(f"{k} {v}" for k, v in (q.get("quantized_ops") or {}).items()) or "none"
            left = ", ".join(f"{k} {v}" for k, v in (q.get("fp32_ops") or {}).items()) or "none"
            console.print(f"  [dim]int8 ops: {ops}; still float32: {left}[/dim]")
    if comparing:
        return 0
    if job.get("accepted") and job.get("model_version"):
        model, version = job.get("register_into") or job["model"], job["model_version"]
        console.print(
            f"[green]registered {model} version {version}[/green] (report in its model card); "
            f"call it: POST /v2/models/{model}/versions/{version}/infer"
        )
        return 0
    console.print(f"[yellow]nothing registered[/yellow]: {job.get('decision')}")
    return REJECTED_EXIT


def watch(server: _Server, job_id: str, interval: float) -> dict[str, Any]:
    """Follow the job with a progress bar and its messages until it ends; returns the final job."""
    after = 0
    columns = (
        TextColumn("[bold]{task.fields[phase]:<12}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}"),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(job_id, total=100, phase="", detail="")
        while True:
            job, page = poll_job(server, f"/v1/optimizations/{job_id}", after, progress)
            after = page["last_seq"]
            p = job.get("progress") or {}
            fields: dict[str, Any] = {"phase": job.get("sub_status") or job["status"]}
            if "fraction" in p:
                fields.update(completed=100 * float(p["fraction"]), detail=str(p.get("detail") or "")[:60])
            if job["status"] == "succeeded":
                fields.update(completed=100, detail="")
            progress.update(task, **fields)
            if job["status"] in TERMINAL and not page["has_more"]:
                return job
            time.sleep(interval)


def _run(server: _Server, body: dict[str, Any], detach: bool, interval: float) -> None:
    job = server("POST", "/v1/optimizations", json=body)
    if job["status"] == "failed":
        raise _fail(f"optimization {job['id']} failed: {job['reason']}")
    ev = job.get("evaluation") or {}
    console.print(
        f"created optimization [bold]{job['id']}[/bold] ({job['status']}): {job['model']} version "
        f"{job.get('version')}, {ev.get('metric')} on {ev.get('rows')} rows of {ev.get('name')}"
    )
    if detach:
        return
    raise typer.Exit(print_result(watch(server, job["id"], interval)))


def _evaluation(
    server: _Server, file: str | None, metric: str | None, target: str | None, rows: int | None, calibration: str | None
) -> dict[str, Any]:
    ev: dict[str, Any] = {}
    if file:
        ev["file"] = _file_id(server, file)
    if calibration:
        ev["calibration_file"] = _file_id(server, calibration)
    for key, value in (("metric", metric), ("target", target), ("rows", rows)):
        if value is not None:
            ev[key] = value
    return ev


def _workload(batch_sizes: str | None, threads: int | None) -> dict[str, Any]:
    w: dict[str, Any] = {}
    if batch_sizes:
        try:
            w["batch_sizes"] = [int(b) for b in batch_sizes.split(",") if b.strip()]
        except ValueError:
            raise _fail(f"--batch-sizes {batch_sizes!r}: integers separated by commas, e.g. 1,32") from None
    if threads is not None:
        w["threads"] = threads
    return w


EvalFile = Annotated[
    str | None,
    typer.Option(
        "--eval-file", help="evaluation rows: a file id or a local .npz/.csv (default: the model's held-out set)"
    ),
]
Metric = Annotated[str | None, typer.Option(help="accuracy | rmse | mae | r2 (default: the held-out set's)")]
TargetCol = Annotated[str | None, typer.Option("--target-column", help="column / array with the expected values")]
Rows = Annotated[int | None, typer.Option(help="evaluate on the first N rows only")]
BatchSizes = Annotated[
    str | None, typer.Option("--batch-sizes", help="latency batch sizes, e.g. 1,32; the largest is the serving batch")
]
Threads = Annotated[int | None, typer.Option(help="intra-op threads per session")]
Interval = Annotated[float, typer.Option(help="seconds between polls")]


def optimize_cmd(
    model: Annotated[str, typer.Argument(help="the model to optimize")],
    passes: Annotated[
        list[str],
        typer.Option(
            "--passes",
            help="a candidate's passes, e.g. graph,quantize-dynamic or prune:amount=0.5; repeat for more candidates",
        ),
    ],
    max_loss: Annotated[
        str, typer.Option("--max-loss", help="largest relative metric loss accepted, e.g. 1% or 0.01")
    ] = "1%",
    min_speedup: Annotated[
        float | None,
        typer.Option(
            "--min-speedup",
            help="and at least this speedup at the serving batch "
            "(default: the server's AIAAS_OPTIMIZE_MIN_SPEEDUP, 0.8; 0: any speed)",
        ),
    ] = None,
    version: Annotated[int | None, typer.Option(help="the version to optimize (default: the latest)")] = None,
    register_as: Annotated[
        str | None, typer.Option("--register-as", help="register an accepted candidate as this model instead")
    ] = None,
    eval_file: EvalFile = None,
    metric: Metric = None,
    target_column: TargetCol = None,
    rows: Rows = None,
    calibration_file: Annotated[str | None, typer.Option("--calibration-file", help="rows for quantize-static")] = None,
    batch_sizes: BatchSizes = None,
    threads: Threads = None,
    max_runtime: Annotated[float | None, typer.Option("--max-runtime", help="seconds for the whole job")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="print the job id and return at once")] = False,
    interval: Interval = 0.5,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Optimize a model: run the passes as a job on the server, follow it, print baseline vs candidates.
    An accepted candidate becomes the model's next version. Exit status 2: nothing was accepted."""
    server = _Server(url, api_key, home)
    candidates = [parse_passes(p) for p in passes]
    body: dict[str, Any] = {
        "model": model,
        "passes": candidates[0] if len(candidates) == 1 else candidates,
        "criterion": {"max_relative_loss": parse_fraction(max_loss), "min_speedup": min_speedup},
        "evaluation": _evaluation(server, eval_file, metric, target_column, rows, calibration_file),
        "workload": _workload(batch_sizes, threads),
    }
    for key, value in (("version", version), ("register_as", register_as), ("max_runtime_s", max_runtime)):
        if value is not None:
            body[key] = value
    _run(server, body, detach, interval)


def compare_cmd(
    model: Annotated[str, typer.Argument(help="the model")],
    v1: Annotated[int, typer.Argument(help="the baseline version")],
    v2: Annotated[int, typer.Argument(help="the version measured against it")],
    max_loss: Annotated[str, typer.Option("--max-loss", help="criterion the decision column applies")] = "1%",
    eval_file: EvalFile = None,
    metric: Metric = None,
    target_column: TargetCol = None,
    rows: Rows = None,
    batch_sizes: BatchSizes = None,
    threads: Threads = None,
    interval: Interval = 0.5,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """Measure two versions of a model on the same rows, threads and batch sizes (on the server, one process)
    and print them side by side."""
    server = _Server(url, api_key, home)
    body: dict[str, Any] = {
        "model": model,
        "version": v1,
        "compare_version": v2,
        "criterion": {"max_relative_loss": parse_fraction(max_loss)},
        "evaluation": _evaluation(server, eval_file, metric, target_column, rows, None),
        "workload": _workload(batch_sizes, threads),
    }
    _run(server, body, False, interval)


# -- aiaas optimizations ... -----------------------------------------------------------------------------------
@optimizations_app.command("list")
def list_cmd(
    status: Annotated[str | None, typer.Option(help="only these states, e.g. running,queued")] = None,
    limit: int = 50,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Optimizations of your tenant (all tenants for an admin), newest first."""

    def cells(j: dict[str, Any]) -> list[str]:
        accepted = "" if j.get("accepted") is None else ("yes" if j["accepted"] else "no")
        return [j["mode"], j["model"], str(j.get("version") or ""), accepted, str(j.get("model_version") or "")]

    print_job_table(
        _Server(url, api_key, home),
        "/v1/optimizations",
        "optimizations",
        status,
        limit,
        ("mode", "model", "version", "accepted", "new version"),
        cells,
        console,
        as_json,
    )


@optimizations_app.command("show")
def show_cmd(
    job_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="the whole job as JSON")] = False,
    url: UrlOpt = None,
    api_key: KeyOpt = None,
    home: HomeOpt = None,
) -> None:
    """One optimization: its comparison table when it has finished (``--json``: everything)."""
    job = _Server(url, api_key, home)("GET", f"/v1/optimizations/{job_id}")
    if as_json or job["status"] not in TERMINAL:
        console.print_json(data=job)
        return
    print_result(job)


@optimizations_app.command("cancel")
def cancel_cmd(job_id: str, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None) -> None:
    """Cancel an optimization: its process is stopped."""
    job = _Server(url, api_key, home)("POST", f"/v1/optimizations/{job_id}/cancel")
    console.print(f"{job_id}: {job['status']}")


@optimizations_app.command("watch")
def watch_cmd(
    job_id: str, interval: Interval = 0.5, url: UrlOpt = None, api_key: KeyOpt = None, home: HomeOpt = None
) -> None:
    """Follow an optimization until it ends, then print its table."""
    raise typer.Exit(print_result(watch(_Server(url, api_key, home), job_id, interval)))


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    """``aiaas optimize``, ``aiaas models compare`` and ``aiaas optimizations ...`` on the main CLI."""
    app.command("optimize")(optimize_cmd)
    models_app.command("compare")(compare_cmd)
    app.add_typer(optimizations_app, name="optimizations")


__all__ = ["comparison_table", "parse_passes", "register"]
