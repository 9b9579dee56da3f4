"""``placement: process``: each replica in its own worker process on this machine.

Batches cross as raw tensor buffers in two shared-memory segments per replica (request and response, memfd,
grown on demand); only a small struct-packed header goes over the Unix socket. A worker that dies (segfault,
``os._exit``, OOM kill) shows up as the socket closing: the batch it held fails with ``ReplicaLost`` (the
batcher retries it once on another ready replica, or answers 503 naming the model), and the replica restarts
in the background with exponential backoff while the server and every other model keep serving.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from aiaas.placement import channel as ch
from aiaas.placement import wire
from aiaas.placement.base import Replica, ReplicaLost, decode_error
from aiaas.runtime.base import Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

log = logging.getLogger("aiaas.placement")
_START_TIMEOUT_S = 600.0  # a catalog model may take minutes to load
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # waits between failed restarts
_MIN_SEGMENT = 1 << 20


class ProcessReplica(Replica):
    placement: ClassVar[str] = "process"

    def __init__(self, rid: str, config: ModelConfig, version_dir: Path, intra_op_threads: int = 0) -> None:
        super().__init__(rid, config)
        self.version_dir = version_dir
        self.intra_op_threads = intra_op_threads
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._request: ch.Segment | None = None
        self._response: ch.Segment | None = None
        self._signature: tuple[list[TensorSpec], list[TensorSpec]] | None = None
        self._lock = threading.Lock()  # one batch at a time; a restart swaps the process under it
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn()
        self.set_state("ready")

    def _spawn(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "aiaas.placement.worker", str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_worker_env(),
            )
        finally:
            child.close()
        try:
            spec = {
                "config": self.config.model_dump(mode="json"),
                "version_dir": str(self.version_dir),
                "intra_op_threads": self.intra_op_threads,
            }
            parent.settimeout(_START_TIMEOUT_S)
            ch.send(parent, ch.LOAD, json.dumps(spec).encode())
            kind, payload, _ = ch.recv(parent)
            if kind != ch.READY:
                raise ValueError(bytes(payload).decode("utf-8", "replace") or "the worker failed to load the model")
            doc = json.loads(bytes(payload))
            if doc is not None:
                self._signature = ([TensorSpec(**t) for t in doc[0]], [TensorSpec(**t) for t in doc[1]])
            parent.settimeout(None)
        except EOFError:
            parent.close()
            raise ValueError(f"the worker process exited while loading the model ({_exit_reason(proc)})") from None
        except BaseException:
            parent.close()
            _kill(proc)
            raise
        self._proc, self._sock = proc, parent
        self._request = self._response = None
        self.stats.started_at = time.time()

    def close(self) -> None:
        self._closed = True
        super().close()
        with self._lock:
            self._stop_worker()

    def _stop_worker(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the worker exits on EOF
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                _kill(self._proc)
            self._proc = None
        for seg in (self._request, self._response):
            if seg is not None:
                seg.close()
        self._request = self._response = None

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]] | None:
        return self._signature

    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- a batch --------------------------------------------------------------------------------
    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        with self._lock:
            sock = self._sock
            if sock is None or self.state != "ready":
                raise ReplicaLost(f"model {self.config.name!r}: replica {self.id} is {self.state}", retry_after=1)
            try:
                return self._call(sock, inputs, parameters)
            except (EOFError, OSError) as e:
                raise self._lost(e) from None

    def _call(self, sock: socket.socket, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        plan, size = wire.layout(inputs)
        if self._request is None or self._request.size < size:
            self._request = self._grow(self._request, size, ch.REQUEST)
        header = wire.write(plan, self._request.view)
        params = json.dumps(parameters).encode() if parameters else b""
        ch.send(sock, ch.INFER, ch.U32.pack(len(params)) + params + header)
        kind, payload, _ = ch.recv(sock)
        if kind == ch.ERROR:
            raise decode_error(bytes(payload))
        if payload[0] == 0:
            assert self._response is not None
            return wire.read(payload[1:], self._response.view, copy=True)
        (hlen,) = ch.U32.unpack_from(payload, 1)
        header_out = payload[5 : 5 + hlen]
        data = payload[5 + hlen :]
        outputs = wire.read(header_out, data, copy=True)
        self._response = self._grow(self._response, len(data), ch.RESPONSE)
        return outputs

    def _grow(self, old: ch.Segment | None, need: int, which: bytes) -> ch.Segment:
        assert self._sock is not None
        seg = ch.Segment(max(_MIN_SEGMENT, need + need // 2))
        ch.send(self._sock, ch.SEGMENT, which, (seg.fd,))
        if old is not None:
            old.close()
        return seg

    # -- death and restart ------------------------------------------------------------------------
    def _lost(self, error: BaseException) -> ReplicaLost:
        """Called with the lock held when the channel broke: record why, restart in the background."""
        proc = self._proc
        reason = _exit_reason(proc) if proc is not None else str(error)
        pid = proc.pid if proc is not None else None
        self.stats.restarts += 1
        self.stats.last_error = f"worker pid {pid} {reason}"
        self.set_state("restarting")
        self._stop_worker()
        log.error("model %r replica %s: worker pid %s %s; restarting", self.config.name, self.id, pid, reason)
        threading.Thread(target=self._restart, name=f"aiaas-restart-{self.id}", daemon=True).start()
        return ReplicaLost(
            f"model {self.config.name!r}: its worker process (replica {self.id}, pid {pid}) {reason} while running "
            "this request; the replica is being restarted",
            retry_after=1,
        )

    def _restart(self) -> None:
        for attempt in itertools.count():
            time.sleep(_BACKOFF_S[min(attempt, len(_BACKOFF_S) - 1)])
            if self._closed or self.retiring:
                return
            with self._lock:
                try:
                    self._spawn()
                except Exception as e:
                    self.stats.last_error = f"restart failed: {e}"
                    log.error("model %r replica %s: restart failed: %s", self.config.name, self.id, e)
                    continue
                if self._closed:
                    self._stop_worker()
                    return
                self.set_state("ready")
                return


def _worker_env() -> dict[str, str]:
    """The server's environment, with its import path: the worker imports what the server could."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def _exit_reason(proc: subprocess.Popen[bytes]) -> str:
    try:
        code = proc.wait(2)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return "stopped answering (killed)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
