"""Governance overhead over HTTP: the same server with ``AIAAS_GOVERNANCE=off`` and ``=db``, in one run.

Method
------
Two real servers (``python -m aiaas.cli.main serve``, uvicorn, ``AIAAS_CATALOG=none``) serve the same tiny ONNX
model (y = x W + b, 4 -> 3, FP32, built here with ``onnx.helper``; nothing is downloaded) from two homes:

* **off** -- ``AIAAS_GOVERNANCE=off``: only the bootstrap admin key, no limits, no metering.
* **db** -- ``AIAAS_GOVERNANCE=db`` (SQLite in the home): a ``user`` key of tenant ``bench`` with
  requests/minute, units/minute and concurrency limits on the key and on its tenant, a budget on both, and
  the model priced (per request and per 1k units), so every request authenticates, checks visibility, takes
  and frees rate and concurrency slots, reserves and settles two budgets and buffers a usage row.

The load is sequential (concurrency 1) over one keep-alive connection per server (``http.client``, the
lightest client the standard library has), the same V2 JSON body each time. After a warm-up, the servers
take turns in rounds (off, db, db, off, ...) so drift in machine load hits both alike. Reported per server:
p50 / p99 / mean latency of a request as the client sees it, and server CPU per request (user + sys of the
server process over its rounds, from /proc). The overhead is db minus off, at p50 and at p99; the target is
p50 <= 0.3 ms (PASS / MISS). At the end the db server's own usage API must account for every request, which
shows the governed path really ran.

Timings are noisy on a shared 2-core machine: compare the two rows of one run, never numbers across runs.

With ``--postgres URL`` the governed server keeps its database in a fresh schema of that PostgreSQL database
(dropped afterwards) instead of SQLite: budgets are then reserved with one conditional UPDATE per request
(the multi-replica ledger), which is the cost that figure shows.

    .venv/bin/python bench/governance_http.py [--requests 4000] [--rounds 20] [--warmup 500] [--postgres URL]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 0.3
ADMIN_KEY = "bench-governance-admin-key-0123456789"
MODEL = "tiny"
BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0.5, -1.0, 2.0, 0.25]}]}
).encode()


def build_model(path: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_home(home: Path, onnx_file: Path) -> None:
    """The model, priced, in a fresh home (the price only matters to the governed server)."""
    from aiaas.registry import ModelRepository
    from aiaas.registry.onnx_import import import_onnx

    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(
        repo, onnx_file, MODEL, max_batch_size=8, overrides={"pricing": {"per_request": 0.0001, "per_1k_units": 0.01}}
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    home: Path
    governance: str
    database_url: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra AIAAS_* settings

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIAAS_")}
        env.update(
            AIAAS_CATALOG="none",
            AIAAS_HOME=str(self.home),
            AIAAS_ADMIN_KEY=ADMIN_KEY,
            AIAAS_GOVERNANCE=self.governance,
            AIAAS_LOG_LEVEL="warning",
            AIAAS_ACCESS_LOG="false",
            PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        )
        if self.database_url:
            env["AIAAS_DATABASE_URL"] = self.database_url
        env.update(self.env)
        self.log = self.home.parent / f"{self.name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aiaas.cli.main", "serve", "--home", str(self.home), "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=str(REPO_ROOT),
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited:\n{self.log.read_text(errors='replace')}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if self.request("GET", "/v2/health/ready", None, {})[0] == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} server not ready:\n{self.log.read_text(errors='replace')}")

    def request(self, method: str, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **headers})
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def governed_key(server: Server, tenant: str = "bench", concurrency: int = 64) -> str:
    """A user key with every kind of limit and budget, on a tenant with its own limits and budget (all far
    above what a bench sends, so they are checked on every request without refusing one)."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def call(method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        status, doc = server.request(method, path, body, admin)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {doc}")
        return doc

    call("POST", "/v1/tenants", {"name": tenant}, 201)
    key = call("POST", "/v1/keys", {"tenant": tenant, "role": "user"}, 201)
    limits = {"requests_per_minute": 1_000_000_000, "units_per_minute": 1e12, "concurrency": concurrency}
    call("PUT", f"/v1/limits/key/{key['id']}", limits)
    call("PUT", f"/v1/limits/tenant/{tenant}", limits)
    call("PUT", f"/v1/budgets/key/{key['id']}", {"limit": 1e9, "period": "month"})
    call("PUT", f"/v1/budgets/tenant/{tenant}", {"limit": 1e9, "period": "month"})
    return str(key["key"])


