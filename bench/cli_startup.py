"""CLI start-up: how long ``aiaas --help``, each sub-command's ``--help`` and the listings take, end to end.

Method
------
Each command is a fresh ``python -m aiaas.cli.main ARGS`` process (stdout and stderr discarded), timed with
``time.perf_counter`` around ``subprocess.run`` (wall) and by the CPU time (user + system) the process used,
from ``getrusage(RUSAGE_CHILDREN)``; the figures are medians of ``--runs`` runs (default 5). Start-up is one
thread that reads files the page cache holds, so on an idle machine wall time is about CPU time; on a
shared, loaded one the wall time mostly measures the wait for a core, and the CPU time is the figure to read.
The commands take turns run by run (every command once, then again ...) so drift in machine load hits all
alike. In the same run the floor is measured the same way: ``python -c "import typer, rich"``, and each
median is also shown as a ratio to it. Two more reference rows show what Typer 0.29 itself adds to that: a
one-command Typer app's ``--help`` (Typer renders help with rich, importing rich's markdown and traceback
modules) and the same command run with its one option (Typer coerces option values through pydantic).

The listings ask a real server (``python -m aiaas.cli.main serve``, ``AIAAS_CATALOG=none``, a fresh home
with one tenant and one key, a free port) started here; the "database fallback" rows run the governance
listings with ``AIAAS_PORT`` pointing at a port where nothing listens, so they open the database
themselves. The target of issue 16 is 0.3 s for ``--help`` and the listings (PASS / MISS per row, judged on
the CPU time).

``--baseline-root DIR`` adds a column with the same commands run from another checkout of aiaas (e.g.
``git archive`` of an older commit unpacked in /tmp), interleaved with this one, for before/after figures.

Timings are noisy on a shared machine: compare rows and columns of one run, never numbers across runs.

    .venv/bin/python bench/cli_startup.py [--runs 5] [--baseline-root DIR] [--only help|server|db]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.3  # issue 16: --help and listings start in under 0.3 s
FLOOR = "floor: python -c 'import typer, rich'"
# A minimal Typer app: `main --help` and `main --name x`, as references for what Typer costs by itself
TYPER_APP = """
import sys, typer
app = typer.Typer()
@app.command()
def main(name: str | None = None) -> None:
    print(name)
app(args=sys.argv[1:])
"""

HELP = [
    ["--help"],
    *(
        [c, "--help"]
        for c in (
            "models",
            "run",
            "chat",
            "ps",
            "catalog",
            "tenants",
            "keys",
            "usage",
            "audit",
            "files",
            "jobs",
            "optimize",
            "optimizations",
            "serve",
        )
    ),
    ["models", "list", "--help"],
    ["keys", "list", "--help"],
]
SERVER = [
    ["models", "list"],
    ["keys", "list"],
    ["tenants", "list"],
    ["usage"],
    ["audit"],
    ["catalog", "list"],
    ["jobs", "list"],
    ["files", "list"],
    ["optimizations", "list"],
    ["ps", "--interval", "0"],
]
DB = [["keys", "list"], ["tenants", "list"], ["usage"], ["audit"]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(home: Path, port: int, root: Path) -> Iterator[None]:
    """A real server on ``home``; its first start creates the database and the admin key file (which the CLI
    reads to ask it)."""
    env = {
        **os.environ,
        "AIAAS_HOME": str(home),
        "AIAAS_PORT": str(port),
        "AIAAS_CATALOG": "none",
        "PYTHONPATH": str(root),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiaas.cli.main", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            url = f"http://127.0.0.1:{port}/v2/health/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def seed(home: Path, port: int, root: Path) -> None:
    """One tenant and one key, so the listings print a row or two."""
    env = {**os.environ, "AIAAS_HOME": str(home), "AIAAS_PORT": str(port), "PYTHONPATH": str(root)}
    for args in (["tenants", "create", "bench"], ["keys", "create", "--tenant", "bench"]):
        subprocess.run([sys.executable, "-m", "aiaas.cli.main", *args], env=env, check=True, capture_output=True)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="runs per command (the median is shown)")
    ap.add_argument("--baseline-root", type=Path, help="another aiaas checkout to measure alongside this one")
    ap.add_argument("--only", choices=("help", "server", "db"), help="measure one group of commands")
    args = ap.parse_args()

    roots = {"now": REPO_ROOT, **({"before": args.baseline_root.resolve()} if args.baseline_root else {})}
    with tempfile.TemporaryDirectory(prefix="aiaas-cli-bench-") as tmp:
        home, port, dead = Path(tmp) / "home", free_port(), free_port()
        home.mkdir()
        # (group, label, argv, port) for every command; the floor runs with the first group
        jobs: list[tuple[str, str, list[str], int]] = [
            ("floor", FLOOR, ["-c", "import typer, rich"], port),
            ("ref", "a one-command Typer app: --help", ["-c", TYPER_APP, "--help"], port),
            ("ref", "a one-command Typer app: --name x", ["-c", TYPER_APP, "--name", "x"], port),
        ]
        groups = {"help": (HELP, port), "server": (SERVER, port), "db": (DB, dead)}
        for group, (commands, p) in groups.items():
            if args.only in (None, group):
                jobs += [(group, " ".join(c), ["-m", "aiaas.cli.main", *c], p) for c in commands]
        times: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
        with server(home, port, REPO_ROOT):
            seed(home, port, REPO_ROOT)
            for _ in range(args.runs):
                for group, label, argv, p in jobs:
                    for name, root in roots.items():
                        env = {
                            **os.environ,
                            "AIAAS_HOME": str(home),
                            "AIAAS_PORT": str(p),
                            "PYTHONPATH": str(root),
                            "COLUMNS": "100",
                        }
                        times.setdefault((group, label, name), []).append(timed([sys.executable, *argv], env))
    report(jobs, roots, times, args.runs)


def report(
    jobs: list[tuple[str, str, list[str], int]],
    roots: dict[str, Path],
    times: dict[tuple[str, str, str], list[tuple[float, float]]],
    runs: int,
) -> None:
    def med(key: tuple[str, str, str], i: int) -> float:
        return statistics.median(t[i] for t in times[key])

    floor = med(("floor", FLOOR, "now"), 1)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# CLI start-up, median of {runs} runs, load average {load}, {os.cpu_count()} CPUs; cpu = user + sys")
    head = f"{'group':7} {'command':38} {'wall s':>7} {'cpu s':>6} {'x floor':>7}"
    head += f" {'before wall':>11} {'before cpu':>10} {'cpu before/now':>14}" if "before" in roots else ""
    print(head + "  target")
    out = []
    for group, label, _, _ in jobs:
        wall, cpu = med((group, label, "now"), 0), med((group, label, "now"), 1)
        line = f"{group:7} {label:38} {wall:7.3f} {cpu:6.3f} {cpu / floor:7.2f}"
        row: dict[str, object] = {"group": group, "command": label, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4)}
        if "before" in roots:
            b_wall, b_cpu = med((group, label, "before"), 0), med((group, label, "before"), 1)
            line += f" {b_wall:11.3f} {b_cpu:10.3f} {b_cpu / cpu:14.2f}"
            row["before_wall_s"], row["before_cpu_s"] = round(b_wall, 4), round(b_cpu, 4)
        verdict = "" if group in ("floor", "ref") else ("PASS" if cpu < TARGET_S else "MISS")
        print(f"{line}  {verdict}")
        out.append(row)
    print("JSON " + json.dumps({"load": load, "runs": runs, "rows": out}))


if __name__ == "__main__":
    main()
