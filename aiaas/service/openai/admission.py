"""Admitting a generation and metering it: governance's typed admission (``Admission.limits``) decides how many
tokens a generation may use; nothing is read back from response headers.

A generation is admitted before any token is produced and finished with ``units_in`` = prompt tokens and
``units_out`` = completion tokens, so units-per-minute limits and budgets count tokens. A units/minute limit
also binds *during* a generation: the stream stops when the tokens used reach what the limit had left at
admission, with a 429 error (inside the stream as its last data chunk).
"""

from __future__ import annotations

import math
import time

import anyio

from aiaas.errors import AiaasError, RateLimited
from aiaas.service.dataplane import model_ref
from aiaas.service.governance import Admission, Governance, Outcome, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.models import VersionRecord


class Meter:
    """Finishes the admission exactly once, shielded from the cancellation of a disconnected client."""

    def __init__(self, governance: Governance, metrics: Metrics, admission: Admission, prompt_tokens: int) -> None:
        self.governance, self.metrics, self.admission = governance, metrics, admission
        self.prompt_tokens = prompt_tokens
        self.t0 = time.perf_counter()
        self.t_first: float | None = None  # when the first token came out (time to first token)
        self.done = False

    @property
    def cap(self) -> float | None:
        """Tokens the caller's units/minute limit had left at admission (None: no such limit)."""
        units = self.admission.limits.units
        return None if units is None else units.remaining

    async def finish(self, status: int, completion_tokens: int) -> None:
        if self.done:
            return
        self.done = True
        elapsed = time.perf_counter() - self.t0
        with anyio.CancelScope(shield=True):
            await self.governance.finish(
                self.admission,
                Outcome(
                    status=status,
                    units_in=float(self.prompt_tokens),
                    units_out=float(completion_tokens),
                    compute_s=elapsed,
                ),
            )
        m = self.admission.model
        self.metrics.request_done(m.name, m.version or "", "success" if status == 200 else str(status), elapsed, None)
        self.metrics.ops.llm_request(
            m.name, self.prompt_tokens, completion_tokens, self.t0, self.t_first, self.t0 + elapsed
        )


def units_refusal(admission: Admission, used: float, cap: float, during: bool) -> RateLimited:
    """429 with Retry-After: the time the bucket needs to refill what this request is short of."""
    units = admission.limits.units
    per_minute = units.limit if units is not None else 0.0
    short = max(used - cap, 1.0)
    retry = max(1, math.ceil(short * 60.0 / per_minute)) if per_minute > 0 else 60
    where = "ran out during generation" if during else "has too few tokens left for this prompt"
    headers = admission.limits.headers()
    headers["Retry-After"] = str(retry)
    return RateLimited(
        f"rate limit exceeded: the tokens-per-minute limit {where} ({used:g} tokens needed, {cap:g} were left); "
        f"retry after {retry} s",
        code="rate_limit_exceeded",
        headers=headers,
    )


async def admit(
    governance: Governance,
    metrics: Metrics,
    principal: Principal,
    vr: VersionRecord,
    name: str,
    endpoint: str,
    prompt_tokens: int,
) -> Meter:
    """Admit a generation of ``prompt_tokens`` prompt tokens; refuse (429) one the units limit cannot finish."""
    try:
        admission = await governance.admit(principal, model_ref(vr, name), endpoint)
    except AiaasError as e:
        metrics.ops.refused(name, principal.tenant_id, e.status_code)
        raise
    meter = Meter(governance, metrics, admission, prompt_tokens)
    cap = meter.cap
    if cap is not None and prompt_tokens >= cap:  # units are post-paid: do not start what cannot finish
        meter.prompt_tokens = 0  # refused before any work: nothing is charged
        metrics.ops.refused(name, principal.tenant_id, 429)
        await meter.finish(429, 0)
        raise units_refusal(admission, prompt_tokens + 1, cap, during=False)
    return meter
