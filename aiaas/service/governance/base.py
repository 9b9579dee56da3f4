"""The governance contract the data plane relies on: who is calling, may they call this model now, and
record what it cost.

The data plane calls, for every request:

    principal = await governance.authenticate(request.headers.get("authorization"))
    admission = await governance.admit(principal, model)      # access, rate limits, concurrency, budget
    try:
        ... run the model ...
    finally:
        await governance.finish(admission, outcome)             # meter usage, charge budgets, free the slot

``AdminKeyGovernance`` is the minimal implementation (one admin key, no limits); the database-backed
implementation (tenants, keys, roles, limits, budgets, usage) implements the same interface.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from aiaas.errors import AuthenticationError
from aiaas.service.governance.limits import RateState, Scopes

if TYPE_CHECKING:
    from aiaas.service.governance.budgets import Reservation

Role = Literal["admin", "developer", "user"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    key_id: str  # id of the API key used
    tenant_id: str  # tenant that owns the key
    role: Role
    allowed_models: frozenset[str] | None = None  # None: every model the tenant can see

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What governance needs to know about the model being called."""

    name: str
    version: str | None = None
    owner: str | None = None  # tenant id; None = public
    pricing: dict[str, float] = field(default_factory=dict)  # per_request, per_1k_units, per_compute_second


@dataclass(slots=True)
class Grant:
    """What an admission holds until ``finish``: its rate-limit buckets and lease, and its budget reservations."""

    scopes: Scopes = ()  # the buckets a request slot was taken in (released with the units used)
    lease: str = ""  # this admission's id in the limiter (concurrency slots)
    reservations: list[Reservation] = field(default_factory=list)  # budget amounts held until settled
    estimate: float = 0.0  # what the budgets reserved for this request
    finished: bool = False  # finish ran (it runs once)


@dataclass(slots=True)
class Admission:
    """A granted request: holds the concurrency slot and what ``finish`` needs to meter it."""

    principal: Principal
    model: ModelRef
    endpoint: str
    started: float  # time.monotonic() at admission
    limits: RateState = field(default_factory=RateState)  # what the binding rate limits had left at admission
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-* headers for the response (limits rendered)
    grant: Grant = field(default_factory=Grant)  # the rate-limit and budget decisions, until finish


@dataclass(slots=True)
class Outcome:
    status: int  # HTTP status answered
    units_in: float = 0.0  # metered input units (items, tokens, audio seconds)
    units_out: float = 0.0  # metered output units
    compute_s: float = 0.0  # model compute seconds spent on this request


def parse_bearer(header: str | None) -> str:
    if not header:
        raise AuthenticationError("missing Authorization header: send 'Authorization: Bearer <api key>'")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("malformed Authorization header: expected 'Bearer <api key>'")
    return token


class Governance(ABC):
    async def start(self) -> None:
        """Open connections, start background flushers."""

    async def close(self) -> None:
        """Flush everything buffered and release resources (called at graceful shutdown)."""

    @abstractmethod
    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        """The caller behind an Authorization header; ``client`` (its network address) lets an implementation
        limit failed attempts per address."""

    async def dependencies(self) -> dict[str, str | None]:
        """The external services governance relies on -> None when healthy, else a short reason (readiness)."""
        return {}

    @abstractmethod
    async def admit(
        self, principal: Principal, model: ModelRef, endpoint: str, units: float | None = None
    ) -> Admission:
        """Refuse (404, 429, 402) or admit. ``units``: the units the request will be charged for, when the
        caller knows them before running it (batch rows of a V2 call); budgets then reserve its exact price."""

    @abstractmethod
    async def finish(self, admission: Admission, outcome: Outcome) -> None: ...

    def can_see(self, principal: Principal, model: ModelRef) -> bool:
        """Whether the model exists for this caller (listing, metadata); invisible models answer 404."""
        return True

    def owner_of(self, model: ModelRef) -> str | None:
        """The tenant that owns the model (manages it); None for a public model without an owner."""
        return model.owner


class AdminKeyGovernance(Governance):
    """One bootstrap admin key; every request must carry it. No limits, no metering."""

    def __init__(self, admin_key: str) -> None:
        self._key = admin_key.encode()
        self._principal = Principal(key_id="admin", tenant_id="system", role="admin")

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        token = parse_bearer(authorization)
        if not hmac.compare_digest(token.encode(), self._key):
            raise AuthenticationError("invalid API key")
        return self._principal

    async def admit(
        self, principal: Principal, model: ModelRef, endpoint: str, units: float | None = None
    ) -> Admission:
        import time

        return Admission(principal=principal, model=model, endpoint=endpoint, started=time.monotonic())

    async def finish(self, admission: Admission, outcome: Outcome) -> None:
        return None
