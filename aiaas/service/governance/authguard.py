"""Failed authentications per client address: the brake on key sprays and on guessing the bootstrap key.

Each address has a GCRA bucket of ``per_minute`` failures that refills continuously; once it is empty the
address gets 429 with ``Retry-After`` for every authentication attempt -- before any key lookup -- until the
bucket has room again. Only invalid keys count (a missing or malformed header costs nothing to refuse; a
revoked or expired key is answered from the cache). The table is bounded: past ``max_clients`` addresses the
least recently failing is forgotten.

Behind a reverse proxy every caller has the proxy's address: run uvicorn with ``--forwarded-allow-ips`` (the
proxy's address) so the client address is the one the proxy saw.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from aiaas.errors import RateLimited

WINDOW_S = 60.0


class FailedAuthLimiter:
    def __init__(
        self, per_minute: int, *, max_clients: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._clock = clock
        self._interval = WINDOW_S / per_minute if per_minute > 0 else 0.0
        self._tat: OrderedDict[str, float] = OrderedDict()  # address -> theoretical arrival time
        self._lock = threading.Lock()
        self.refused = 0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def check(self, client: str | None) -> None:
        """Raise 429 when ``client`` has no failed attempt left in its window."""
        if not self.enabled:
            return
        tat = self._tat.get(client or "unknown")
        if tat is None:
            return
        wait = tat - self._clock() - (WINDOW_S - self._interval)
        if wait > 1e-9:
            self.refused += 1
            raise RateLimited(
                f"too many failed authentications from this address ({self.per_minute} per minute); "
                f"retry after {math.ceil(wait)} s with a valid API key",
                code="too_many_failed_authentications",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def failed(self, client: str | None) -> None:
        if not self.enabled:
            return
        address = client or "unknown"
        with self._lock:
            now = self._clock()
            self._tat[address] = max(self._tat.get(address, now), now) + self._interval
            self._tat.move_to_end(address)
            while len(self._tat) > self.max_clients:
                self._tat.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tat)
