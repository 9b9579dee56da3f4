"""The distributed part of a training worker, one class per ``JobSpec.strategy``. The worker's loop
(aiaas.training.worker: data, sampler, checkpoints, events, export) is the same for all three; a strategy decides
how the ranks meet, how gradients are combined and what a checkpoint keeps of the optimizer:

    ddp      torch DistributedDataParallel; torchrun starts the ranks; gloo (nccl on GPUs).
    horovod  hvd.init() under ``horovodrun --gloo``; hvd.DistributedOptimizer averages the gradients; rank 0's
             weights and optimizer state are broadcast at the start. CPU.
    zero     DeepSpeed ZeRO stage 1 (optimizer state sharded across ranks) or 2 (gradients too) under torchrun,
             CPU: the process group is made as for ddp, then ``deepspeed.init_distributed(dist_backend="gloo")``
             and ``deepspeed.initialize``. DeepSpeed JIT-compiles a shared-memory op on first use (~2 minutes,
             g++ and ninja) into TORCH_EXTENSIONS_DIR, which the launcher points into the aiaas home.

Checkpoints stay loadable whatever the strategy: ``model`` is always the full state dict (ZeRO 1/2 keep the
parameters whole on every rank; rank 0 writes them). ``optimizer`` is torch's optimizer state dict for ddp and
horovod; for zero it is ``{"zero_stage", "world_size", "shards": [one per rank]}``, gathered to rank 0 -- restored
when the job resumes with the same stage and workers, otherwise the optimizer restarts from the checkpointed
weights (with a message in the job's events).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from aiaas.training.commands import RESTART_ENV
from aiaas.training.spec import JobSpec

TIMEOUT = timedelta(minutes=10)  # rendezvous and collectives


def env_rank_world() -> tuple[int, int, int, int]:
    """(rank, world size, local rank, restart attempt) from the launcher's environment: torchrun's variables,
    or horovodrun's (HOROVOD_RANK, ...) for the horovod strategy."""
    env = os.environ

    def first(*names: str, default: str) -> int:
        return int(next((env[n] for n in names if env.get(n)), default))

    return (
        first("RANK", "HOROVOD_RANK", default="0"),
        first("WORLD_SIZE", "HOROVOD_SIZE", default="1"),
        first("LOCAL_RANK", "HOROVOD_LOCAL_RANK", default="0"),
        first("TORCHELASTIC_RESTART_COUNT", RESTART_ENV, default="0"),
    )


class Strategy:
    """``ddp``; the base of the others. Call order: init -> wrap -> (zero_grad, step)* -> close."""

    name = "ddp"

    def __init__(self, spec: JobSpec, restart: int) -> None:
        self.spec = spec
        self.restart = restart
        self.opt: torch.optim.Optimizer | None = None
        cuda = torch.cuda.is_available() and self.name == "ddp"
        self.backend = "nccl" if cuda else "gloo"
        self.local_rank = env_rank_world()[2]
        self.device = torch.device(f"cuda:{self.local_rank}") if cuda else torch.device("cpu")

    @property
    def describe(self) -> str:
        return f"{self.name}, backend {self.backend}"

    def init(self) -> tuple[int, int]:
        """Join the other ranks; returns (rank, world size)."""
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        store, rank, world = next(dist.rendezvous("env://", timeout=TIMEOUT))
        # keys per attempt: after a restart the ranks must not read the previous attempt's gloo addresses from a
        # store that outlived it (seen here: "Gloo connectFullMesh failed ... Connection refused" on attempt 1)
        store = dist.PrefixStore(f"aiaas/attempt-{self.restart}/", store)
        dist.init_process_group(self.backend, store=store, rank=rank, world_size=world, timeout=TIMEOUT)
        return rank, world

    def wrap(
        self, model: nn.Module, opt: torch.optim.Optimizer, opt_state: Any | None, batch_size: int
    ) -> tuple[nn.Module, str | None]:
        """The module to train through (``batch_size``: per rank), with the checkpoint's optimizer state
        restored; the second value says why that state was not restored (None when it was, or there was none)."""
        if opt_state is not None:
            opt.load_state_dict(opt_state)
        self.opt = opt
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids), None

    def zero_grad(self) -> None:
        assert self.opt is not None
        self.opt.zero_grad(set_to_none=True)

    def step(self, loss: torch.Tensor) -> None:
        assert self.opt is not None
        loss.backward()
        self.opt.step()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t

    def optimizer_state(self) -> Any:
        """What a checkpoint stores as ``optimizer``. Every rank calls it (zero gathers); rank 0 saves it."""
        assert self.opt is not None
        return self.opt.state_dict()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


