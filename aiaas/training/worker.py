"""The training process, one per rank, started by torchrun (strategies ddp and zero) or horovodrun (horovod)::

    python -m torch.distributed.run --standalone --nproc_per_node N --max-restarts R \\
        -m aiaas.training.worker --spec JOB_DIR/spec.json

aiaas.training.commands builds the commands, for several machines too (the job directory must be on shared
storage, or at least hold the same spec and data on every node; rank 0 writes checkpoints and the result).
aiaas.training.strategies holds what differs per strategy (joining the ranks, combining gradients, the
optimizer state a checkpoint keeps); the loop here is shared.

Failure model: a crash (exit != 0, a signal) makes torchrun restart the whole group, which resumes from the
latest checkpoint. Errors a restart cannot fix -- bad data, bad hyperparameters, the max_runtime_s deadline --
are written to ``errors/rank<r>.json`` with ``fatal: true`` and the process exits 0, so torchrun does not burn
restarts on them; the launcher reads the file and fails the job with its message.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import math
import os
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DistributedSampler

from aiaas.errors import InvalidInput
from aiaas.jobs.events import EventWriter
from aiaas.jobs.jobdir import JobDir, die_with_parent, write_json_atomic
from aiaas.training.recipes import Recipe, get_recipe
from aiaas.training.spec import JobSpec
from aiaas.training.strategies import Strategy, env_rank_world, make_strategy

log = logging.getLogger("aiaas.training.worker")
DEADLINE_ENV = "AIAAS_JOB_DEADLINE"  # epoch seconds; set by the launcher from max_runtime_s
STEP_DELAY_ENV = "AIAAS_TRAINING_STEP_DELAY_S"  # testing aid: sleep this long per step so fault tests can hit mid-run
# testing aid: while this file exists, the first attempt of a job waits after its first checkpoint, so a fault test
# can kill a worker at a known point however slow the machine is (later attempts never wait)
HOLD_FILE_ENV = "AIAAS_TRAINING_HOLD_FILE"


class FatalJobError(Exception):
    """An error no restart can fix."""


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def param_checksum(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Worker:
    def __init__(self, spec_path: Path) -> None:
        self.jd = JobDir(spec_path.parent)
        self.spec = JobSpec.model_validate_json(spec_path.read_text())
        self.rank, self.world, self.local_rank, self.restart = env_rank_world()
        self.deadline = float(os.environ.get(DEADLINE_ENV, "inf"))
        self.events = EventWriter(self.jd.events)

    def emit(self, message: str, **kw: Any) -> None:
        if kw.get("type") != "metrics":
            log.info("%s", message)
        if self.rank == 0:
            self.events.emit(message, **kw)

    def _path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.jd.root / p

    # -- checkpoints ----------------------------------------------------------------------------
    def checkpoint(self, step: int, epoch: int, model: torch.nn.Module, meta: dict[str, Any]) -> None:
        """Every rank calls this (zero gathers the optimizer shards); rank 0 writes the file."""
        opt_state = self.strategy.optimizer_state()
        if self.rank == 0:
            self.save_checkpoint(step, epoch, model, opt_state, meta)

    def save_checkpoint(
        self, step: int, epoch: int, model: torch.nn.Module, opt_state: Any, meta: dict[str, Any]
    ) -> Path:
        self.emit(f"writing checkpoint at step {step}", phase="checkpointing", step=step)
        path = self.jd.checkpoint_path(step)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        state = {
            "step": step,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": opt_state,
            "meta": meta,
            "recipe": self.spec.recipe,
            "world_size": self.world,
            "strategy": self.spec.strategy,
        }
        torch.save(state, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for _, old in self.jd.list_checkpoints()[: -self.spec.checkpoint.keep_last]:
            old.unlink(missing_ok=True)
        self.emit(f"checkpoint saved at step {step}", phase="training", step=step, checkpoint=path.name)
        return path

    def load_latest(self) -> dict[str, Any] | None:
        for step, path in reversed(self.jd.list_checkpoints()):
            try:
                state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as e:  # a damaged file: fall back to the one before
                log.warning("checkpoint %s unreadable (%s); trying an older one", path.name, e)
                continue
            if state.get("recipe") != self.spec.recipe:
                continue
            log.info("resuming from %s (step %d)", path.name, step)
            return state
        return None

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> None:
        spec = self.spec
        torch.set_num_threads(spec.resources.threads_per_worker)
        _seed(spec.seed)
        self.strategy = strategy = make_strategy(spec, self.restart)
        device = strategy.device
        self.emit(
            f"rendezvous: {self.world} worker(s), {strategy.describe}, attempt {self.restart}",
            phase="rendezvous",
            restart=self.restart,
        )
        self.rank, self.world = strategy.init()
        try:
            recipe = get_recipe(spec.recipe, spec.hyperparameters)
            p = recipe.params
            train_path = self._path(spec.training_file)
            state = self.load_latest()
            meta = state["meta"] if state else recipe.prepare(train_path)
            data = recipe.tensors(train_path, meta)
            _seed(spec.seed)  # same initial weights on every rank and every attempt
            model = recipe.build_model(meta).to(device)
            opt = recipe.optimizer(model)
            step = 0
            if state:
                model.load_state_dict(state["model"])
                step = int(state["step"])
            net, note = strategy.wrap(model, opt, state["optimizer"] if state else None, p.batch_size)
            if state:
                self.emit(
                    f"resumed from checkpoint at step {step} (attempt {self.restart})" + (f"; {note}" if note else ""),
                    phase="resumed",
                    resumed_from_step=step,
                    restart=self.restart,
                )
            n = len(data[0])
            # only len() of the dataset is used: batches are gathered from the tensors directly (no DataLoader)
            sampler: DistributedSampler[int] = DistributedSampler(
                range(n),  # type: ignore[arg-type]
                num_replicas=self.world,
                rank=self.rank,
                shuffle=True,
                seed=spec.seed,
            )
            bs = p.batch_size
            steps_per_epoch = max(1, math.ceil(len(sampler) / bs))
            total = p.epochs * steps_per_epoch
            if p.max_steps:
                total = min(total, p.max_steps)
            log_every = p.log_every_n_steps or max(1, total // 50)
            self.emit(
                f"training: {n} rows, {total} steps, {self.world} x batch {bs}",
                phase="training",
                total_steps=total,
                rows=n,
                restart=self.restart,
            )
            step = self.train(recipe, net, model, data, sampler, device, step, total, steps_per_epoch, log_every, meta)
            if not state or int(state["step"]) != step:  # decided alike on every rank: checkpoint() is collective
                self.checkpoint(step, (step - 1) // steps_per_epoch if step else 0, model, meta)
            write_json_atomic(
                self.jd.ranks / f"rank{self.rank}.json",
                {"rank": self.rank, "step": step, "param_checksum": param_checksum(model), "restart": self.restart},
            )
            if self.rank == 0:
                self.finish(recipe, model, meta, step, train_path)
        finally:
            with contextlib.suppress(Exception):
                strategy.close()

    def train(
        self,
        recipe: Recipe,
        net: nn.Module,
        model: nn.Module,
        data: tuple[torch.Tensor, ...],
        sampler: DistributedSampler,
        device: torch.device,
        step: int,
        total: int,
        steps_per_epoch: int,
        log_every: int,
        meta: dict[str, Any],
    ) -> int:
        bs = recipe.params.batch_size
        every = self.spec.checkpoint.every_n_steps
        t_start, start_step = time.perf_counter(), step
        t_last, _last_step = t_start, step
        loss_sum = torch.zeros(2, dtype=torch.float64)
        delay = float(os.environ.get(STEP_DELAY_ENV, "0") or 0)
        warm_step = start_step + min(2, max(total - start_step - 1, 0))
        t_warm: float | None = time.perf_counter() if warm_step == start_step else None
        self.train_rate = 0.0
        strategy: Strategy = self.strategy
        net.train()
        while step < total:
            epoch = step // steps_per_epoch
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler), dtype=torch.int64)
            for b in range(step - epoch * steps_per_epoch, steps_per_epoch):
                idx = order[b * bs : (b + 1) * bs]
                *inputs, target = (t[idx].to(device) for t in data)
                strategy.zero_grad()
                loss = recipe.loss(net(*inputs), target)
                strategy.step(loss)
                step += 1
                if delay:
                    time.sleep(delay)
                if step == warm_step:
                    t_warm = time.perf_counter()
                loss_sum += torch.tensor([loss.item() * len(idx), len(idx)], dtype=torch.float64)
                if step % log_every == 0 or step == total:
                    stop = 1.0 if time.time() > self.deadline else 0.0
                    stats = torch.tensor([*loss_sum.tolist(), stop], dtype=torch.float64)
                    stats = strategy.all_reduce_sum(stats)  # one small collective: mean loss over ranks, a shared stop
                    now = time.perf_counter()
                    rate = stats[1].item() / max(now - t_last, 1e-9)
                    eta = (total - step) * (now - t_start) / max(step - start_step, 1)
                    self.emit(
                        f"step {step}/{total}",
                        type="metrics",
                        step=step,
                        total_steps=total,
                        loss=round(stats[0].item() / max(stats[1].item(), 1), 6),
                        samples_per_s=round(rate, 1),
                        epoch=epoch,
                        eta_s=round(eta, 1),
                    )
                    loss_sum.zero_()
                    t_last, _last_step = now, step
                    if stats[2].item() > 0:
                        raise FatalJobError(
                            f"the job ran past max_runtime_s={self.spec.max_runtime_s:g} and was stopped at step "
                            f"{step}/{total}"
                        )
                if step % every == 0 and step < total:
                    self.checkpoint(step, epoch, model, meta)
                    self._hold_after_checkpoint()
                if step >= total:
                    break
        # throughput over the steps after warm-up (the first steps allocate kernels and buffers)
        if t_warm is not None and step > warm_step:
            self.train_rate = (step - warm_step) * bs * self.world / max(time.perf_counter() - t_warm, 1e-9)
        return step

    def _hold_after_checkpoint(self) -> None:
        hold = os.environ.get(HOLD_FILE_ENV)
        if hold and self.restart == 0:
            while os.path.exists(hold):
                time.sleep(0.02)

    def finish(self, recipe: Recipe, model: torch.nn.Module, meta: dict[str, Any], step: int, train_path: Path) -> None:
        """Rank 0: export to ONNX, check the export against torch, evaluate, write result.json last."""
        from aiaas.training.files import sha256_file

        spec = self.spec
        self.emit("exporting to ONNX", phase="exporting")
        self.jd.export.mkdir(parents=True, exist_ok=True)
        onnx_path = self.jd.export / "model.onnx"
        model.eval()
        recipe.export(model, meta, onnx_path)
        eval_path = self._path(spec.validation_file) if spec.validation_file else train_path
        prefix = "" if spec.validation_file else "train_"
        tensors = recipe.tensors(eval_path, meta)
        with torch.no_grad():
            out = model(*tensors[:-1]).numpy()
        metrics = {prefix + k: v for k, v in recipe.metrics(out, tensors[-1].numpy(), meta).items()}
        parity = self.onnx_parity(recipe, onnx_path, model, meta, eval_path)
        inputs, outputs = recipe.tensor_specs(meta)
        result = {
            "metrics": metrics,
            "evaluated_on": "validation" if spec.validation_file else "training",
            "rows_evaluated": len(tensors[-1]),
            "steps": step,
            "train_samples_per_s": round(getattr(self, "train_rate", 0.0), 1),  # after warm-up, all workers
            "onnx_max_abs_diff": parity,
            "data": {
                "training_sha256": sha256_file(train_path),
                "validation_sha256": sha256_file(eval_path) if spec.validation_file else None,
            },
            "hyperparameters": recipe.params.model_dump(),
            "recipe": spec.recipe,
            "workers": self.world,
            "meta": meta,
            "inputs": [t.model_dump() for t in inputs],
            "outputs": [t.model_dump() for t in outputs],
            "onnx": str(onnx_path.relative_to(self.jd.root)),
        }
        write_json_atomic(self.jd.result, result)
        self.emit(
            "training finished: " + ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()), phase="done", metrics=metrics
        )

    def onnx_parity(
        self, recipe: Recipe, onnx_path: Path, model: torch.nn.Module, meta: dict[str, Any], path: Path
    ) -> float | None:
        """Max |ORT - torch| on up to 64 validation rows, through the served (raw-input) graph."""
        import onnxruntime as ort

        pair = recipe.parity_inputs(path, meta, 64)
        if pair is None:
            return None
        feed, torch_inputs = pair
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = sess.run(None, feed)[0]
        with torch.no_grad():
            want = recipe.export_module(model, meta).eval()(*torch_inputs)
        want_t = want[0] if isinstance(want, tuple) else want
        diff = float(np.max(np.abs(got.astype(np.float64) - want_t.numpy().astype(np.float64)))) if got.size else 0.0
        if diff > 1e-3:
            raise RuntimeError(f"the exported ONNX model disagrees with torch by {diff:.3g}")
        return diff


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aiaas.training.worker")
    ap.add_argument("--spec", required=True, type=Path)
    args = ap.parse_args(argv)
    die_with_parent()
    spec_path = args.spec.resolve()
    jd = JobDir(spec_path.parent)
    rank, _, _, restart = env_rank_world()
    jd.logs.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s rank{rank} attempt{restart} %(levelname)s %(message)s",
        handlers=[logging.FileHandler(jd.rank_log(rank)), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run finally-blocks (close the process group) on cancel
    try:
        Worker(spec_path).run()
    except (InvalidInput, FatalJobError) as e:
        log.error("fatal: %s", getattr(e, "message", str(e)))
        jd.write_error(rank, restart, e, fatal=True)
        return 0  # see the module docstring: do not make torchrun restart a job that cannot succeed
    except BaseException as e:
        if isinstance(e, SystemExit) and e.code in (0, None):
            raise
        log.exception("worker failed")
        jd.write_error(rank, restart, e, fatal=False)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
