"""``make bench-catalog``: build every catalog model and print its held-out quality against its floor.

Method
------
1. **build** -- each selected catalog model (dependencies first) is built the way ``aiaas serve`` builds it: one
   ``python -m aiaas.catalog --home H NAME`` subprocess per model, so the build time includes the process start
   and the imports a first ``make serve`` pays. A model already built in ``--home`` by the same recipe (a full
   build; in ``--quick`` mode a quick one counts too) is reused, and its build time is the one its card
   recorded. Without ``--home`` a fresh temporary home is used (kept, so the next run can reuse it).
2. **measure** -- the metrics are the ones each build measured on held-out data and wrote into the model card
   (``card.metrics``); the floors are the specs' (``CatalogSpec.floors``, the issue's list plus aiaas's sanity
   floors for the models the issue gives none).
3. **serve** -- every built model is loaded in an in-process server (``create_app``, ``AIAAS_CATALOG=none``)
   and answers its README example (``CatalogSpec.example``) over HTTP (FastAPI's TestClient, no network); the
   latency column is the p50 of a few such requests, JSON parsing and encoding included.

Reading the output
------------------
One row per model: each floor's metric as measured, the floor, PASS or MISS; the build time (``reused`` when
it came from an existing build); the size of the version directory (the card's ``size_mb`` when it has one:
some models serve files that live in a package); the README example's HTTP status and p50 latency. Then the
total build time against the 15-minute target of a first ``make serve`` on 2 cores, and each model's answer to
its example. ``--quick`` builds the CI variants: their metrics are printed against the floors for
information only (the floors are for full builds).

Options: ``--home DIR`` (reuse/keep builds there), ``--quick``, ``--only NAME,NAME`` (their dependencies are
built too), ``--json PATH`` (default ``bench/results/catalog[-quick].json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiaas.catalog.base import CatalogSpec  # noqa: E402
from aiaas.catalog.builder import catalog_info, status  # noqa: E402
from aiaas.catalog.registry import all_specs, select  # noqa: E402
from aiaas.registry import ModelRepository  # noqa: E402

TARGET_S = 15 * 60  # the first full build of the whole catalog, on 2 cores
ADMIN_KEY = "bench-catalog-key"
EXAMPLE_RUNS = 5


@dataclass
class Row:
    name: str
    scenario: str
    state: str = "not built"  # built | reused | failed | unavailable
    detail: str = ""
    build_s: float | None = None
    quick: bool | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    floors: list[dict[str, Any]] = field(default_factory=list)  # metric, floor, measured, ok
    size_mb: float | None = None
    example_status: int | None = None
    example_p50_ms: float | None = None
    answer: str = ""


def build_one(spec: CatalogSpec, home: Path, quick: bool) -> tuple[bool, float, str]:
    """Build one model in its own process, as the server does; progress on stderr, the full log in logs/."""
    cmd = [sys.executable, "-m", "aiaas.catalog", "--home", str(home), spec.name]
    if quick:
        cmd.insert(-1, "--quick")
    log_path = home / "logs" / f"bench-catalog-{spec.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    last_status = ""
    last_msg = ""
    t0 = time.monotonic()
    with (
        open(log_path, "w") as log,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT) as proc,
    ):
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if line.startswith("PROGRESS "):
                _, _, frac, *msg = line.rstrip("\n").split(" ")
                text = " ".join(msg)
                if text != last_msg:
                    last_msg = text
                    print(f"  {spec.name:<22} {float(frac) * 100:3.0f}%  {text}"[:118], file=sys.stderr, flush=True)
            elif line.startswith("STATUS "):
                last_status = line.rstrip("\n").split(" ", 2)[-1]
        code = proc.wait()
    seconds = time.monotonic() - t0
    if code != 0 and not last_status:
        last_status = f"exit {code}; see {log_path}"
    return code == 0, seconds, last_status


def floor_rows(spec: CatalogSpec, metrics: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for f in spec.floors:
        value = metrics.get(f.metric)
        measured = float(value) if isinstance(value, (int, float)) else None
        rows.append({"metric": f.metric, "floor": f"{f.op} {f.value:g}", "measured": measured, "ok": f.holds(measured)})
    return rows


def version_size_mb(repo: ModelRepository, name: str, version: int | None) -> float | None:
    if version is None:
        return None
    vdir = repo.version_dir(name, version)
    if not vdir.is_dir():
        return None
    return round(sum(p.stat().st_size for p in vdir.rglob("*") if p.is_file()) / 1e6, 3)


def short(outputs: list[dict[str, Any]], width: int = 90) -> str:
    """The answer as a person would read it: each output's name and its first values."""
    parts = []
    for o in outputs:
        data = o.get("data")
        if isinstance(data, list):
            head = data[:4]
            text = json.dumps(
                [(s[:40] + "...") if isinstance(s, str) and len(s) > 40 else s for s in head], ensure_ascii=False
            )
            if len(data) > 4:
                text = text[:-1] + ", ...]"
        else:
            text = "(binary)"
        parts.append(f"{o.get('name')}={text}")
    joined = "  ".join(parts)
    return joined if len(joined) <= width else joined[: width - 3] + "..."


