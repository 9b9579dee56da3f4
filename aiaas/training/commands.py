"""The processes a training job starts, per strategy (no torch import: the server builds these).

    ddp, zero  python -m torch.distributed.run --standalone --nproc_per_node N --max-restarts R \\
                   -m aiaas.training.worker --spec JOB_DIR/spec.json
    horovod    python -m aiaas.training.hvdrun --max-restarts R --loopback -- \\
                   --gloo -np N -H localhost:N python -m aiaas.training.worker --spec JOB_DIR/spec.json

(aiaas.training.hvdrun runs horovodrun with restarts, its rendezvous server on 127.0.0.1.)

Several machines: torchrun takes ``--nnodes M --node-rank K --rdzv-backend c10d --rdzv-endpoint HOST:PORT
--rdzv-id JOB`` instead of ``--standalone`` on every node; horovodrun runs once, on the first node, with
``-np TOTAL -H host1:N,host2:N`` (passwordless ssh to the others). The job directory must be on shared storage.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aiaas.training.spec import JobSpec

RESTART_ENV = "AIAAS_RESTART_COUNT"  # the attempt number under horovodrun (set by aiaas.training.hvdrun)
EXTENSIONS_ENV = "TORCH_EXTENSIONS_DIR"  # where DeepSpeed JIT-compiles its ops (zero), kept across jobs


def torchrun_command(spec: JobSpec, spec_path: Path, python: str = sys.executable) -> list[str]:
    """ddp and zero: torchrun starts the ranks and restarts the group after a crash."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(spec.resources.workers),
        "--max-restarts",
        str(spec.max_restarts),
        "--monitor-interval",
        "0.2",
        "-m",
        "aiaas.training.worker",
        "--spec",
        str(spec_path),
    ]


def horovod_command(spec: JobSpec, spec_path: Path, python: str = sys.executable) -> list[str]:
    """horovod: horovodrun's Gloo controller on this machine (all traffic on 127.0.0.1), wrapped for restarts."""
    n = str(spec.resources.workers)
    return [
        python,
        "-m",
        "aiaas.training.hvdrun",
        "--max-restarts",
        str(spec.max_restarts),
        "--loopback",
        "--",
        "--gloo",
        "-np",
        n,
        "-H",
        f"localhost:{n}",
        python,
        "-m",
        "aiaas.training.worker",
        "--spec",
        str(spec_path),
    ]


def training_command(spec: JobSpec, spec_path: Path, python: str = sys.executable) -> list[str]:
    if spec.resources.nodes > 1:  # several machines of a Ray cluster: one torchrun per node (raylaunch)
        return [python, "-m", "aiaas.training.raylaunch", "--spec", str(spec_path)]
    if spec.strategy == "horovod":
        return horovod_command(spec, spec_path, python)
    return torchrun_command(spec, spec_path, python)


def training_env(spec: JobSpec, torch_extensions_dir: Path | None) -> dict[str, str]:
    """Environment a job's processes get on top of the launcher's, per strategy."""
    env: dict[str, str] = {}
    if spec.strategy == "zero":
        env["DS_ACCELERATOR"] = "cpu"  # ZeRO runs on CPU here; skips DeepSpeed's accelerator probing
        if torch_extensions_dir is not None:
            torch_extensions_dir.mkdir(parents=True, exist_ok=True)
            env[EXTENSIONS_ENV] = str(torch_extensions_dir)
    return env


def launcher_name(spec: JobSpec) -> str:
    """What the job's logs/torchrun.log is the output of (for failure messages)."""
    return "horovodrun" if spec.strategy == "horovod" else "torchrun"