class HorovodStrategy(Strategy):
    name = "horovod"

    def __init__(self, spec: JobSpec, restart: int) -> None:
        super().__init__(spec, restart)
        import horovod.torch as hvd

        self.hvd = hvd

    def init(self) -> tuple[int, int]:
        self.hvd.init()
        self.local_rank = self.hvd.local_rank()
        return self.hvd.rank(), self.hvd.size()

    def wrap(
        self, model: nn.Module, opt: torch.optim.Optimizer, opt_state: Any | None, batch_size: int
    ) -> tuple[nn.Module, str | None]:
        hvd = self.hvd
        # every rank built the same seeded model and read the same checkpoint; the broadcast makes rank 0's copy
        # authoritative anyway (it also covers nodes whose job directories drifted apart)
        hvd.broadcast_parameters(model.state_dict(), root_rank=0)
        # DistributedOptimizer builds a new optimizer from opt's param groups: state loaded into opt would be lost
        self.opt = hvd.DistributedOptimizer(opt, named_parameters=model.named_parameters(), op=hvd.Average)
        if opt_state is not None:  # resumed: rank 0's state wins. A fresh optimizer has none to share, and
            # Horovod would create it with a zero-gradient step (weight decay applied, Adam's step count off by one)
            self.opt.load_state_dict(opt_state)
            hvd.broadcast_optimizer_state(self.opt, root_rank=0)
        return model, None

    def zero_grad(self) -> None:
        assert self.opt is not None
        self.opt.zero_grad()  # Horovod's override takes no set_to_none (torch's default sets them to None anyway)

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.hvd.allreduce(t, op=self.hvd.Sum, name="aiaas.stats")
        return out

    def close(self) -> None:
        self.hvd.shutdown()


class ZeroStrategy(Strategy):
    name = "zero"

    def __init__(self, spec: JobSpec, restart: int) -> None:
        super().__init__(spec, restart)
        import deepspeed

        self.deepspeed = deepspeed
        self.stage = spec.zero_stage
        self.engine: Any = None
        logging.getLogger("DeepSpeed").setLevel(logging.WARNING)  # it logs its whole config at INFO

    @property
    def describe(self) -> str:
        return f"zero stage {self.stage} (DeepSpeed), backend gloo"

    def init(self) -> tuple[int, int]:
        rank, world = super().init()  # our own rendezvous (per-attempt store keys); DeepSpeed then adopts it
        self.deepspeed.init_distributed(dist_backend="gloo", timeout=TIMEOUT)
        return rank, world

    def wrap(
        self, model: nn.Module, opt: torch.optim.Optimizer, opt_state: Any | None, batch_size: int
    ) -> tuple[nn.Module, str | None]:
        config = {
            "train_micro_batch_size_per_gpu": batch_size,
            "gradient_accumulation_steps": 1,
            "zero_optimization": {"stage": self.stage},
            "zero_allow_untested_optimizer": True,  # the recipes' optimizers are plain torch ones
            "steps_per_print": 2**31 - 1,
            "wall_clock_breakdown": False,
        }
        self.engine, self.opt, _, _ = self.deepspeed.initialize(model=model, optimizer=opt, config=config)
        note = None
        if opt_state is not None:
            world = dist.get_world_size()
            same = (
                isinstance(opt_state, dict)
                and opt_state.get("zero_stage") == self.stage
                and opt_state.get("world_size") == world
            )
            if same:
                self.opt.load_state_dict(opt_state["shards"])  # each rank takes its own shard of the list
            else:
                note = (
                    f"the checkpoint's optimizer state does not fit ZeRO stage {self.stage} on {world} workers; "
                    "the optimizer restarts from the checkpointed weights"
                )
        return self.engine, note

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def step(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss)
        self.engine.step()

    def optimizer_state(self) -> Any:
        assert self.opt is not None
        shard = self.opt.state_dict()
        world, rank = dist.get_world_size(), dist.get_rank()
        shards: list[Any] | None = [None] * world if rank == 0 else None
        dist.gather_object(shard, shards, dst=0)
        return {"zero_stage": self.stage, "world_size": world, "shards": shards} if rank == 0 else None


STRATEGIES: dict[str, type[Strategy]] = {"ddp": Strategy, "horovod": HorovodStrategy, "zero": ZeroStrategy}


def make_strategy(spec: JobSpec, restart: int) -> Strategy:
    return STRATEGIES[spec.strategy](spec, restart)
