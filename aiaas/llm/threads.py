"""How many cores an LLM engine's decode uses: every core while few streams run, one fewer under load.

Decode is a loop of matrix-vector products; with one stream and nothing else to do, every core should work on
it (torch's intra-op pool, llama.cpp's ``n_threads``). Under load the same process also parses requests,
encodes server-sent events for every stream at every step and meters usage: when as many threads decode as
there are cores, the event loop waits for a time slice and streaming latency grows with the number of streams.
So from ``busy_streams`` sequences on (running + waiting), the engine decodes on ``busy_threads`` (default:
one core fewer) and leaves a core to the HTTP path. Measured in ``bench/llm.py`` (both settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class ThreadPolicy:
    idle: int  # threads while fewer than ``busy_streams`` sequences are in the engine
    busy: int  # threads from ``busy_streams`` on
    busy_streams: int

    @classmethod
    def create(cls, threads: int = 0, busy_threads: int = 0, busy_streams: int = 4) -> ThreadPolicy:
        """``threads`` 0 = every core; ``busy_threads`` 0 = one fewer than ``threads`` (at least 1);
        ``busy_streams`` 0 = never switch."""
        if threads < 0 or busy_threads < 0 or busy_streams < 0:
            raise ValueError("threads, busy_threads and busy_streams must be >= 0")
        idle = threads or cores()
        busy = busy_threads or max(1, idle - 1)
        return cls(idle, min(busy, idle), busy_streams)

    def pick(self, streams: int) -> int:
        return self.busy if self.busy_streams and streams >= self.busy_streams else self.idle
