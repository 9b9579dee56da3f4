"""``horovodrun`` with torchrun's failure semantics, for the ``horovod`` strategy::

    python -m aiaas.training.hvdrun --max-restarts R [--loopback] -- HOROVODRUN_ARGS...
    e.g. ... -- --gloo -np 2 -H localhost:2 python -m aiaas.training.worker --spec JOB_DIR/spec.json

horovodrun stops every rank when one fails but never starts them again. This wrapper reruns it (in a child
process, ``python -m aiaas.training.hvdrun --run``) up to R times after a non-zero exit, with
``AIAAS_RESTART_COUNT`` set to the attempt number (the worker's ``TORCHELASTIC_RESTART_COUNT``), so a crashed
rank costs a restart from the last checkpoint, as under torchrun. Fatal errors (bad data, the deadline) make the
workers exit 0 with an error file, so they are not retried. A signal ends the wrapper at once; the launcher
stops the whole process tree (horovodrun and its ranks) itself.

``--loopback`` (jobs on this machine only): horovodrun's rendezvous HTTP server binds 127.0.0.1 instead of every
interface (Horovod 0.28.1 hard-codes ``''``); the ranks reach it through loopback anyway.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from aiaas.training.commands import RESTART_ENV


def run_horovodrun(args: list[str], loopback: bool) -> None:
    """horovodrun in this process (its exit status is this process's)."""
    from horovod.runner import launch

    if loopback:
        from horovod.runner.http import http_server

        def find_port(server_factory: Any) -> tuple[Any, int]:
            server = server_factory(("127.0.0.1", 0))
            return server, int(server.server_address[1])

        http_server.find_port = find_port
    sys.argv = ["horovodrun", *args]
    launch.run_commandline()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="aiaas.training.hvdrun")
    ap.add_argument("--max-restarts", type=int, default=0)
    ap.add_argument("--loopback", action="store_true", help="bind horovodrun's rendezvous server to 127.0.0.1")
    ap.add_argument("--run", action="store_true", help="one attempt, in this process (used by the wrapper)")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    ns = ap.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if not args:
        ap.error("no horovodrun arguments after --")
    if ns.run:
        run_horovodrun(args, ns.loopback)
        return 0
    attempt_cmd = [
        sys.executable,
        "-m",
        "aiaas.training.hvdrun",
        "--run",
        *(["--loopback"] if ns.loopback else []),
        "--",
        *args,
    ]
    rc = 0
    for attempt in range(ns.max_restarts + 1):
        if attempt:
            print(
                f"[aiaas.training.hvdrun] the ranks failed (status {rc}); restart {attempt}/{ns.max_restarts}",
                flush=True,
            )
            time.sleep(1.0)  # let the previous attempt's ports close
        rc = subprocess.call(attempt_cmd, env={**os.environ, RESTART_ENV: str(attempt)})
        if rc == 0:
            return 0
    print(f"[aiaas.training.hvdrun] the ranks failed (status {rc}) after {ns.max_restarts} restart(s)", flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
