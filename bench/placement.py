"""``python bench/placement.py``: the same models served with ``placement: thread``, ``process`` and ``ray``.

Method: bench/serving.py's models (``mlp-large``: 138M-param MLP, ``encoder``: 4-layer transformer) and harness
(real ``aiaas serve`` subprocess, ``wrk`` one-row V2 JSON requests on 127.0.0.1, raw in-process onnxruntime
measured in the same run). Every placement serves 2 replicas x 1 intra-op thread (the same layout, so only
where the replicas run differs): ``thread`` = threads of the server process; ``process`` = two worker processes
(tensors through shared memory); ``ray`` = two actors on a one-node local Ray cluster (2 CPUs, started here on
127.0.0.1, torn down after). Each at concurrency 1 and 64.

Printed per model: samples/s, p50, p99 for each placement and concurrency, ``vs raw`` (served samples/s over the
raw onnxruntime limit), and the targets: ``process`` >= 0.95 x ``thread`` samples/s at conc 64 and <= +0.3 ms p50
at conc 1; ``ray`` >= 0.9 x ``thread`` at conc 64 and <= +1.5 ms p50 at conc 1. Compare ratios, not absolute
numbers across runs. Results also go to ``bench/results/placement.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import serving as sv  # bench/serving.py: models, raw baseline, server and load harness

RESULTS = sv.ROOT / "bench" / "results" / "placement.json"
PLACEMENTS = ("thread", "process", "ray")
TARGETS = {"process": (0.95, 0.3), "ray": (0.90, 1.5)}  # (throughput ratio at conc 64, extra p50 ms at conc 1)


def start_ray() -> Any:
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    with socket.socket() as s:
        s.bind((sv.HOST, 0))
        port = s.getsockname()[1]
    return Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "node_ip_address": sv.HOST, "include_dashboard": False, "redis_port": port},
    )


def start_server(work: Path, m: sv.BenchModel, placement: str, ray_address: str | None) -> sv.Server:
    from aiaas.registry import ModelRepository
    from aiaas.registry.onnx_import import import_onnx

    home = work / f"home-{m.name}-{placement}"
    shutil.rmtree(home, ignore_errors=True)
    repo = ModelRepository(home / "models")
    repo.ensure()
    overrides = {
        "instances": 2,
        "runtime": {"intra_op_threads": 1},
        "placement": placement,
        "resources": {"num_cpus": 1},
    }
    import_onnx(repo, m.path, m.name, max_batch_size=m.result["raw"]["max_batch"]["2x1"], overrides=overrides)
    port = sv.free_port()
    env = {
        "AIAAS_CATALOG": "none",
        "AIAAS_ADMIN_KEY": sv.ADMIN_KEY,
        "AIAAS_ACCESS_LOG": "false",
        "AIAAS_LOG_LEVEL": "warning",
        "AIAAS_GOVERNANCE": "off",
        "AIAAS_RAY_NAMESPACE": f"bench-{os.getpid()}",
    }
    if ray_address:
        env["AIAAS_RAY_ADDRESS"] = ray_address
    aiaas = str(Path(sys.executable).with_name("aiaas"))
    argv = [aiaas, "serve", "--home", str(home), "--host", sv.HOST, "--port", str(port)]
    server = sv.Server(argv, env, port, "/v2/health/ready", work / f"aiaas-{m.name}-{placement}.log")
    req = urllib.request.Request(
        f"http://{sv.HOST}:{port}/v2/models/{m.name}/ready", headers={"Authorization": f"Bearer {sv.ADMIN_KEY}"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, f"model {m.name} not ready with placement {placement}"
    return server


def run_model(work: Path, m: sv.BenchModel, load: Any, args: argparse.Namespace, ray_address: str | None) -> None:
    m.result["raw"] = sv.raw_baseline(m, args.raw_seconds, passes=1)
    limit = m.result["raw"]["limit"]["samples_per_s"]
    body_bytes, headers = sv.json_body(m)
    body = sv.Body(f"/v2/models/{m.name}/infer", body_bytes, headers)
    points: dict[str, dict[int, dict[str, Any]]] = {}
    for placement in PLACEMENTS:
        if placement == "ray" and ray_address is None:
            continue
        server = start_server(work, m, placement, ray_address)
        try:
            points[placement] = {
                c: sv.measure(load, work, server, body, c, args.duration, args.warmup) for c in (1, 64)
            }
        finally:
            server.stop()
    m.result["points"] = points
    m.result["limit"] = limit


def report(m: sv.BenchModel) -> list[str]:
    pts, limit = m.result["points"], m.result["limit"]
    lines = [
        f"\n{m.title}",
        f"  raw onnxruntime limit: {limit:.1f} samples/s "
        f"({m.result['raw']['limit']['layout']}, batch {m.result['raw']['limit']['batch']})",
        f"  {'placement':<10}{'conc':>5}{'samples/s':>11}{'vs raw':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}",
    ]
    for placement, by_conc in pts.items():
        for c, r in by_conc.items():
            lines.append(
                f"  {placement:<10}{c:>5}{r['samples_per_s']:>11.1f}{r['samples_per_s'] / limit:>8.2f}"
                f"{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8}"
            )
    base = pts["thread"]
    for placement, (ratio_t, p50_t) in TARGETS.items():
        if placement not in pts:
            continue
        ratio = pts[placement][64]["samples_per_s"] / base[64]["samples_per_s"]
        extra = pts[placement][1]["p50_ms"] - base[1]["p50_ms"]
        m.result.setdefault("ratios", {})[placement] = {"vs_thread_conc64": ratio, "p50_extra_ms_conc1": extra}
        lines.append(
            f"  {placement} vs thread: conc 64 {ratio:.2f}x (target >= {ratio_t}: "
            f"{sv.verdict(ratio >= ratio_t)}), conc 1 p50 {extra:+.2f} ms (target <= +{p50_t}: "
            f"{sv.verdict(extra <= p50_t)})"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per measured point")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each point")
    ap.add_argument("--raw-seconds", type=float, default=0.5, help="seconds per raw batch size")
    ap.add_argument("--models", default="mlp-large,encoder")
    ap.add_argument("--no-ray", action="store_true", help="skip placement ray")
    args = ap.parse_args(argv)
    load = sv.wrk_load if shutil.which("wrk") else sv.py_load
    work = Path(tempfile.mkdtemp(prefix="aiaas-bench-placement-"))
    models = sv.build_models(work, args.models.split(","))
    cluster = None if args.no_ray else start_ray()
    lines: list[str] = [f"load generator: {'wrk' if load is sv.wrk_load else 'python asyncio (no wrk)'}"]
    try:
        for m in models:
            run_model(work, m, load, args, cluster.address if cluster else None)
            lines += report(m)
    finally:
        if cluster is not None:
            import ray

            ray.shutdown()
            cluster.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({m.name: {k: v for k, v in m.result.items()} for m in models}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
