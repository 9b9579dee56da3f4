"""Job kinds: what differs between a training job and an optimization job, behind one interface.

The engine (store, scheduler, runner) is the same for every kind; a kind says how its spec is read back from
the database, which process a job runs, what environment that process gets, what a crash means, and how a
result becomes a model version. A kind registers itself when its module is imported (``register_kind``):
``aiaas.training.launcher`` registers ``training``, ``aiaas.optimize.jobkind`` registers ``optimization``; the
server imports both (``aiaas.service.jobs``). This package imports neither, so it sits below them in the layers.
"""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.store import JobRecord, RunSpec


@dataclass(frozen=True)
class LaunchOptions:
    """Machine-wide options a kind may read when it builds a job's process."""

    python: str = sys.executable  # the interpreter that runs the workers
    torch_extensions_dir: Path | None = None  # training strategy zero: DeepSpeed's compiled ops (Settings)


@dataclass(frozen=True)
class Registered:
    """A result registered as a model version."""

    model: str
    version: int


class JobKind(Protocol):
    name: str  # "training" | "optimization": the jobs table's ``kind`` column
    id_prefix: str  # job ids start with it ("trjob-")
    log_name: str  # the file under logs/ that takes the launched process's output
    first_sub_status: str  # the sub-status right after launch ("rendezvous", "starting")

    def load_spec(self, value: Any) -> RunSpec:
        """The kind's spec from its stored JSON (or the spec itself)."""
        ...

    def label(self, spec: RunSpec) -> str:
        """A short label for listings (the jobs table's ``recipe`` column)."""
        ...

    def command(self, spec: RunSpec, jd: JobDir, options: LaunchOptions) -> list[str]:
        """The process a job runs, in its own session (torchrun, horovodrun, a worker)."""
        ...

    def env(self, spec: RunSpec, options: LaunchOptions) -> dict[str, str]:
        """Environment variables for that process, on top of the server's."""
        ...

    def resume_note(self, jd: JobDir) -> str:
        """Where a job resumes after a server restart, in words ("its checkpoint at step 40")."""
        ...

    def crash_reason(self, job: JobRecord, jd: JobDir, rc: int, log_tail: str) -> str:
        """Why the process exited without a result (``log_tail``: the end of its ``log_name``)."""
        ...

    def register(self, repository: Any, job: JobRecord) -> Registered | None:
        """Add the result as a model version; None when there is nothing to register."""
        ...


_kinds: dict[str, JobKind] = {}
_lock = threading.Lock()


def register_kind(kind: JobKind) -> None:
    """Plug a kind into the engine (idempotent for the same object; another object under a taken name is an
    error: two kinds cannot share a table value)."""
    with _lock:
        current = _kinds.get(kind.name)
        if current is not None and current is not kind:
            raise ValueError(f"job kind {kind.name!r} is already registered by {type(current).__qualname__}")
        _kinds[kind.name] = kind


def get_kind(name: str) -> JobKind:
    with _lock:
        kind = _kinds.get(name)
        known = sorted(_kinds)
    if kind is None:
        raise LookupError(
            f"job kind {name!r} is not registered (registered: {', '.join(known) or 'none'}); import the module "
            "that registers it (aiaas.training.launcher, aiaas.optimize.jobkind)"
        )
    return kind


def kind_names() -> list[str]:
    with _lock:
        return sorted(_kinds)
