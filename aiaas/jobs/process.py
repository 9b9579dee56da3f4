"""Worker process management: a job's process tree, started in its own session and stopped as a whole.

The launched process (torchrun, horovodrun, an optimization worker) runs in its own session
(``start_new_session=True``) so a signal aimed at the server does not hit it and a stop can target it; torchrun in
turn puts each worker in a session of its own, so ``stop`` collects the whole tree with psutil before signalling
(SIGTERM, then SIGKILL after a grace period), and the workers additionally die with their parent
(``aiaas.jobs.jobdir.die_with_parent``). ``launcher.json`` records the pid and create time: a server that crashed
and came back finds the orphaned tree (``stop_orphans``) and stops it before relaunching the job.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

from aiaas.jobs.jobdir import JobDir, write_json_atomic

KILL_GRACE_S = 5.0  # SIGTERM -> SIGKILL


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


def read_launch_info(jd: JobDir) -> dict[str, Any]:
    """``launcher.json`` of the job's last launch ({} before the first one)."""
    try:
        info = json.loads(jd.launcher.read_text())
        return info if isinstance(info, dict) else {}
    except (OSError, ValueError):
        return {}


def stop_orphans(jd: JobDir) -> int:
    """Stop what is left of the job's previous launch (a server that died without cleaning up); returns how
    many processes there were."""
    info = read_launch_info(jd)
    orphans = process_tree(int(info["pid"]), info.get("create_time")) if info.get("pid") else []
    if orphans:
        kill_tree(orphans)
    return len(orphans)


class WorkerProcess:
    """One launched process tree of a job."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @classmethod
    def launch(
        cls, cmd: list[str], jd: JobDir, log_name: str, env: Mapping[str, str], launch_info: dict[str, Any]
    ) -> WorkerProcess:
        """Start ``cmd`` in the job directory, in its own session, its output appended to ``logs/<log_name>``;
        record its pid and create time (plus ``launch_info``) in ``launcher.json``."""
        jd.logs.mkdir(parents=True, exist_ok=True)
        log_path: Path = jd.logs / log_name
        with open(log_path, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                cmd,
                cwd=jd.root,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        with contextlib.suppress(psutil.Error):
            write_json_atomic(
                jd.launcher,
                {
                    "pid": popen.pid,
                    "create_time": psutil.Process(popen.pid).create_time(),
                    **launch_info,
                    "command": cmd,
                },
            )
        return cls(popen)

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self._popen.poll()

    def stop(self) -> None:
        """Stop the whole tree: SIGTERM to the session's group and every descendant, SIGKILL what is left."""
        procs = process_tree(self._popen.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGTERM)
        kill_tree(procs)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signal.SIGKILL)
