"""A training job on several machines: ``python -m aiaas.training.raylaunch --spec JOB_DIR/spec.json``.

Started by the server in place of torchrun when ``resources.nodes > 1``. It joins the Ray cluster of
``spec.cluster_address``, reserves one bundle per node (a placement group, STRICT_SPREAD: every launcher on its
own node, ``workers x threads_per_worker`` CPUs each), starts one launcher actor per bundle and has each run
torchrun with c10d rendezvous at the first node::

    python -m torch.distributed.run --nnodes K --nproc_per_node N --rdzv-backend c10d
        --rdzv-endpoint FIRST_NODE_IP:PORT --rdzv-id JOB --max-restarts R -m aiaas.training.worker --spec ...

The job directory (spec, data, checkpoints, events) must be on storage every node sees at the same path; rank 0
writes checkpoints and events there as on one machine, so restarts, events and registration work unchanged.
It exits with the first failing node's status. SIGTERM (cancel) kills the launchers, and torchrun and its workers
die with them; the placement group and actors belong to this driver, so Ray frees them if it is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

_READY_TIMEOUT_S = 300.0


class NodeLauncher:
    """Runs torchrun on its node (a Ray actor)."""

    def endpoint(self) -> tuple[str, int]:
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind((ip, 0))
            return ip, int(s.getsockname()[1])

    def run(self, argv: list[str], env: dict[str, str], log: str) -> int:
        import ctypes

        def die_with_parent() -> None:
            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
            )
            return proc.wait()


def torchrun_argv(spec: dict[str, Any], spec_path: Path, endpoint: str, job_id: str) -> list[str]:
    res = spec["resources"]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(res["nodes"]),
        "--nproc_per_node",
        str(res["workers"]),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        endpoint,
        "--rdzv-id",
        job_id,
        "--max-restarts",
        str(spec["max_restarts"]),
        "--monitor-interval",
        "0.2",
        "-m",
        "aiaas.training.worker",
        "--spec",
        str(spec_path),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", required=True, type=Path)
    args = ap.parse_args(argv)
    spec_path = args.spec.resolve()
    spec = json.loads(spec_path.read_text())
    res, address = spec["resources"], spec["cluster_address"]
    nodes, cpus = int(res["nodes"]), float(res["workers"] * res["threads_per_worker"])
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    host = address.rsplit(":", 1)[0]
    kw: dict[str, Any] = {"_node_ip_address": "127.0.0.1"} if host in ("127.0.0.1", "localhost") else {}
    path = os.pathsep.join(p for p in sys.path if p)
    ray.init(
        address=address,
        namespace="aiaas-training",
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
        **kw,
    )
    pg = placement_group([{"CPU": cpus}] * nodes, strategy="STRICT_SPREAD")
    try:
        ray.get(pg.ready(), timeout=_READY_TIMEOUT_S)
    except Exception:
        print(
            f"raylaunch: the Ray cluster at {address} has no {nodes} distinct nodes with {cpus:g} free CPUs "
            f"each after {_READY_TIMEOUT_S:.0f}s (resources.nodes {nodes})",
            flush=True,
        )
        return 2
    actor: Any = ray.remote(NodeLauncher)
    launchers: list[Any] = [
        actor.options(
            num_cpus=0, scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=i)
        ).remote()
        for i in range(nodes)
    ]
    ip, port = ray.get(launchers[0].endpoint.remote())

    def stop(*_: Any) -> None:
        for a in launchers:
            with contextlib.suppress(Exception):
                ray.kill(a)
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    job_id = spec_path.parent.name
    env = {"GLOO_SOCKET_IFNAME": "lo"} if ip.startswith("127.") else {}
    logs = spec_path.parent / "logs"
    logs.mkdir(exist_ok=True)
    print(f"raylaunch: {nodes} nodes x {res['workers']} workers, rendezvous at {ip}:{port}", flush=True)
    t0 = time.monotonic()
    refs = [
        a.run.remote(torchrun_argv(spec, spec_path, f"{ip}:{port}", job_id), env, str(logs / f"node-{i}.log"))
        for i, a in enumerate(launchers)
    ]
    codes = ray.get(refs)
    print(f"raylaunch: nodes exited with {codes} after {time.monotonic() - t0:.1f}s", flush=True)
    return next((c for c in codes if c != 0), 0)


if __name__ == "__main__":
    raise SystemExit(main())
