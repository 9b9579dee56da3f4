"""The batching policy of one model version: which requests may share a batch, how many rows a batch takes and
how long a worker waits for company.

Waiting for company: a worker waits up to ``max_queue_delay_ms`` for more requests only while its batch holds
fewer requests than recent batches did (a moving average). A lone client's request runs at once, so batching
costs no latency at concurrency 1, while a crowd of clients is gathered into full batches. Left at its default,
the delay grows to a fraction of the batch's compute time. Idle replicas split the waiting work between them
when it is long enough to be worth one more model call.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from aiaas.batching.items import Item
from aiaas.errors import InvalidInput
from aiaas.runtime.base import Tensors
from aiaas.types.model_config import ModelConfig

_SPLIT_MIN_S = 0.002  # idle instances split the waiting work only when it would take longer than this
_AUTO_DELAY_FRACTION = 0.25  # default delay: up to this fraction of a batch's compute time


class BatchPolicy:
    """The numbers of one model version's batches. The worker threads update its moving averages (a race only
    blurs an average)."""

    def __init__(self, config: ModelConfig) -> None:
        b = config.batching
        self.name = config.name
        self.max_batch = max(1, config.max_batch_size)
        self.batching = config.max_batch_size > 0
        self.delay_s = b.max_queue_delay_ms / 1000.0
        self.preferred = sorted(b.preferred_batch_sizes)
        # max_queue_delay_ms left at its default: it may grow to a fraction of the batch time (see plan)
        self.auto_delay = "max_queue_delay_ms" not in b.model_fields_set
        self._recent = 1.0  # moving average of the crowd a batch could gather (see plan)
        self._batch_s = 0.0  # moving average of the compute seconds of one batch
        self._row_s = 0.0  # moving average of compute seconds per row (0 until the first batch ran)

    def batch_key(self, inputs: Tensors, parameters: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
        """The request's rows and the key of the batches it may join (input names, dtypes, non-batch dims,
        parameters); InvalidInput for a request that cannot be batched."""
        if not self.batching:
            return 1, ()
        rows = -1
        parts: list[Any] = []
        for name in sorted(inputs):
            arr = inputs[name]
            if arr.ndim == 0:
                raise InvalidInput(f"input {name!r}: a batched model needs a batch dimension (shape [rows, ...])")
            if rows == -1:
                rows = arr.shape[0]
            elif arr.shape[0] != rows:
                raise InvalidInput(
                    f"input {name!r} has {arr.shape[0]} rows but other inputs have {rows}: the first dimension "
                    "is the batch and must match"
                )
            parts.append((name, arr.dtype.str, arr.shape[1:]))
        if rows > self.max_batch:
            raise InvalidInput(f"batch of {rows} rows exceeds max_batch_size {self.max_batch} of model {self.name!r}")
        if parameters:
            parts.append(tuple(sorted((k, repr(v)) for k, v in parameters.items())))
        return rows, tuple(parts)

    def plan(self, rows: int, queue: deque[Item], idle: int, crowd: int) -> tuple[int, int, int, float]:
        """For a batch that starts with ``rows``: (cap, target rows, requests to expect, seconds to wait at most).
        ``idle``: ready replicas not running a batch (the asking one included); ``crowd``: requests in the system
        that no replica is running."""
        cap = self.max_batch
        # Idle instances share what is waiting, so they run side by side: one taking everything while the others
        # idle halves throughput on a CPU (16 clients, 2 instances: batches of 16 alternating between them).
        # Only worth it when that work is long next to the cost of one more model call (~0.1 ms): a tiny model
        # keeps its large batches.
        if idle > 1 and queue and (len(queue) + 1) * self._row_s > _SPLIT_MIN_S:
            waiting = rows + sum(it.rows for it in queue)
            cap = min(cap, max(rows, -(-waiting // idle)))
        target = next((p for p in self.preferred if p > rows), cap) if self.preferred else cap
        target = min(target, cap)
        # The crowd: requests in the system that no other instance is running -- this one, those queued, and
        # those whose answers are on their way back (their clients are about to send the next ones). A lone
        # client never waits; a crowd waits for (most of) its members, so a big model runs full batches instead
        # of settling into two half batches that alternate.
        self._recent += 0.25 * (crowd - self._recent)
        expect = min(max(1, int(self._recent * 0.8)), cap)
        wait_s = self.delay_s
        if self.auto_delay:  # the default delay grows with the model: waiting 5 ms to double a 50 ms batch pays
            wait_s = max(wait_s, _AUTO_DELAY_FRACTION * self._batch_s)
        return cap, target, expect, wait_s

    def ran(self, rows: int, compute_s: float) -> None:
        """A batch of ``rows`` took ``compute_s``: the moving averages the next plans use."""
        self._row_s += 0.25 * (compute_s / max(1, rows) - self._row_s)
        self._batch_s += 0.25 * (compute_s - self._batch_s)


def take_compatible(queue: deque[Item], key: tuple[Any, ...], room: int) -> list[Item]:
    """Remove from ``queue`` the requests with ``key`` that fit in ``room`` rows, in order; the rest keep theirs."""
    taken: list[Item] = []
    if not queue:
        return taken
    skipped: list[Item] = []
    while queue:
        it = queue.popleft()
        if it.key == key and it.rows <= room:
            taken.append(it)
            room -= it.rows
        else:
            skipped.append(it)
        if room <= 0:
            break
    queue.extendleft(reversed(skipped))
    return taken
