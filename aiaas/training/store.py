"""Where job records live: the ``JobStore`` protocol and the in-memory store used by tests.

The server backs this protocol with its database (the jobs table); everything in ``aiaas.training`` talks to the
protocol only. Calls come from the scheduler's and runners' threads, so an implementation must be thread-safe
(one short transaction per call is enough: there is one writer per job at a time).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiaas.errors import NotFound
from aiaas.training.spec import JobSpec, Resources

STATES = ("validating", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
KINDS = ("training", "optimization")  # optimization jobs (aiaas.optimize.jobspec) run on this same machinery


class RunSpec(Protocol):
    """What the scheduler and the runner read from any job's spec: a training ``JobSpec`` or an optimization's
    ``aiaas.optimize.jobspec.OptimizationSpec`` (which this package does not import)."""

    @property
    def model(self) -> str: ...

    @property
    def resources(self) -> Resources: ...

    @property
    def max_restarts(self) -> int: ...

    @property
    def max_runtime_s(self) -> float: ...

    @property
    def priority(self) -> int: ...

    def model_dump(self, *, mode: str = "python") -> dict[str, Any]: ...


@dataclass
class JobRecord:
    id: str
    spec: JobSpec | RunSpec  # a JobSpec for kind "training"
    job_dir: str  # absolute path of the job's directory (see aiaas.training.jobdir)
    state: str = "validating"
    sub_status: str | None = None  # rendezvous | training | checkpointing | restarting n/max | exporting | registering
    reason: str | None = None  # why it failed / was cancelled, in words a user can act on
    owner: str | None = None  # tenant id
    created_at: float = field(default_factory=time.time)
    transitions: dict[str, float] = field(default_factory=dict)  # state or sub-status -> when it was entered (last time)
    files: dict[str, Any] = field(default_factory=dict)  # "training"/"validation" -> FileSummary dict
    result: dict[str, Any] | None = None  # result.json (metrics, hashes, hyperparameters) on success
    model_version: int | None = None  # the registered version on success
    restarts: int = 0  # worker-group restarts seen so far
    progress: dict[str, Any] = field(default_factory=dict)  # the last metrics event's data
    events_offset: int = 0  # bytes of events.jsonl already forwarded to the store (resume continues here)
    kind: str = "training"  # one of KINDS: decides the process the runner launches and how results register

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def cores(self) -> int:
        return self.spec.resources.cores


class JobStore(Protocol):
    def create(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord:
        """Raises aiaas.errors.NotFound for an unknown id."""
        ...

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        """Set JobRecord fields (state, sub_status, reason, transitions, result, ...); returns the new record."""
        ...

    def append_events(self, job_id: str, events: list[dict[str, Any]], events_offset: int | None = None) -> None:
        """Store events in order (each gets a 1-based ``seq``); also save ``events_offset`` when given."""
        ...

    def events(self, job_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Events with seq > after, oldest first."""
        ...

    def list(self, states: Iterable[str] | None = None) -> list[JobRecord]:
        """Jobs, oldest first; only those in ``states`` when given."""
        ...


class InMemoryJobStore:
    def __init__(self) -> None:
        self._jobs: dict[str, JobRecord] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def create(self, job: JobRecord) -> None:
        with self._lock:
            self._jobs[job.id] = copy.deepcopy(job)
            self._events.setdefault(job.id, [])

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            if job_id not in self._jobs:
                raise NotFound(f"no training job {job_id!r}")
            return copy.deepcopy(self._jobs[job_id])

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no training job {job_id!r}")
            for k, v in fields.items():
                if not hasattr(job, k):
                    raise AttributeError(f"JobRecord has no field {k!r}")
                setattr(job, k, copy.deepcopy(v))
            return copy.deepcopy(job)

    def append_events(self, job_id: str, events: list[dict[str, Any]], events_offset: int | None = None) -> None:
        with self._lock:
            log = self._events.setdefault(job_id, [])
            for e in events:
                log.append({**e, "seq": len(log) + 1})
            if events_offset is not None and job_id in self._jobs:
                self._jobs[job_id].events_offset = events_offset

    def events(self, job_id: str, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._events.get(job_id, [])[after : after + limit])

    def list(self, states: Iterable[str] | None = None) -> list[JobRecord]:
        wanted = set(states) if states is not None else None
        with self._lock:
            jobs = [copy.deepcopy(j) for j in self._jobs.values() if wanted is None or j.state in wanted]
        return sorted(jobs, key=lambda j: j.created_at)
