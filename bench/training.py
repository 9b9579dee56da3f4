"""Training benchmark: DDP scaling (samples/s with 2 workers vs 1) on a compute-bound recipe, and the job
launcher's overhead over a bare ``torchrun`` of the same worker.

    .venv/bin/python bench/training.py [--images 3072] [--steps 24] [--batch 128]

Compute-bound on purpose: a conv net on 28x28 images with a large per-worker batch and one thread per worker, so
each step's compute dwarfs the gradient all-reduce (a small MLP with small batches is comm-bound and does not
scale on two cores; see FACTS.md). Both runs do the same number of optimizer steps per worker; samples/s comes
from the workers' own clock (result.json ``train_samples_per_s``), so process start-up is not in it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.store import InMemoryJobStore, JobRecord
from aiaas.training.launcher import JobRunner, prepare_job_dir, torchrun_command
from aiaas.training.spec import parse_spec


def make_images(path: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 80, (n, 28, 28)).astype(np.uint8)
    for c in range(10):  # a class-dependent bright bar, so the net has something to learn
        x[y == c, 2 + 2 * c : 4 + 2 * c, 4:24] += 150
    np.savez(path, x=x, y=y)
    return path


def run_job(root: Path, request: dict) -> tuple[dict, float]:
    spec = parse_spec(request)
    local = prepare_job_dir(spec, root)
    store = InMemoryJobStore()
    store.create(JobRecord(id=root.name, spec=local, job_dir=str(root), state="queued"))
    t0 = time.perf_counter()
    runner = JobRunner(root.name, store)
    runner.start()
    job = runner.wait()
    wall = time.perf_counter() - t0
    if job.state != "succeeded":
        raise SystemExit(f"{root.name} {job.state}: {job.reason}")
    return json.loads(JobDir(root).result.read_text()), wall


def bare_torchrun(root: Path, request: dict) -> float:
    spec = parse_spec(request)
    prepare_job_dir(spec, root)
    t0 = time.perf_counter()
    subprocess.run(
        torchrun_command(spec, JobDir(root).spec),
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


def _solo_steps(args: tuple[int, int, int, float]) -> float:
    """One process, one thread: ``steps`` training steps of the image recipe's net on random images, without any
    communication; returns samples/s. Run alone and as two processes at once, it measures what two cores give
    to two independent workers -- the ceiling DDP's scaling is judged against (2.0 only on two real cores)."""
    steps, batch, classes, start_at = args
    import torch

    from aiaas.training.recipes import get_recipe

    torch.set_num_threads(1)
    torch.manual_seed(0)
    recipe = get_recipe("image", {"channels": [32, 64], "hidden": 64, "batch_size": batch})
    net = recipe.build_model(
        {"channels_in": 1, "image_shape": [28, 28], "classes": list(range(classes)), "dtype": "uint8"}
    )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, classes, (batch,))  # as the recipe feeds it (NCHW float)
    for _ in range(3):  # warm-up
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    while time.time() < start_at:  # both processes start timing together
        time.sleep(0.001)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def hardware_ceiling(steps: int, batch: int) -> tuple[float, float]:
    """(samples/s of one process alone, of two independent processes together)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_solo_steps, [(1, batch, 10, 0.0)] * 2)  # imports done in both
        alone = pool.apply(_solo_steps, ((steps, batch, 10, 0.0),))
        start = time.time() + 0.5
        together = sum(pool.map(_solo_steps, [(steps, batch, 10, start)] * 2))
    return alone, together


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=3072)
    ap.add_argument("--steps", type=int, default=24, help="optimizer steps per worker")
    ap.add_argument("--batch", type=int, default=128, help="per-worker batch")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="aiaas-bench-train-") as tmp:
        d = Path(tmp)
        data = make_images(d / "images.npz", args.images)

        def request(workers: int, steps: int) -> dict:
            return {
                "recipe": "image",
                "training_file": str(data),
                "model": "bench",
                "hyperparameters": {
                    "epochs": 100,
                    "max_steps": steps,
                    "batch_size": args.batch,
                    "channels": [32, 64],
                    "hidden": 64,
                    "log_every_n_steps": 1000,
                },
                "resources": {"workers": workers, "threads_per_worker": 1},
                "checkpoint": {"every_n_steps": 100000, "keep_last": 1},
                "max_restarts": 0,
            }

        rates: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.repeats):
            for w in (1, 2):  # interleaved, so load drift hits both
                res, wall = run_job(d / f"scale-w{w}-r{r}", request(w, args.steps))
                rates[w].append(res["train_samples_per_s"])
                print(
                    f"workers={w} run {r}: {res['train_samples_per_s']:.0f} samples/s (job wall {wall:.1f}s, "
                    f"train accuracy {res['metrics']['train_accuracy']:.3f})",
                    flush=True,
                )
        one, two = max(rates[1]), max(rates[2])
        alone, together = hardware_ceiling(args.steps, args.batch)
        print(
            f"\nscaling: 1 worker {one:.0f} samples/s, 2 workers {two:.0f} samples/s -> {two / one:.2f}x (target >= "
            "1.8x)"
        )
        print(
            f"hardware ceiling: the same net's steps in 1 process {alone:.0f} samples/s, in 2 independent processes "
            f"{together:.0f} samples/s -> {together / alone:.2f}x (what 2 cores give 2 workers with no communication)"
        )
        print(f"DDP efficiency: {two / one:.2f}x of {together / alone:.2f}x = {(two / one) / (together / alone):.0%}")

        walls, bares = [], []
        for r in range(args.repeats):
            walls.append(run_job(d / f"launch-r{r}", request(1, 1))[1])
            bares.append(bare_torchrun(d / f"bare-r{r}", request(1, 1)))
        job, bare = min(walls), min(bares)
        print(
            f"launch: job via JobRunner {job:.2f}s vs bare torchrun {bare:.2f}s -> overhead {job - bare:+.2f}s "
            f"({job / bare:.2f}x)"
        )


if __name__ == "__main__":
    main()
