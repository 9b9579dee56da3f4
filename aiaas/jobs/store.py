"""Where job records live: ``JobRecord``, the ``JobStore`` protocol, ``transition`` (the one way a job changes
state) and the in-memory store used by tests and the foreground launcher.

The server backs the protocol with its database (``aiaas.jobs.dbstore``); the scheduler and the runners talk to
the protocol only. Calls come from the scheduler's and runners' threads, so an implementation must be
thread-safe (one short transaction per call is enough: there is one writer per job at a time).
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiaas.errors import NotFound
from aiaas.jobs.states import JobState, check_move


class Resources(Protocol):
    """What the scheduler reads from a spec's resources (training's ``Resources`` satisfies it)."""

    @property
    def cores(self) -> int: ...

    @property
    def threads_per_worker(self) -> int: ...


class RunSpec(Protocol):
    """What the engine reads from any job's spec: a training ``JobSpec`` or an ``OptimizationSpec`` (neither of
    which this package imports: the kinds plug them in, ``aiaas.jobs.kinds``)."""

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
    spec: RunSpec  # the kind's spec (a training JobSpec for kind "training")
    job_dir: str  # absolute path of the job's directory (see aiaas.jobs.jobdir)
    state: JobState = JobState.VALIDATING  # a plain string is accepted and converted (a StrEnum equals it)
    sub_status: str | None = None  # rendezvous | training | checkpointing | restarting n/max | exporting | registering
    reason: str | None = None  # why it failed / was cancelled, in words a user can act on
    owner: str | None = None  # tenant id
    created_at: float = field(default_factory=time.time)
    transitions: dict[str, float] = field(
        default_factory=dict
    )  # state or sub-status -> when it was entered (last time)
    files: dict[str, Any] = field(default_factory=dict)  # "training"/"validation" -> FileSummary dict
    result: dict[str, Any] | None = None  # result.json (metrics, hashes, hyperparameters) on success
    model_version: int | None = None  # the registered version on success
    restarts: int = 0  # worker-group restarts seen so far
    progress: dict[str, Any] = field(default_factory=dict)  # the last metrics event's data
    events_offset: int = 0  # bytes of events.jsonl already forwarded to the store (resume continues here)
    kind: str = "training"  # a registered kind (aiaas.jobs.kinds): the process it runs, how results register

    def __post_init__(self) -> None:
        self.state = JobState(self.state)

    @property
    def priority(self) -> int:
        return self.spec.priority

    @property
    def cores(self) -> int:
        return self.spec.resources.cores


RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(JobRecord)) - {"id"}


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


def transition(store: JobStore, job_id: str, state: JobState, **fields: Any) -> JobRecord:
    """Move a job along the state machine (``aiaas.jobs.states.NEXT``; Conflict otherwise), recording when."""
    job = store.get(job_id)
    check_move(job_id, job.kind, job.state, state)
    transitions = {**job.transitions, state.value: time.time()}
    return store.update(job_id, state=state, transitions=transitions, **fields)


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
                raise NotFound(f"no job {job_id!r}")
            return copy.deepcopy(self._jobs[job_id])

    def update(self, job_id: str, **fields: Any) -> JobRecord:
        unknown = set(fields) - RECORD_FIELDS
        if unknown:
            raise AttributeError(f"JobRecord has no field {sorted(unknown)[0]!r}")
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"no job {job_id!r}")
            self._jobs[job_id] = dataclasses.replace(job, **copy.deepcopy(fields))
            return copy.deepcopy(self._jobs[job_id])

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
