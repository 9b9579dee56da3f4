"""``JobRunner``: one job's process tree from launch to its final state.

The runner launches the kind's process (``aiaas.jobs.process.WorkerProcess``), and a monitor thread pumps the
job's ``events.jsonl`` into the store (sub-statuses from ``data.phase``, progress from metrics events), watches
the deadline, and records the end: ``succeeded`` (after the kind registers the result), ``failed`` with a
reason, or ``cancelled``. Why the processes were stopped is a typed ``Stop`` value, never a marker string.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from aiaas.errors import AiaasError
from aiaas.jobs.events import read_events
from aiaas.jobs.jobdir import JobDir
from aiaas.jobs.kinds import LaunchOptions, Registered, get_kind
from aiaas.jobs.process import WorkerProcess, read_launch_info, stop_orphans
from aiaas.jobs.states import JobState
from aiaas.jobs.store import JobRecord, JobStore, transition

log = logging.getLogger("aiaas.training")

EventCallback = Callable[[str, dict[str, Any]], None]  # (job id, event)
DEADLINE_GRACE_S = 15.0  # the workers stop themselves at the deadline; the runner kills them this much later
DEADLINE_ENV = "AIAAS_JOB_DEADLINE"  # epoch seconds; the workers read it and stop in time
# sub-statuses a job's events may set through ``data.phase`` (training, then optimization phases)
PHASES = ("training", "checkpointing", "exporting", "baseline", "optimizing", "fine-tuning", "measuring")
LOG_TAIL_BYTES = 20000  # how much of the launcher's log a crash reason is read from


class StopCause(Enum):
    CANCEL = "cancel"  # a user (or a test) cancelled the job: it ends ``cancelled``
    DEADLINE = "deadline"  # it ran past max_runtime_s: it ends ``failed``
    SHUTDOWN = "shutdown"  # the server stops: the job stays ``running`` and the next start resumes it


@dataclass(frozen=True)
class Stop:
    cause: StopCause
    reason: str = ""  # the job's reason for CANCEL and DEADLINE


def reported_error(jd: JobDir, rank: int | None, tries: str) -> str | None:
    """The last error a worker recorded (``errors/rank<r>.json``), preferring ``rank``'s, as a job reason."""
    errors = jd.read_errors()
    mine = [e for e in errors if rank is None or e.get("rank") == rank]
    for found in (mine, errors):
        if found:
            e = found[-1]
            return f"worker rank {e.get('rank')} failed {tries}: {e.get('type')}: {e.get('message')}"
    return None


