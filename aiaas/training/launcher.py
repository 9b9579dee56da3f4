"""Running training jobs: one ``JobRunner`` per job (a torchrun subprocess and a monitor thread) and a
``Scheduler`` that validates, queues and starts jobs by priority without overcommitting cores.

Process model: torchrun runs in its own session (``start_new_session=True``) so a signal aimed at the server does
not hit it and a cancel can target it; torchrun in turn puts each worker in a session of its own, so cancel
collects the whole tree with psutil before signalling (SIGTERM, then SIGKILL after a grace period), and the
workers additionally die with their parent (PR_SET_PDEATHSIG). ``launcher.json`` records torchrun's pid and
create time: a server that crashed and came back finds the orphaned torchrun, stops it and relaunches the job,
which resumes from its last checkpoint. The strategy decides the launcher (aiaas.training.commands): torchrun for
ddp and zero, horovodrun (wrapped by aiaas.training.hvdrun for restarts) for horovod; the same tree handling
applies to both.

Job kinds: an ``optimization`` job (``aiaas.optimize``) runs on this same machinery -- queue, cores, states,
events file, cancel, recovery -- with one process ``python -m aiaas.optimize.worker`` instead of torchrun; the
caller validates and prepares its directory (``Scheduler.submit_prepared``) and registers its result
(``registrars``). This module imports neither torch nor aiaas.optimize, so a server without torch still runs
ONNX optimizations; the recipes (torch) are imported only to validate a training job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from aiaas.errors import AiaasError, Conflict, InvalidInput
from aiaas.training.commands import launcher_name, training_command, training_env
from aiaas.training.commands import torchrun_command as torchrun_command  # re-exported (bench/training.py)
from aiaas.training.events import read_events
from aiaas.training.files import detect_format, validate_file
from aiaas.training.jobdir import JobDir, write_json_atomic
from aiaas.training.spec import JobSpec, check_strategy, parse_spec
from aiaas.training.store import TERMINAL, JobRecord, JobStore, RunSpec

if TYPE_CHECKING:
    from aiaas.training.recipes import Recipe

log = logging.getLogger("aiaas.training")

EventCallback = Callable[[str, dict[str, Any]], None]  # (job id, event)
KILL_GRACE_S = 5.0  # SIGTERM -> SIGKILL
DEADLINE_GRACE_S = 15.0  # the workers stop themselves at the deadline; the launcher kills them this much later
DEADLINE_ENV = "AIAAS_JOB_DEADLINE"  # epoch seconds; aiaas.training.worker reads it (not imported here: torch)
ID_PREFIX = {"training": "trjob-", "optimization": "optjob-"}
# sub-statuses a job's events may set through ``data.phase`` (training, then optimization phases)
PHASES = ("training", "checkpointing", "exporting", "baseline", "optimizing", "fine-tuning", "measuring")
Registrar = Callable[[Any, JobRecord], "int | None"]  # (repository, job) -> the new model version, or None


def new_job_id(kind: str = "training") -> str:
    return ID_PREFIX[kind] + uuid.uuid4().hex[:16]


def get_recipe(name: str, hyperparameters: dict[str, Any] | None = None) -> Recipe:
    from aiaas.training.recipes import get_recipe as load  # torch: only when a training job is validated

    return load(name, hyperparameters)


def set_state(store: JobStore, job_id: str, state: str, **fields: Any) -> JobRecord:
    """A state change with its timestamp (the API shows one per transition)."""
    transitions = dict(store.get(job_id).transitions)
    transitions[state] = time.time()
    return store.update(job_id, state=state, transitions=transitions, **fields)


def job_command(kind: str, spec: RunSpec, spec_path: Path, python: str = sys.executable) -> list[str]:
    """The process a job of ``kind`` runs: torchrun / horovodrun for training (per strategy), one optimization
    worker otherwise."""
    if kind == "optimization":
        return [python, "-m", "aiaas.optimize.worker", "--spec", str(spec_path)]
    assert isinstance(spec, JobSpec)
    return training_command(spec, spec_path, python)


def launcher_log(kind: str) -> str:
    """The file under ``logs/`` that takes the launched process's output."""
    return "torchrun.log" if kind == "training" else "worker.log"