class Load:
    """Sequential V2 infer calls over one keep-alive connection."""

    def __init__(self, server: Server, api_key: str) -> None:
        self.server = server
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.path = f"/v2/models/{MODEL}/infer"
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        self.samples: list[float] = []
        self.cpu = 0.0
        self.count = 0

    def run(self, n: int, record: bool = True) -> None:
        cpu0 = self.server.cpu_s()
        clock = time.perf_counter_ns
        for _ in range(n):
            t0 = clock()
            self.conn.request("POST", self.path, body=BODY, headers=self.headers)
            resp = self.conn.getresponse()
            resp.read()
            elapsed = (clock() - t0) / 1e6
            if resp.status != 200:
                raise RuntimeError(f"{self.server.name}: HTTP {resp.status}")
            if record:
                self.samples.append(elapsed)
        if record:
            self.cpu += self.server.cpu_s() - cpu0
            self.count += n


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def postgres_schema(url: str | None) -> Iterator[str | None]:
    """A fresh schema in ``url`` reached through search_path (dropped on exit); None: SQLite."""
    if url is None:
        yield None
        return
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@contextlib.contextmanager
def servers(workdir: Path, database_url: str | None) -> Iterator[tuple[Server, Server]]:
    onnx_file = build_model(workdir / "src" / "tiny.onnx")
    off = Server("off", workdir / "off" / "home", "off")
    db = Server("db", workdir / "db" / "home", "db", database_url)
    try:
        for server in (off, db):
            make_home(server.home, onnx_file)
            server.start()
        yield off, db
    finally:
        for server in (off, db):
            server.stop()


def main(requests: int, rounds: int, warmup: int, postgres: str | None) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="aiaas-gov-bench-") as tmp,
        postgres_schema(postgres) as database_url,
        servers(Path(tmp), database_url) as (off, db),
    ):
        loads = {"off": Load(off, ADMIN_KEY), "db": Load(db, governed_key(db))}
        for load in loads.values():
            load.run(warmup, record=False)
        per_round = max(1, requests // rounds)
        for i in range(rounds):
            for name in ("off", "db") if i % 2 == 0 else ("db", "off"):
                loads[name].run(per_round)
        expected = warmup + per_round * rounds
        metered, deadline = -1, time.monotonic() + 10
        while metered != expected and time.monotonic() < deadline:  # usage is flushed every second
            status, doc = db.request(
                "GET", "/v1/usage?tenant=bench&group_by=model", None, {"Authorization": f"Bearer {ADMIN_KEY}"}
            )
            metered = sum(row["requests"] for row in doc["data"]) if status == 200 else -1
            if metered != expected:
                time.sleep(0.2)
        for load in loads.values():
            load.conn.close()

    print(
        f"governance overhead over HTTP: {per_round * rounds} sequential requests per server "
        f"({rounds} interleaved rounds after {warmup} warm-up), model '{MODEL}' (4->3 MLP, batch 1)"
    )
    print(f"{'server':46} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'CPU us/req':>11}")
    store = "PostgreSQL" if postgres else "SQLite"
    rows = {"off": "AIAAS_GOVERNANCE=off (admin key)", "db": f"AIAAS_GOVERNANCE=db ({store}, limited key)"}
    stats = {}
    for name, load in loads.items():
        s = load.samples
        cpu_us = load.cpu / max(1, load.count) * 1e6
        stats[name] = (pct(s, 0.5), pct(s, 0.99), statistics.fmean(s), cpu_us)
        print(f"{rows[name]:46} {stats[name][0]:8.3f} {stats[name][1]:8.3f} {stats[name][2]:8.3f} {cpu_us:11.0f}")
    over50 = stats["db"][0] - stats["off"][0]
    over99 = stats["db"][1] - stats["off"][1]
    cpu = stats["db"][3] - stats["off"][3]
    verdict = "PASS" if over50 <= TARGET_MS else "MISS"
    print(f"overhead: p50 {over50:+.3f} ms, p99 {over99:+.3f} ms, server CPU {cpu:+.0f} us/request")
    print(f"target p50 overhead <= {TARGET_MS} ms: {verdict}")
    print(
        f"usage metered by the db server: {metered} of {expected} requests "
        f"({'all accounted' if metered == expected else 'MISMATCH'})"
    )
    return 0 if metered == expected else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="measured requests per server")
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds the requests are split into")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests per server first")
    parser.add_argument("--postgres", metavar="URL", help="keep the governed server's database in PostgreSQL")
    args = parser.parse_args()
    raise SystemExit(main(args.requests, args.rounds, args.warmup, args.postgres))
