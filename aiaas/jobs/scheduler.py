"""``Scheduler``: queues jobs of every kind and starts them by priority without overcommitting cores.

Strict order: jobs start by priority, then age, while sum(cores) <= ``cores``; a queued job that does not fit
blocks the lower-priority ones behind it, so a big job is never starved by a stream of small ones. ``tick()`` is
one scheduling pass; ``start()`` runs it in a thread. A kind's request is validated by its own module, which
hands the scheduler a spec and a ``prepare(root)`` that writes the job directory (``submit_prepared``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiaas.errors import Conflict, InvalidInput
from aiaas.jobs.kinds import Registered, get_kind
from aiaas.jobs.process import KILL_GRACE_S
from aiaas.jobs.runner import EventCallback, JobRunner
from aiaas.jobs.states import TERMINAL, JobState
from aiaas.jobs.store import JobRecord, JobStore, RunSpec, transition

log = logging.getLogger("aiaas.training")

Prepare = Callable[[Path], tuple[RunSpec, dict[str, Any]]]  # root -> (the spec as written, file summaries)


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        jobs_root: Path,
        cores: int | None = None,
        repository: Any | None = None,  # aiaas.registry.ModelRepository: register results when given
        on_event: EventCallback | None = None,
        on_registered: Callable[[str, int], None] | None = None,  # (model, version): e.g. ModelManager.load
        poll_s: float = 0.5,
        python: str = sys.executable,
        torch_extensions_dir: Path
        | None = None,  # strategy zero: DeepSpeed's compiled ops (Settings.torch_extensions_dir)
    ) -> None:
        self.store = store
        self.torch_extensions_dir = torch_extensions_dir
        self.jobs_root = Path(jobs_root)
        self.cores = cores or os.cpu_count() or 1
        self.repository = repository
        self.on_event = on_event
        self.on_registered = on_registered
        self.poll_s = poll_s
        self.python = python
        self.runners: dict[str, JobRunner] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- API ------------------------------------------------------------------------------------
    def submit_prepared(
        self,
        kind: str,
        spec: RunSpec,
        prepare: Prepare,
        owner: str | None = None,
        job_id: str | None = None,
    ) -> JobRecord:
        """A job whose request its kind has validated: recorded as ``validating``, its directory written by
        ``prepare(root)``, then ``queued``. InvalidInput (or OSError) from ``prepare`` makes it ``failed`` with
        the reason; a cancel that arrives meanwhile wins."""
        if spec.resources.cores > self.cores:
            raise InvalidInput(
                f"the job needs {spec.resources.cores} cores but jobs may use {self.cores}; lower its threads",
                param="workload",
            )
        job_id = job_id or get_kind(kind).id_prefix + uuid.uuid4().hex[:16]
        root = self.jobs_root / job_id
        if root.exists():
            raise Conflict(f"{kind} job {job_id} already exists")
        job = JobRecord(id=job_id, spec=spec, job_dir=str(root), owner=owner, kind=kind)
        job.transitions[JobState.VALIDATING.value] = job.created_at
        self.store.create(job)
        try:
            local, files = prepare(root)
        except InvalidInput as e:
            return self._settle_validation(job_id, JobState.FAILED, reason=e.message)
        except OSError as e:
            return self._settle_validation(job_id, JobState.FAILED, reason=f"cannot prepare the job directory: {e}")
        return self._settle_validation(job_id, JobState.QUEUED, spec=local, files=files)

    def cancel(self, job_id: str, reason: str = "cancelled by the user") -> JobRecord:
        with self._lock:
            job = self.store.get(job_id)
            if job.state in TERMINAL:
                raise Conflict(f"{job.kind} job {job_id} is already {job.state}")
            runner = self.runners.get(job_id)
            if runner is None:
                return transition(self.store, job_id, JobState.CANCELLED, sub_status=None, reason=reason)
        runner.cancel(reason)
        return runner.wait(KILL_GRACE_S * 3)

    def recover(self) -> list[str]:
        """Server start: jobs that were running resume from their checkpoints (queued ones just stay queued)."""
        resumed = []
        for job in self.store.list([JobState.RUNNING]):
            if job.cores > self.cores:
                transition(
                    self.store,
                    job.id,
                    JobState.FAILED,
                    reason=f"needs {job.cores} cores; training may now use {self.cores}",
                )
                continue
            self._launch(job.id, resume=True)
            resumed.append(job.id)
        for job in self.store.list([JobState.VALIDATING]):  # the server died while validating: redo it
            transition(
                self.store,
                job.id,
                JobState.FAILED,
                reason="the server restarted while validating the job; submit it again",
            )
        return resumed

    def tick(self) -> list[str]:
        """Start queued jobs that fit; returns the ids started."""
        started = []
        with self._lock:
            for jid in [j for j, r in self.runners.items() if r.done]:
                self.runners.pop(jid)
            used = sum(r.spec.resources.cores for r in self.runners.values())
            queued = sorted(self.store.list([JobState.QUEUED]), key=lambda j: (-j.priority, j.created_at))
            for job in queued:
                if used + job.cores > self.cores:
                    break
                self._launch(job.id)
                used += job.cores
                started.append(job.id)
        return started

    def used_cores(self) -> int:
        with self._lock:
            return sum(r.spec.resources.cores for r in self.runners.values() if not r.done)

    def wait(self, job_id: str, timeout: float | None = None) -> JobRecord:
        end = time.monotonic() + (timeout if timeout is not None else 1e9)
        while time.monotonic() < end:
            job = self.store.get(job_id)
            if job.state in TERMINAL:
                return job
            time.sleep(0.1)
        return self.store.get(job_id)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
        self._thread.start()

    def stop(self, stop_jobs: bool = True) -> None:
        """Server shutdown: stop the loop; running jobs are stopped and stay ``running`` so recover() resumes
        them from their checkpoints on the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if stop_jobs:
            with self._lock:
                runners = list(self.runners.values())
            for r in runners:
                r.shutdown(KILL_GRACE_S * 3)

    # -- internals ------------------------------------------------------------------------------
    def _settle_validation(self, job_id: str, state: JobState, **fields: Any) -> JobRecord:
        """End of validation. A cancel that arrived while the data was being checked wins: the job stays
        ``cancelled`` (its copied data is removed) instead of being queued behind the user's back."""
        with self._lock:
            job = self.store.get(job_id)
            if job.state != JobState.VALIDATING:
                shutil.rmtree(job.job_dir, ignore_errors=True)
                return job
            return transition(self.store, job_id, state, **fields)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("job scheduler pass failed")
            self._stop.wait(self.poll_s)

    def _register(self, job: JobRecord) -> Registered | None:
        registered = get_kind(job.kind).register(self.repository, job)
        if registered is not None and self.on_registered is not None:
            try:
                self.on_registered(registered.model, registered.version)
            except Exception:  # loading is the server's business: the version is registered either way
                log.exception(
                    "job %s: loading model %s version %d failed", job.id, registered.model, registered.version
                )
        return registered

    def _launch(self, job_id: str, resume: bool = False) -> None:
        runner = JobRunner(
            job_id,
            self.store,
            on_event=self.on_event,
            register=self._register if self.repository is not None else None,
            python=self.python,
            torch_extensions_dir=self.torch_extensions_dir,
        )
        with self._lock:
            self.runners[job_id] = runner
        runner.start(resume=resume)