def process_tree(pid: int, create_time: float | None = None) -> list[psutil.Process]:
    """The process and all its descendants (empty when gone or when the pid was reused)."""
    try:
        root = psutil.Process(pid)
        if create_time is not None and abs(root.create_time() - create_time) > 1.0:
            return []
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(procs: list[psutil.Process], grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM every process, wait, SIGKILL what is left (children spawned meanwhile included)."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    more = []
    for p in alive:
        with contextlib.suppress(psutil.Error):
            more += p.children(recursive=True)
    for p in [*alive, *more]:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs([*alive, *more], timeout=grace_s)


# -- preparing a job --------------------------------------------------------------------------
def validate_job(spec: JobSpec) -> dict[str, Any]:
    """Everything that can be checked before queueing: formats, full parse, the recipe's view of the data.

    Raises InvalidInput naming the file, line and column. Returns the file summaries.
    """
    recipe = get_recipe(spec.recipe, spec.hyperparameters)
    summaries: dict[str, Any] = {}
    train = Path(spec.training_file)
    for role, name in (("training", spec.training_file), ("validation", spec.validation_file)):
        if name is None:
            continue
        path = Path(name)
        fmt = detect_format(path)
        recipe.check_file(path, fmt)
        summaries[role] = validate_file(path, fmt).to_dict()
    meta = recipe.prepare(train)
    if spec.validation_file:
        recipe.tensors(Path(spec.validation_file), meta)  # labels unseen in training, missing columns, ...
    return summaries


def prepare_job_dir(spec: JobSpec, root: Path) -> JobSpec:
    """Copy the data into the job directory and write spec.json with paths relative to it."""
    jd = JobDir(root)
    jd.data.mkdir(parents=True, exist_ok=True)
    updates: dict[str, Any] = {}
    for field, role in (("training_file", "train"), ("validation_file", "validation")):
        src = getattr(spec, field)
        if src is None:
            continue
        src_path = Path(src)
        dst = jd.data / f"{role}{src_path.suffix.lower()}"
        if not dst.exists():
            try:
                os.link(src_path, dst)  # the files store keeps the original; a hard link costs nothing
            except OSError:
                shutil.copy2(src_path, dst)
        updates[field] = str(dst.relative_to(jd.root))
    local = spec.model_copy(update=updates)
    write_json_atomic(jd.spec, local.model_dump(mode="json"))
    return local


# -- one job ----------------------------------------------------------------------------------
class JobRunner:
    """Runs one job's torchrun to completion; reports events and the final state to the store."""

    def __init__(
        self,
        job_id: str,
        store: JobStore,
        on_event: EventCallback | None = None,
        on_done: Callable[[JobRecord], None] | None = None,
        register: Callable[[JobRecord], int | None] | None = None,
        python: str = sys.executable,
        poll_s: float = 0.2,
        torch_extensions_dir: Path | None = None,  # TORCH_EXTENSIONS_DIR for strategy zero (Settings)
    ) -> None:
        self.job_id = job_id
        self.torch_extensions_dir = torch_extensions_dir
        self.store = store
        self.on_event = on_event
        self.on_done = on_done
        self.register = register
        self.python = python
        self.poll_s = poll_s
        job = store.get(job_id)
        self.spec = job.spec
        self.kind = job.kind
        self.jd = JobDir(Path(job.job_dir))
        self.proc: subprocess.Popen[bytes] | None = None
        self._cancel_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._done = threading.Event()

    # -- control --------------------------------------------------------------------------------
    def start(self, resume: bool = False) -> None:
        """Launch torchrun. ``resume``: the job was running when the server died: stop what is left of that run
        first; the workers then continue from the last checkpoint."""
        job = self.store.get(self.job_id)
        info = self._read_launcher_info()
        if resume:
            orphans = process_tree(info["pid"], info.get("create_time")) if info.get("pid") else []
            if orphans:
                log.warning("job %s: stopping %d process(es) left from before the restart", self.job_id, len(orphans))
                kill_tree(orphans)
            ckpts = self.jd.list_checkpoints()
            where = f"its checkpoint at step {ckpts[-1][0]}" if ckpts else "the beginning (no checkpoint yet)"
            if self.kind != "training":
                where = "the beginning (optimizations keep no checkpoints)"
            self._event(f"the server restarted; the job resumes from {where}", phase="resuming")
        first_start = info.get("first_start") or time.time()
        deadline = first_start + self.spec.max_runtime_s
        env = dict(os.environ)
        env.update({
            "OMP_NUM_THREADS": str(self.spec.resources.threads_per_worker),
            "PYTHONUNBUFFERED": "1",
            DEADLINE_ENV: repr(deadline),
        })  # fmt: skip
        if isinstance(self.spec, JobSpec):
            env.update(training_env(self.spec, self.torch_extensions_dir))
        self.jd.logs.mkdir(parents=True, exist_ok=True)
        cmd = job_command(self.kind, self.spec, self.jd.spec, self.python)
        with open(self.jd.logs / launcher_log(self.kind), "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd, cwd=self.jd.root, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        with contextlib.suppress(psutil.Error):
            write_json_atomic(self.jd.launcher, {
                "pid": self.proc.pid, "create_time": psutil.Process(self.proc.pid).create_time(),
                "first_start": first_start, "deadline": deadline, "command": cmd,
            })  # fmt: skip
        if job.state != "running":
            set_state(self.store, self.job_id, "running")
        self._sub_status("rendezvous" if self.kind == "training" else "starting")
        self._thread = threading.Thread(target=self._monitor, name=f"job-{self.job_id}", daemon=True)
        self._thread.start()

    def cancel(self, reason: str = "cancelled by the user") -> None:
        """Stop every process of the job; the monitor then records ``cancelled``."""
        self._cancel_reason = reason
        self._stop_processes()

    def wait(self, timeout: float | None = None) -> JobRecord:
        self._done.wait(timeout)
        return self.store.get(self.job_id)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def detach(self) -> None:
        """Stop watching without touching the processes (the server is shutting down; a later start(resume=True)
        picks the job up). Used only in tests that simulate a crash in-process."""
        self._cancel_reason = "__detached__"

    # -- internals ------------------------------------------------------------------------------
    def _read_launcher_info(self) -> dict[str, Any]:
        try:
            return json.loads(self.jd.launcher.read_text())
        except (OSError, ValueError):
            return {}

    def _stop_processes(self) -> None:
        if self.proc is None:
            return
        procs = process_tree(self.proc.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        kill_tree(procs)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

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
        deadline = self._read_launcher_info().get("deadline", float("inf"))
        try:
            while True:
                rc = self.proc.poll()
                self._pump_events()
                if rc is not None:
                    break
                if time.time() > deadline + DEADLINE_GRACE_S and self._cancel_reason is None:
                    self._cancel_reason = f"__deadline__the job ran past max_runtime_s={self.spec.max_runtime_s:g}"
                    self._stop_processes()
                time.sleep(self.poll_s)
            self._pump_events()
            self._finish(rc)
        except Exception as e:  # never leave a job 'running' because the monitor itself broke
            log.exception("job %s: monitor failed", self.job_id)
            with contextlib.suppress(Exception):
                self._stop_processes()
                set_state(self.store, self.job_id, "failed", sub_status=None, reason=f"internal error in the job monitor: {e}")
        finally:
            self._done.set()
            if self.on_done and self._cancel_reason != "__detached__":
                with contextlib.suppress(Exception):
                    self.on_done(self.store.get(self.job_id))

    def _finish(self, rc: int) -> None:
        reason = self._cancel_reason
        if reason == "__detached__":
            return
        if reason is not None and reason.startswith("__deadline__"):
            self._fail(reason.removeprefix("__deadline__") + "; raise max_runtime_s or lower epochs")
            return
        if reason is not None:
            set_state(self.store, self.job_id, "cancelled", sub_status=None, reason=reason)
            self._event(f"job cancelled: {reason}")
            return
        fatal = [e for e in self.jd.read_errors() if e.get("fatal")]
        if fatal:
            self._fail(fatal[0]["message"])
            return
        if rc == 0 and self.jd.result.is_file():
            self._succeed()
            return
        self._fail(self._crash_reason(rc))

    def _succeed(self) -> None:
        result = json.loads(self.jd.result.read_text())
        fields: dict[str, Any] = {"result": result}
        if self.register is not None:
            self._sub_status("registering")
            try:
                version = self.register(self.store.get(self.job_id))
            except AiaasError as e:
                self.store.update(self.job_id, **fields)
                self._fail(f"{self.kind} succeeded but the model could not be registered: {e.message}")
                return
            if version is not None:  # None: nothing to register (an optimization that accepted no candidate)
                model = str(result.get("registered_model") or self.spec.model)
                fields["model_version"] = version
                self._event(f"registered model {model!r} version {version}", model=model, version=version)
        set_state(self.store, self.job_id, "succeeded", sub_status=None, reason=None, **fields)

    def _fail(self, reason: str) -> None:
        set_state(self.store, self.job_id, "failed", sub_status=None, reason=reason)
        self._event(f"job failed: {reason}", level="error")

    def _crash_reason(self, rc: int) -> str:
        """What went wrong, from torchrun's root-cause report and the workers' error files."""
        text = ""
        with contextlib.suppress(OSError), open(self.jd.logs / launcher_log(self.kind), "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 20000))
            text = f.read().decode(errors="replace")
        job = self.store.get(self.job_id)
        tries = f"after {job.restarts} restart(s) (max_restarts={self.spec.max_restarts})"
        root = text.rsplit("Root Cause", 1)[-1] if "Root Cause" in text else ""
        rank_m = re.search(r"rank\s*:\s*(\d+)", root)
        code_m = re.search(r"exitcode\s*:\s*(-?\d+)", root)
        sig_m = re.search(r"Signal (\d+) \((\w+)\)", root)
        rank = int(rank_m.group(1)) if rank_m else None
        errors = self.jd.read_errors()
        mine = [e for e in errors if rank is None or e.get("rank") == rank]
        if sig_m:
            what = f"worker rank {rank} was killed by signal {sig_m.group(1)} ({sig_m.group(2)})"
            if sig_m.group(2) == "SIGKILL":
                what += " -- out of memory, or killed from outside"
            return f"{what} {tries}"
        if mine:
            e = mine[-1]
            return f"worker rank {e.get('rank')} failed {tries}: {e.get('type')}: {e.get('message')}"
        if errors:
            e = errors[-1]
            return f"worker rank {e.get('rank')} failed {tries}: {e.get('type')}: {e.get('message')}"
        if rc == 0:
            return "the workers exited without a result; see the job logs"
        tail = " | ".join(line.strip() for line in text.strip().splitlines()[-3:])
        if self.kind != "training":
            return f"the {self.kind} worker exited with status {rc}: {tail[-400:]}"
        code = code_m.group(1) if code_m else str(rc)
        launcher = launcher_name(self.spec) if isinstance(self.spec, JobSpec) else "torchrun"
        return f"{launcher} exited with status {code} {tries}: {tail[-400:]}"


# -- the queue --------------------------------------------------------------------------------
class Scheduler:
    """Validates and queues jobs, starts them by priority (then age) while sum(workers * threads) <= cores.

    Strict order: a queued job that does not fit blocks the lower-priority ones behind it, so a big job is never
    starved by a stream of small ones. ``tick()`` is one scheduling pass; ``start()`` runs it in a thread.
    """

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
        registrars: dict[str, Registrar] | None = None,  # kind -> registers its result (training: built in)
        torch_extensions_dir: Path | None = None,  # strategy zero: DeepSpeed's compiled ops (Settings.torch_extensions_dir)
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
        self.registrars = registrars if registrars is not None else {}  # shared: kinds may plug in later
        self.runners: dict[str, JobRunner] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- API ------------------------------------------------------------------------------------
    def submit(self, request: JobSpec | dict[str, Any], owner: str | None = None, job_id: str | None = None) -> JobRecord:
        """Create a job: request errors raise InvalidInput (nothing is created); data errors make a ``failed``
        job whose reason names the file, line and column. The data is copied into the job directory."""
        spec = request if isinstance(request, JobSpec) else parse_spec(request)
        check_strategy(spec.strategy)
        get_recipe(spec.recipe, spec.hyperparameters)
        if spec.resources.cores > self.cores:
            raise InvalidInput(
                f"the job needs {spec.resources.cores} cores ({spec.resources.workers} workers x "
                f"{spec.resources.threads_per_worker} threads) but training may use {self.cores}; lower resources",
                param="resources",
            )
        job_id = job_id or new_job_id()
        root = self.jobs_root / job_id
        if root.exists():
            raise Conflict(f"training job {job_id} already exists")
        job = JobRecord(id=job_id, spec=spec, job_dir=str(root), owner=owner)
        job.transitions["validating"] = job.created_at
        self.store.create(job)
        try:
            files = validate_job(spec)
            local = prepare_job_dir(spec, root)
        except InvalidInput as e:
            return self._settle_validation(job_id, "failed", reason=e.message)
        except OSError as e:
            return self._settle_validation(job_id, "failed", reason=f"cannot prepare the job directory: {e}")
        return self._settle_validation(job_id, "queued", spec=local, files=files)

    def _settle_validation(self, job_id: str, state: str, **fields: Any) -> JobRecord:
        """End of validation. A cancel that arrived while the data was being checked wins: the job stays
        ``cancelled`` (its copied data is removed) instead of being queued behind the user's back."""
        with self._lock:
            job = self.store.get(job_id)
            if job.state != "validating":
                shutil.rmtree(job.job_dir, ignore_errors=True)
                return job
            return set_state(self.store, job_id, state, **fields)

    def submit_prepared(
        self, kind: str, spec: RunSpec, prepare: Callable[[Path], tuple[RunSpec, dict[str, Any]]],
        owner: str | None = None, job_id: str | None = None,
    ) -> JobRecord:  # fmt: skip
        """A job of another ``kind`` whose request the caller has validated: recorded as ``validating``, its
        directory written by ``prepare(root)`` (spec.json and data; returns the spec as written and the file
        summaries), then queued like a training job. InvalidInput from ``prepare`` fails the job."""
        if spec.resources.cores > self.cores:
            raise InvalidInput(
                f"the job needs {spec.resources.cores} cores but jobs may use {self.cores}; lower its threads",
                param="workload",
            )
        job_id = job_id or new_job_id(kind)
        root = self.jobs_root / job_id
        if root.exists():
            raise Conflict(f"{kind} job {job_id} already exists")
        job = JobRecord(id=job_id, spec=spec, job_dir=str(root), owner=owner, kind=kind)
        job.transitions["validating"] = job.created_at
        self.store.create(job)
        try:
            local, files = prepare(root)
        except InvalidInput as e:
            return self._settle_validation(job_id, "failed", reason=e.message)
        except OSError as e:
            return self._settle_validation(job_id, "failed", reason=f"cannot prepare the job directory: {e}")
        return self._settle_validation(job_id, "queued", spec=local, files=files)

    def cancel(self, job_id: str, reason: str = "cancelled by the user") -> JobRecord:
        with self._lock:
            job = self.store.get(job_id)
            if job.state in TERMINAL:
                raise Conflict(f"training job {job_id} is already {job.state}")
            runner = self.runners.get(job_id)
            if runner is None:
                return set_state(self.store, job_id, "cancelled", sub_status=None, reason=reason)
        runner.cancel(reason)
        return runner.wait(KILL_GRACE_S * 3)

    def recover(self) -> list[str]:
        """Server start: jobs that were running resume from their checkpoints (queued ones just stay queued)."""
        resumed = []
        for job in self.store.list(["running"]):
            if job.spec.resources.cores > self.cores:
                set_state(self.store, job.id, "failed", reason=f"needs {job.spec.resources.cores} cores; training may now use {self.cores}")
                continue
            self._launch(job.id, resume=True)
            resumed.append(job.id)
        for job in self.store.list(["validating"]):  # the server died while validating: redo it
            set_state(self.store, job.id, "failed", reason="the server restarted while validating the job; submit it again")
        return resumed

    def tick(self) -> list[str]:
        """Start queued jobs that fit; returns the ids started."""
        started = []
        with self._lock:
            for jid in [j for j, r in self.runners.items() if r.done]:
                self.runners.pop(jid)
            used = sum(r.spec.resources.cores for r in self.runners.values())
            queued = sorted(self.store.list(["queued"]), key=lambda j: (-j.priority, j.created_at))
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
        self._thread = threading.Thread(target=self._loop, name="training-scheduler", daemon=True)
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
                r.detach()
                r._stop_processes()
                r.wait(KILL_GRACE_S * 3)

    # -- internals ------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("training scheduler pass failed")
            self._stop.wait(self.poll_s)

    def _register(self, job: JobRecord) -> int | None:
        assert self.repository is not None
        model: str = job.spec.model
        if job.kind == "training":
            from aiaas.training.register import register_result

            version: int | None = register_result(self.repository, model, job.id, Path(job.job_dir), owner=job.owner)
        else:
            version = self.registrars[job.kind](self.repository, job)
            with contextlib.suppress(OSError, ValueError):
                model = json.loads(JobDir(Path(job.job_dir)).result.read_text()).get("registered_model") or model
        if version is not None and self.on_registered is not None:
            with contextlib.suppress(Exception):
                self.on_registered(model, version)
        return version

    def _launch(self, job_id: str, resume: bool = False) -> None:
        runner = JobRunner(
            job_id, self.store, on_event=self.on_event, register=self._register if self.repository is not None else None,
            python=self.python, on_done=lambda _job: None, torch_extensions_dir=self.torch_extensions_dir,
        )  # fmt: skip
        with self._lock:
            self.runners[job_id] = runner
        runner.start(resume=resume)


def main(argv: list[str] | None = None) -> int:
    """``python -m aiaas.training.launcher JOB_DIR [--resume]``: run a prepared job directory in the foreground
    with an in-memory store, printing events as JSON lines (used by the crash test and the benchmark)."""
    import argparse

    from aiaas.settings import Settings
    from aiaas.training.store import InMemoryJobStore

    ap = argparse.ArgumentParser(prog="aiaas.training.launcher")
    ap.add_argument("job_dir", type=Path)
    ap.add_argument("--resume", action="store_true")
    args = ap.parse_args(argv)
    jd = JobDir(args.job_dir.resolve())
    spec = JobSpec.model_validate_json(jd.spec.read_text())
    store = InMemoryJobStore()
    job_id = jd.root.name
    store.create(JobRecord(id=job_id, spec=spec, job_dir=str(jd.root), state="running" if args.resume else "queued"))

    def show(_jid: str, event: dict[str, Any]) -> None:
        print(json.dumps(event), flush=True)

    runner = JobRunner(job_id, store, on_event=show, torch_extensions_dir=Settings().torch_extensions_dir)
    runner.start(resume=args.resume)
    job = runner.wait()
    print(json.dumps({"state": job.state, "reason": job.reason}), flush=True)
    return 0 if job.state == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