class JobRunner:
    """Runs one job's process tree to completion; reports events and the final state to the store."""

    def __init__(
        self,
        job_id: str,
        store: JobStore,
        on_event: EventCallback | None = None,
        on_done: Callable[[JobRecord], None] | None = None,
        register: Callable[[JobRecord], Registered | None] | None = None,
        python: str | None = None,  # the workers' interpreter (default: this one)
        poll_s: float = 0.2,
        torch_extensions_dir: Path | None = None,  # TORCH_EXTENSIONS_DIR for strategy zero (Settings)
    ) -> None:
        self.job_id = job_id
        self.store = store
        self.on_event = on_event
        self.on_done = on_done
        self.register = register
        self.options = LaunchOptions(
            torch_extensions_dir=torch_extensions_dir, **({"python": python} if python else {})
        )
        self.poll_s = poll_s
        job = store.get(job_id)
        self.spec = job.spec
        self.kind = get_kind(job.kind)
        self.jd = JobDir(Path(job.job_dir))
        self.proc: WorkerProcess | None = None
        self._stop: Stop | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    # -- control --------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> None:
        """Launch the job's process. ``resume``: the job was running when the server died: stop what is left of
        that run first; the workers then continue from the last checkpoint."""
        job = self.store.get(self.job_id)
        if resume:
            left = stop_orphans(self.jd)
            if left:
                log.warning("job %s: stopped %d process(es) left from before the restart", self.job_id, left)
            self._event(
                f"the server restarted; the job resumes from {self.kind.resume_note(self.jd)}", phase="resuming"
            )
        first_start = read_launch_info(self.jd).get("first_start") or time.time()
        deadline = first_start + self.spec.max_runtime_s
        env = {**os.environ, **self.kind.env(self.spec, self.options)}
        env.update(
            {
                "OMP_NUM_THREADS": str(self.spec.resources.threads_per_worker),
                "PYTHONUNBUFFERED": "1",
                DEADLINE_ENV: repr(deadline),
            }
        )
        cmd = self.kind.command(self.spec, self.jd, self.options)
        self.proc = WorkerProcess.launch(
            cmd, self.jd, self.kind.log_name, env, {"first_start": first_start, "deadline": deadline}
        )
        if job.state != JobState.RUNNING:
            transition(self.store, self.job_id, JobState.RUNNING)
        self._sub_status(self.kind.first_sub_status)
        self._thread = threading.Thread(target=self._monitor, name=f"job-{self.job_id}", daemon=True)
        self._thread.start()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop every process of the job; the monitor then records ``cancelled``."""
        self._stop_for(Stop(StopCause.CANCEL, reason))

    def shutdown(self, timeout: float | None = None) -> None:
        """The server stops: stop the processes and leave the job ``running`` (a later ``start(resume=True)``
        picks it up); waits for the monitor to let go."""
        self._stop_for(Stop(StopCause.SHUTDOWN))
        self._done.wait(timeout)

    def wait(self, timeout: float | None = None) -> JobRecord:
        self._done.wait(timeout)
        return self.store.get(self.job_id)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- internals ------------------------------------------------------------------------------
    def _stop_for(self, stop: Stop) -> None:
        self._stop = stop
        if self.proc is not None:
            self.proc.stop()

    def _event(self, message: str, level: str = "info", **data: Any) -> None:
        event = {"ts": time.time(), "level": level, "type": "message", "message": message, "data": data}
        self.store.append_events(self.job_id, [event])
        if self.on_event:
            self.on_event(self.job_id, event)

    def _sub_status(self, value: str | None) -> None:
        job = self.store.get(self.job_id)
        if job.sub_status == value:
            return
        transitions = dict(job.transitions)
        if value:
            transitions[value.split(" ")[0]] = time.time()
        self.store.update(self.job_id, sub_status=value, transitions=transitions)

    def _pump_events(self) -> None:
        job = self.store.get(self.job_id)
        events, offset = read_events(self.jd.events, job.events_offset)
        if not events:
            return
        self.store.append_events(self.job_id, events, events_offset=offset)
        restarts, progress = job.restarts, None
        for e in events:
            data = e.get("data") or {}
            sub = None
            if e.get("type") == "metrics":
                progress, sub = data, "training"
            phase = data.get("phase")
            if phase == "rendezvous":
                restart = int(data.get("restart", 0))
                if restart > restarts:
                    restarts = restart
                    self.store.update(self.job_id, restarts=restarts)
                sub = f"restarting {restart}/{self.spec.max_restarts}" if restart else "rendezvous"
            elif phase in PHASES:
                sub = phase
            if sub:
                self._sub_status(sub)
            if self.on_event:
                self.on_event(self.job_id, e)
        if progress is not None:
            self.store.update(self.job_id, progress=progress)

    def _monitor(self) -> None:
        assert self.proc is not None
        deadline = float(read_launch_info(self.jd).get("deadline", float("inf")))
        try:
            while True:
                rc = self.proc.poll()
                self._pump_events()
                if rc is not None:
                    break
                if time.time() > deadline + DEADLINE_GRACE_S and self._stop is None:
                    self._stop_for(
                        Stop(StopCause.DEADLINE, f"the job ran past max_runtime_s={self.spec.max_runtime_s:g}")
                    )
                time.sleep(self.poll_s)
            self._pump_events()
            self._finish(rc)
        except Exception as e:  # never leave a job 'running' because the monitor itself broke
            log.exception("job %s: monitor failed", self.job_id)
            with contextlib.suppress(Exception):
                self.proc.stop()
                transition(
                    self.store,
                    self.job_id,
                    JobState.FAILED,
                    sub_status=None,
                    reason=f"internal error in the job monitor: {e}",
                )
        finally:
            self._done.set()
            stop = self._stop
            if self.on_done and (stop is None or stop.cause is not StopCause.SHUTDOWN):
                with contextlib.suppress(Exception):
                    self.on_done(self.store.get(self.job_id))

    def _finish(self, rc: int) -> None:
        stop = self._stop
        if stop is not None and stop.cause is StopCause.SHUTDOWN:
            return
        if stop is not None and stop.cause is StopCause.DEADLINE:
            self._fail(stop.reason + "; raise max_runtime_s or lower epochs")
            return
        if stop is not None:
            transition(self.store, self.job_id, JobState.CANCELLED, sub_status=None, reason=stop.reason)
            self._event(f"job cancelled: {stop.reason}")
            return
        fatal = [e for e in self.jd.read_errors() if e.get("fatal")]
        if fatal:
            self._fail(fatal[0]["message"])
            return
        if rc == 0 and self.jd.result.is_file():
            self._succeed()
            return
        self._fail(self.kind.crash_reason(self.store.get(self.job_id), self.jd, rc, self._log_tail()))

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError), open(self.jd.logs / self.kind.log_name, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace")
        return ""

    def _succeed(self) -> None:
        result = json.loads(self.jd.result.read_text())
        fields: dict[str, Any] = {"result": result}
        if self.register is not None:
            self._sub_status("registering")
            try:
                registered = self.register(self.store.get(self.job_id))
            except AiaasError as e:
                self.store.update(self.job_id, **fields)
                self._fail(f"{self.kind.name} succeeded but the model could not be registered: {e.message}")
                return
            if registered is not None:  # None: nothing to register (an optimization that accepted no candidate)
                fields["model_version"] = registered.version
                self._event(
                    f"registered model {registered.model!r} version {registered.version}",
                    model=registered.model,
                    version=registered.version,
                )
        transition(self.store, self.job_id, JobState.SUCCEEDED, sub_status=None, reason=None, **fields)

    def _fail(self, reason: str) -> None:
        transition(self.store, self.job_id, JobState.FAILED, sub_status=None, reason=reason)
        self._event(f"job failed: {reason}", level="error")