def serve_examples(home: Path, rows: dict[str, Row], specs: list[CatalogSpec]) -> None:
    """Load the built models in an in-process server and send each its README example."""
    from fastapi.testclient import TestClient

    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog="none", governance="off"))
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(app) as client:
        for spec in specs:
            row = rows[spec.name]
            if row.state not in ("built", "reused") or not spec.example:
                continue
            body = spec.example.encode()
            times = []
            for _ in range(EXAMPLE_RUNS):
                t0 = time.perf_counter()
                r = client.post(f"/v2/models/{spec.name}/infer", content=body, headers=auth)
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    break
            row.example_status = r.status_code
            row.example_p50_ms = round(statistics.median(times), 2)
            row.answer = short(r.json().get("outputs", [])) if r.status_code == 200 else r.text[:200]


def no_floor_line(metrics: dict[str, Any]) -> dict[str, Any]:
    """A model without a floor still shows its headline metric, against "none"."""
    for metric in ("auc", "accuracy", "f1"):
        if isinstance(metrics.get(metric), (int, float)):
            return {"metric": metric, "floor": "none", "measured": float(metrics[metric]), "ok": None}
    return {"metric": "(no floor)", "floor": "", "measured": None, "ok": None}


def fmt(v: float | None, spec: str = ".4g") -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[Row], quick: bool) -> None:
    head = (
        f"{'model':<22} {'scenario':<14} {'metric':<22} {'measured':>9} {'floor':>9} {'':4}  "
        f"{'build s':>8} {'size MB':>8} {'example':>7} {'p50 ms':>8}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        lines = row.floors or [no_floor_line(row.metrics)]
        build = "reused" if row.state == "reused" else fmt(row.build_s, ".1f")
        if row.state == "reused" and row.build_s is not None:
            build = f"{row.build_s:.0f} (r)"
        for i, f in enumerate(lines):
            mark = {True: "PASS", False: "MISS", None: "-" if row.state in ("built", "reused") else ""}[f["ok"]]
            first = i == 0
            print(
                f"{(row.name if first else ''):<22} {(row.scenario if first else ''):<14} {f['metric'][:22]:<22} "
                f"{fmt(f['measured']):>9} {f['floor']:>9} {mark:4}  "
                + (
                    f"{build:>8} {fmt(row.size_mb, '.2f'):>8} {fmt(row.example_status, 'd'):>7} "
                    f"{fmt(row.example_p50_ms, '.1f'):>8}"
                    if first
                    else ""
                )
            )
        if row.state not in ("built", "reused"):
            print(f"{'':<22} {row.state.upper()}: {row.detail}"[:200])
    if quick:
        print("(quick builds: few epochs / small data -- the floors apply to full builds; run without --quick)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="aiaas home to build into / reuse (default: a new temp dir)")
    parser.add_argument("--quick", action="store_true", help="CI builds (few epochs, small data)")
    parser.add_argument("--only", help="comma-separated catalog model names (their dependencies are built too)")
    parser.add_argument("--json", type=Path, help="where to write the results as JSON")
    args = parser.parse_args(argv)

    home = (args.home or Path(tempfile.mkdtemp(prefix="aiaas-bench-catalog-"))).resolve()
    repo = ModelRepository(home / "models")
    repo.ensure()
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    try:
        specs = select(names)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else "full"
    print(f"catalog bench: {len(specs)} model(s), {mode} builds, home {home}", file=sys.stderr)

    rows: dict[str, Row] = {}
    fresh_s = 0.0
    for spec in specs:
        row = rows[spec.name] = Row(spec.name, spec.scenario)
        st = status(spec, repo, quick=args.quick)
        if st.state == "unavailable":
            row.state, row.detail = "unavailable", st.detail
            print(f"  {spec.name:<22} UNAVAILABLE {st.detail}", file=sys.stderr)
            continue
        if st.state == "built":
            row.state = "reused"
            print(f"  {spec.name:<22} reused ({st.detail})", file=sys.stderr)
        else:
            ok, seconds, detail = build_one(spec, home, args.quick)
            fresh_s += seconds
            row.build_s = round(seconds, 1)
            row.state, row.detail = ("built", detail) if ok else ("failed", detail)
            print(f"  {spec.name:<22} {'built' if ok else 'FAILED'} in {seconds:.1f}s  {detail}", file=sys.stderr)
        info = catalog_info(repo, spec.name)
        if info is not None and row.state in ("built", "reused"):
            row.metrics = dict(info.get("metrics") or {})
            row.quick = bool(info.get("quick"))
            if row.state == "reused" and isinstance(info.get("build_seconds"), (int, float)):
                row.build_s = float(info["build_seconds"])
            size = row.metrics.get("size_mb")
            row.size_mb = (
                float(size) if isinstance(size, (int, float)) else version_size_mb(repo, spec.name, info.get("version"))
            )
        row.floors = floor_rows(spec, row.metrics)

    print("  serving the README examples ...", file=sys.stderr)
    serve_examples(home, rows, specs)

    registry_order = list(all_specs())
    ordered = [
        rows[s.name] for s in sorted(specs, key=lambda s: (_scenario_rank(s.scenario), registry_order.index(s.name)))
    ]
    print(f"\n== aiaas catalog: {mode} builds ({time.strftime('%Y-%m-%d')}, {_cpus()} cores), home {home}")
    print_table(ordered, args.quick)

    reused = [r for r in ordered if r.state == "reused"]
    total = sum(r.build_s or 0.0 for r in ordered)
    print()
    print(
        f"total build time {total:.0f} s ({total / 60:.1f} min) for {sum(r.build_s is not None for r in ordered)} "
        f"model(s); target <= {TARGET_S // 60} min for the whole catalog, full builds on 2 cores: "
        + ("n/a (quick builds)" if args.quick else "PASS" if total <= TARGET_S else "MISS")
    )
    if reused:
        print(
            f"  {len(reused)} model(s) reused from earlier builds, marked (r) (their card's build time, without "
            "process "
            f"start; this run built {len(ordered) - len(reused)} in {fresh_s:.0f} s)"
        )
    if names is not None:
        print("  (--only: not the whole catalog)")
    floors = [f for r in ordered for f in r.floors]
    print(
        f"floors: {sum(f['ok'] is True for f in floors)} PASS, {sum(f['ok'] is False for f in floors)} MISS, "
        f"{sum(f['ok'] is None for f in floors)} not measured"
    )
    bad_examples = [r.name for r in ordered if r.example_status not in (None, 200)]
    print(
        f"README examples: {sum(r.example_status == 200 for r in ordered)} answered 200"
        + (f", failed: {', '.join(bad_examples)}" if bad_examples else "")
    )
    print("\nanswers to the README examples:")
    for r in ordered:
        if r.example_status is not None:
            print(f"  {r.name:<22} {r.answer}")

    out = args.json or ROOT / "bench" / "results" / f"catalog{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "mode": mode,
                "home": str(home),
                "total_build_s": round(total, 1),
                "target_s": TARGET_S,
                "models": [asdict(r) for r in ordered],
            },
            indent=1,
        )
    )
    print(f"results: {out}")
    failed = [r for r in ordered if r.state == "failed"]
    return 1 if failed or bad_examples else 0


SCENARIO_ORDER = ("nlp", "vision", "speech", "recommendation", "game", "driving", "medical", "credit")


def _scenario_rank(scenario: str) -> int:
    return SCENARIO_ORDER.index(scenario) if scenario in SCENARIO_ORDER else len(SCENARIO_ORDER)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
