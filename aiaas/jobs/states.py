"""A job's state machine: ``validating -> queued -> running -> succeeded | failed | cancelled``.

States are a ``StrEnum``: a state *is* its string, so the database column, the JSON the API answers and a
comparison with ``"queued"`` stay what they were. ``NEXT`` lists the moves the engine may make; ``transition``
(in ``aiaas.jobs.store``) refuses any other, so a job that finished never starts again behind the user's back.
"""

from __future__ import annotations

from enum import StrEnum

from aiaas.errors import Conflict


class JobState(StrEnum):
    VALIDATING = "validating"  # the request is accepted; its data is being checked and copied
    QUEUED = "queued"  # waiting for its cores
    RUNNING = "running"  # its process tree runs (or ran when the server stopped: the next start resumes it)
    SUCCEEDED = "succeeded"  # result written (and registered, for kinds that register)
    FAILED = "failed"  # ``reason`` says why, in words a user can act on
    CANCELLED = "cancelled"  # by a user, or while validating


STATES: tuple[str, ...] = tuple(s.value for s in JobState)
TERMINAL: frozenset[JobState] = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE: tuple[JobState, ...] = (JobState.RUNNING, JobState.QUEUED, JobState.VALIDATING)

NEXT: dict[JobState, frozenset[JobState]] = {
    JobState.VALIDATING: frozenset({JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}),
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

EVENT_LEVELS = ("debug", "info", "warning", "error")  # an event's ``level``
EVENT_TYPES = ("message", "metrics")  # an event's ``type``


def check_move(job_id: str, kind: str, before: JobState, after: JobState) -> None:
    """Raise Conflict unless ``before -> after`` is a move of the state machine."""
    if after not in NEXT[before]:
        if before in TERMINAL:
            raise Conflict(f"{kind} job {job_id} is already {before}")
        raise Conflict(f"{kind} job {job_id} cannot go from {before} to {after}")
