"""``make bench``: served throughput and latency of aiaas against its two baselines, measured in one run.

Method
------
Two ONNX models are built locally with torch (nothing is downloaded): a small MLP (256 -> 1024 -> 1024 -> 10,
FP32, input ``x`` [-1, 256]) and a transformer encoder (token ids INT64 [-1, 64] -> embedding, 4 layers,
d_model 256, 4 heads, mean-pooled FP32 [-1, 256] output), both with a dynamic batch axis.

1. **raw** -- in-process onnxruntime, no HTTP: samples/s at batch sizes 1..64 for one session with 2 intra-op
   threads and for two sessions with 1 thread each, run from two Python threads (onnxruntime releases the
   GIL). The best of all of these is *the limit* no server on this machine can beat. The p50 of a batch-1
   call is the latency floor for the concurrency-1 overhead figure.
2. **aiaas** -- the real server (``aiaas serve``, ``AIAAS_CATALOG=none``, access log off) in a subprocess,
   models imported with ``import_onnx`` (max_batch_size 64). ``instances`` is decided per model by measuring
   both layouts at concurrency 64 -- 1 instance x 2 intra-op threads vs 2 instances x 1 thread (both are
   threads of one process) -- and the faster one serves the rest of the run.
3. **naive** -- ``bench/naive_app.py``: one FastAPI route with a pydantic body and one ``session.run`` per
   request (what a user would write), same thread count, under uvicorn with the same loop (uvloop, httptools).

Load is ``wrk -t1 -c{1,16,64} -d{N}s --latency`` on 127.0.0.1 with a Lua script that POSTs the same V2 JSON
body (one row per request: the realistic per-user request) and the auth header; each point follows a short
warm-up at the same concurrency. aiaas is also measured at concurrency 64 with the binary tensor extension
(input and output as raw bytes). Without wrk a Python asyncio keep-alive load generator is used instead, and
the output says so. The load generator runs on the same 2 cores as the server (the raw limit does not pay for
it), so it is part of what a served figure costs.

Reading the output
------------------
Per model: the raw limit and batch-1 latency, the instances decision, then a table of samples/s, p50 and p99
(ms, as wrk measures them, i.e. including loopback HTTP) and server CPU per request (user+sys of the server
process over the point, divided by requests: everything the server spends on one request, model included).
Then the targets, each PASS or MISS:

- ``served/raw``: aiaas samples/s at concurrency 64 over the raw limit, target >= 0.90;
- ``p50 overhead``: aiaas p50 at concurrency 1 minus the raw batch-1 call p50, target <= 1 ms;
- ``vs naive``: aiaas over the naive app at concurrency 64, target >= 2x ("well ahead").

Last, the ``ceiling`` at concurrency 64: the CPU of one raw row against the load generator's CPU per request (it
shares the cores raw had to itself), i.e. the ratio that a server costing nothing would reach.

Two more rows: ``aiaas binary`` (binary tensor extension, conc 64) and ``aiaas JSON gov=off`` (conc 64 with
``AIAAS_GOVERNANCE=off``: what tenants, keys, limits and usage metering cost per request).

gRPC (``bench/grpc_load.py``, needs ``h2load`` from nghttp2-client): the same server with ``AIAAS_GRPC_PORT`` is
also measured over KServe V2 gRPC (``ModelInfer``, raw tensors) at concurrency 1 and 64, next to REST binary at
the same levels. Targets: ``gRPC/binary`` samples/s at conc 64 >= 1.0 and gRPC p50 at conc 1 within +0.2 ms
of REST binary's.

Noise: before and after every conc-64 point the raw limit (its layout and batch) is measured again for 2 s, and
``vs raw`` divides by that, so a machine that gets busier during the run does not skew the ratio; the instances
decision compares these ratios too. ``other load`` is the CPU (in cores) that processes other than the server
and wrk used during a point; above ~0.2 the run says so and its figures are not trustworthy. On a shared
machine, ``nice -n -10 make bench`` helps. Compare ratios from one run, never absolute numbers across runs.

Fast path (``--fast-path-compare``): two more servers, the same config with ``AIAAS_FAST_PATH=1`` and ``=0``
(plain FastAPI routing, same bytes), both up at once; for each model and concurrency the JSON point is measured
on each in turn, fast then routed, ``FAST_PATH_ROUNDS`` times, and the medians are reported with the ratio
fast/routed of requests/s and of p50 (alternating puts the machine's drift on both alike).

Results also go to ``bench/results/serving.json``. Options: ``--duration``, ``--models``, ``--conc``,
``--instances 1x2|2x1`` (skip the decision), ``--no-naive``, ``--no-binary``, ``--no-gov-off``, ``--delay-ms``,
``--fast-path-compare``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc_load  # bench/grpc_load.py (the script's directory is on sys.path)
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serving.json"
ADMIN_KEY = "bench-admin-key-not-secret-0123456789"
HOST = "127.0.0.1"
SPIN = False  # --spin: runtime.allow_spinning of the served models
FAST_PATH_ROUNDS = 3  # --fast-path-compare: fast, routed, fast, routed, ... medians of each
BATCHES = (1, 2, 4, 8, 16, 32, 64)  # raw sweep; the largest is the max_batch_size ceiling
LAYOUTS = {"1x2": (1, 2), "2x1": (2, 1)}  # instances x intra-op threads
TARGET_RATIO, TARGET_OVERHEAD_MS, TARGET_VS_NAIVE = 0.90, 1.0, 2.0
TARGET_GRPC_VS_BINARY, TARGET_GRPC_P50_MS = 1.0, 0.2  # gRPC: >= REST binary's samples/s at 64; p50 at 1 within +0.2 ms


# -- models -------------------------------------------------------------------------------------------------
@dataclass
class BenchModel:
    name: str
    title: str
    path: Path
    input: str
    datatype: str
    row: np.ndarray  # one request's input, shape [1, ...]
    make: Callable[[int], np.ndarray]  # a batch of n rows
    result: dict[str, Any] = field(default_factory=dict)


def build_models(workdir: Path, names: list[str]) -> list[BenchModel]:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    models: list[BenchModel] = []

    if "mlp" in names:

        class MLP(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = torch.nn.Sequential(
                    torch.nn.Linear(256, 1024),
                    torch.nn.ReLU(),
                    torch.nn.Linear(1024, 1024),
                    torch.nn.ReLU(),
                    torch.nn.Linear(1024, 10),
                )

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.net(x)

        path = workdir / "mlp.onnx"
        torch.onnx.export(
            MLP().eval(),
            (torch.randn(2, 256),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        models.append(
            BenchModel(
                "mlp",
                "MLP 256-1024-1024-10 FP32, 1.3M params; request: x [1,256] FP32",
                path,
                "x",
                "FP32",
                rng.standard_normal((1, 256)).astype(np.float32),
                lambda n: rng.standard_normal((n, 256)).astype(np.float32),
            )
        )

    if "mlp-large" in names:
        # the reference model of shared/FACTS.md's serving table (138M-param MLP, one 256-float row per request):
        # compute-bound enough (~2.7 ms of core time per row) that batching, not HTTP, decides the ratio
        big = torch.nn.Sequential(
            torch.nn.Linear(256, 8192),
            torch.nn.ReLU(),
            torch.nn.Linear(8192, 8192),
            torch.nn.ReLU(),
            torch.nn.Linear(8192, 8192),
            torch.nn.ReLU(),
            torch.nn.Linear(8192, 10),
        ).eval()
        params = sum(p.numel() for p in big.parameters()) / 1e6
        path = workdir / "mlp-large.onnx"
        torch.onnx.export(
            big,
            (torch.randn(2, 256),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )
        models.append(
            BenchModel(
                "mlp-large",
                f"MLP 256-8192x3-10 FP32, {params:.0f}M params (FACTS.md reference); request: x [1,256] FP32",
                path,
                "x",
                "FP32",
                rng.standard_normal((1, 256)).astype(np.float32),
                lambda n: rng.standard_normal((n, 256)).astype(np.float32),
            )
        )

    if "encoder" in names:

        class Encoder(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = torch.nn.Embedding(8192, 256)
                self.pos = torch.nn.Parameter(torch.randn(1, 64, 256) * 0.02)
                layer = torch.nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True)
                self.enc = torch.nn.TransformerEncoder(layer, 4, enable_nested_tensor=False)

            def forward(self, ids: torch.Tensor) -> torch.Tensor:
                return self.enc(self.emb(ids) + self.pos).mean(dim=1)

        path = workdir / "encoder.onnx"
        torch.onnx.export(
            Encoder().eval(),
            (torch.randint(0, 8192, (2, 64)),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input_ids"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch"}, "embedding": {0: "batch"}},
        )
        models.append(
            BenchModel(
                "encoder",
                "transformer encoder d256 x4 layers, seq 64, 5.3M params; request: input_ids [1,64] INT64",
                path,
                "input_ids",
                "INT64",
                rng.integers(0, 8192, (1, 64), dtype=np.int64),
                lambda n: rng.integers(0, 8192, (n, 64), dtype=np.int64),
            )
        )
    return models


# -- raw onnxruntime ----------------------------------------------------------------------------------------
def _sessions(path: Path, count: int, threads: int) -> list[Any]:
    import onnxruntime as ort

    out = []
    for _ in range(count):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        out.append(ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"]))
    return out


def _raw_throughput(sessions: list[Any], name: str, x: np.ndarray, seconds: float) -> float:
    for s in sessions:
        s.run(None, {name: x})
    counts = [0] * len(sessions)
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        s, n = sessions[i], 0
        while True:
            s.run(None, {name: x})
            n += 1
            if time.perf_counter() >= stop and n >= 2:
                break
        counts[i] = n

    t0 = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(sessions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) * x.shape[0] / (time.perf_counter() - t0)


def _raw_latency(session: Any, name: str, x: np.ndarray, seconds: float = 1.0) -> dict[str, float]:
    lat = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop or len(lat) < 20:
        t = time.perf_counter()
        session.run(None, {name: x})
        lat.append(time.perf_counter() - t)
    ms = np.array(lat) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def raw_baseline(m: BenchModel, seconds: float, passes: int = 2) -> dict[str, Any]:
    """Samples/s per layout and batch size (best of ``passes`` sweeps: another process stealing a core only
    ever lowers a figure); the best is the limit. Batch-1 call latency per layout. Per layout, the batch size
    aiaas is given as max_batch_size: the batch size of that layout's peak, the "best batch size" the served
    figure is compared at (larger batches only add latency, and past the cache they lose throughput, as the
    encoder does here)."""
    out: dict[str, Any] = {"throughput": {}, "latency_b1": {}, "max_batch": {}}
    best = (0.0, "", 0)
    for layout, (count, threads) in LAYOUTS.items():
        sessions = _sessions(m.path, count, threads)
        out["latency_b1"][layout] = _raw_latency(sessions[0], m.input, m.row)
        row = dict.fromkeys(BATCHES, 0.0)
        for _ in range(passes):
            for b in BATCHES:
                row[b] = max(row[b], round(_raw_throughput(sessions, m.input, m.make(b), seconds), 1))
        for b, rate in row.items():
            if rate > best[0]:
                best = (rate, layout, b)
        peak = max(row.values())
        out["max_batch"][layout] = next(b for b in BATCHES if row[b] == peak)
        out["throughput"][layout] = row
        del sessions
    out["limit"] = {"samples_per_s": round(best[0], 1), "layout": best[1], "batch": best[2]}
    return out


# -- servers ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """user+sys CPU of a process, all its threads (fields 14 and 15 of /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    grpc_port = 0  # aiaas with gRPC on

    def __init__(self, argv: list[str], env: dict[str, str], port: int, ready_path: str, log: Path) -> None:
        self.port = port
        self.log = log
        self._logf = open(log, "wb")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=self._logf, stderr=subprocess.STDOUT, cwd=ROOT
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{port}{ready_path}", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready after 120 s:\n{log.read_text()[-3000:]}")

    def cpu(self) -> float:
        return _cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()


def start_aiaas(
    work: Path,
    models: list[BenchModel],
    layouts: dict[str, str],
    tag: str,
    batching: dict[str, Any],
    governance: str | None = None,
    grpc: bool = False,
    fast_path: bool | None = None,
) -> Server:
    from aiaas.registry import ModelRepository
    from aiaas.registry.onnx_import import import_onnx

    home = work / f"home-{tag}"
    shutil.rmtree(home, ignore_errors=True)
    repo = ModelRepository(home / "models")
    repo.ensure()
    for m in models:
        layout = layouts[m.name]
        instances, threads = LAYOUTS[layout]
        overrides = {
            "instances": instances,
            "runtime": {"intra_op_threads": threads, "allow_spinning": SPIN},
            "batching": batching,
        }
        import_onnx(repo, m.path, m.name, max_batch_size=m.result["raw"]["max_batch"][layout], overrides=overrides)
    port = free_port()
    env = {
        "AIAAS_CATALOG": "none",
        "AIAAS_ADMIN_KEY": ADMIN_KEY,
        "AIAAS_ACCESS_LOG": "false",
        "AIAAS_LOG_LEVEL": "warning",
        "AIAAS_REPOSITORY_POLL_S": "0",
    }
    if governance:
        env["AIAAS_GOVERNANCE"] = governance
    if fast_path is not None:
        env["AIAAS_FAST_PATH"] = "1" if fast_path else "0"
    grpc_port = free_port() if grpc else 0
    env["AIAAS_GRPC_PORT"] = str(grpc_port)
    aiaas = str(Path(sys.executable).with_name("aiaas"))
    argv = [aiaas, "serve", "--home", str(home), "--host", HOST, "--port", str(port)]
    server = Server(argv, env, port, "/v2/health/ready", work / f"aiaas-{tag}.log")
    server.grpc_port = grpc_port
    for m in models:  # readiness of each model (load_on_start loads them before the server says ready)
        req = urllib.request.Request(
            f"http://{HOST}:{port}/v2/models/{m.name}/ready", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, f"model {m.name} not ready"
    return server


def start_naive(work: Path, models: list[BenchModel], threads: int) -> Server:
    port = free_port()
    env = {
        "BENCH_NAIVE_MODELS": json.dumps({m.name: str(m.path) for m in models}),
        "BENCH_NAIVE_THREADS": str(threads),
        "PYTHONPATH": str(ROOT),
    }
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.naive_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--loop",
        "uvloop",
        "--http",
        "httptools",
    ]
    return Server(argv, env, port, "/docs", work / "naive.log")


# -- requests -----------------------------------------------------------------------------------------------
@dataclass
class Body:
    path: str
    data: bytes
    headers: dict[str, str]


def json_body(m: BenchModel, binary_out: bool = False) -> tuple[bytes, dict[str, str]]:
    doc: dict[str, Any] = {
        "inputs": [{"name": m.input, "shape": list(m.row.shape), "datatype": m.datatype, "data": m.row.reshape(-1)}]
    }
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), {"Content-Type": "application/json"}


def binary_body(m: BenchModel) -> tuple[bytes, dict[str, str]]:
    raw = m.row.tobytes()
    doc = {
        "inputs": [
            {
                "name": m.input,
                "shape": list(m.row.shape),
                "datatype": m.datatype,
                "parameters": {"binary_data_size": len(raw)},
            }
        ],
        "parameters": {"binary_data_output": True},
    }
    head = orjson.dumps(doc)
    return head + raw, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}


def get(port: int, path: str) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def post(port: int, path: str, data: bytes, headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
    headers = {**headers, "Authorization": f"Bearer {ADMIN_KEY}"}
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def check_answer(m: BenchModel, port: int, body: Body, expected: np.ndarray) -> None:
    """One request before the load: it must succeed and agree with raw onnxruntime."""
    status, data, headers = post(port, body.path, body.data, body.headers)
    if status != 200:
        raise RuntimeError(f"{m.name}: {body.path} answered {status}: {data[:300]!r}")
    hlen = headers.get("Inference-Header-Content-Length") or headers.get("inference-header-content-length")
    doc = orjson.loads(data[: int(hlen)] if hlen else data)
    out = doc["outputs"][0]
    got = np.frombuffer(data[int(hlen) :], dtype=np.float32) if hlen else np.asarray(out["data"], dtype=np.float32)
    if not np.allclose(got.reshape(expected.shape), expected, atol=1e-4):
        raise RuntimeError(f"{m.name}: served output differs from raw onnxruntime")


# -- load ---------------------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    v, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(v) * _UNITS[unit]


def wrk_load(work: Path, port: int, body: Body, conc: int, seconds: float) -> dict[str, Any]:
    bfile = work / f"body-{abs(hash(body.data))}.bin"
    bfile.write_bytes(body.data)
    headers = {**body.headers, "Authorization": f"Bearer {ADMIN_KEY}"}
    lua = [
        f'local f = assert(io.open("{bfile}", "rb"))',
        "wrk.body = f:read('*a')",
        "f:close()",
        'wrk.method = "POST"',
    ] + [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script = work / "post.lua"
    script.write_text("\n".join(lua) + "\n")
    argv = [
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://{HOST}:{port}{body.path}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in lat or "99" not in lat or "Requests/sec" not in out:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(x) for x in sock.groups()) if sock else 0)
    return {"rps": rps, "requests": total, "p50_ms": _ms(lat["50"]), "p99_ms": _ms(lat["99"]), "errors": errors}


async def _py_load_async(port: int, body: Body, conc: int, seconds: float) -> dict[str, Any]:
    headers = {
        **body.headers,
        "Authorization": f"Bearer {ADMIN_KEY}",
        "Content-Length": str(len(body.data)),
        "Host": f"{HOST}:{port}",
    }
    request = (
        f"POST {body.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    ).encode()
    request += body.data
    lat: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()
    stop = loop.time() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        while loop.time() < stop:
            t = time.perf_counter()
            writer.write(request)
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                k, _, v = line.decode().partition(":")
                if k.lower() == "content-length":
                    length = int(v)
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            errors += status != 200
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    elapsed = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "rps": len(lat) / elapsed,
        "requests": len(lat),
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors,
    }


def py_load(work: Path, port: int, body: Body, conc: int, seconds: float) -> dict[str, Any]:
    return asyncio.run(_py_load_async(port, body, conc, seconds))


def _machine_busy() -> float:
    """CPU-seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def measure(
    load: Callable[..., dict[str, Any]],
    work: Path,
    server: Server,
    body: Body,
    conc: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """One point. Also accounts the CPU of the machine over it: server, load generator (wrk is a waited
    child), and everything else -- other processes on a shared machine, which make a point unreliable."""
    if warmup > 0:
        load(work, server.port, body, conc, warmup)
    stats0 = _executions(server.port, body.path)
    cpu0, busy0, t0 = server.cpu(), _machine_busy(), time.perf_counter()
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = load(work, server.port, body, conc, seconds)
    kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats1 = _executions(server.port, body.path)
    if stats0 and stats1 and stats1[1] > stats0[1]:  # rows per model call over the point (the naive app has none)
        r["mean_batch"] = (stats1[0] - stats0[0]) / (stats1[1] - stats0[1])
    elapsed = time.perf_counter() - t0
    server_cpu = server.cpu() - cpu0
    loadgen_cpu = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
    if load is py_load:
        loadgen_cpu = 0.0  # counted in "other" (it is this process)
    r["server_cpu_us_per_req"] = server_cpu / max(1, r["requests"]) * 1e6
    r["server_cores"] = server_cpu / elapsed
    r["loadgen_cores"] = loadgen_cpu / elapsed
    r["other_cores"] = max(0.0, (_machine_busy() - busy0 - server_cpu - loadgen_cpu) / elapsed)
    r["samples_per_s"] = r["rps"]  # one row per request
    r["conc"] = conc
    return r


def _executions(port: int, infer_path: str) -> tuple[int, int] | None:
    """(inference_count, execution_count) of the model behind ``infer_path``, from the V2 statistics."""
    try:
        status, data, _ = get(port, infer_path.rsplit("/", 1)[0] + "/stats")
        stats = orjson.loads(data)["model_stats"][0] if status == 200 else None
    except (OSError, ValueError, KeyError, IndexError):
        return None
    return None if stats is None else (int(stats["inference_count"]), int(stats["execution_count"]))


# -- report -------------------------------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(m: BenchModel) -> list[str]:
    r = m.result
    raw, lim = r["raw"], r["raw"]["limit"]
    lines = [f"== {m.name}: {m.title}"]
    lines.append(
        f"raw onnxruntime limit: {lim['samples_per_s']:,.0f} samples/s (layout {lim['layout']}, batch {lim['batch']})"
    )
    for layout, row in raw["throughput"].items():
        cells = " ".join(f"b{b}:{v:,.0f}" for b, v in row.items())
        lat = raw["latency_b1"][layout]
        lines.append(f"  raw {layout}: {cells} | b1 call p50 {lat['p50_ms']:.3f} ms")
    adjacent = [
        f"{label} {p['raw_adjacent']:,.0f}"
        for label, key in (("aiaas", "aiaas"), ("binary", "binary"), ("gov=off", "gov_off"), ("naive", "naive"))
        for p in r.get(key, [])
        if p.get("raw_adjacent")
    ]
    if adjacent:
        lines.append(
            "  raw limit re-measured around each conc-64 point (samples/s; 'vs raw' uses it): " + ", ".join(adjacent)
        )
    if "decision" in r:
        d = r["decision"]
        lines.append(
            "instances decision at conc 64: "
            + ", ".join(
                f"{k} ({LAYOUTS[k][0]} inst x {LAYOUTS[k][1]} thr) {v:,.0f}/s" for k, v in d["samples_per_s"].items()
            )
            + f" -> {d['chosen']}"
        )
    inst, thr = LAYOUTS[r["layout"]]
    lines.append(
        f"aiaas config: instances {inst}, intra_op_threads {thr}, max_batch_size "
        f"{raw['max_batch'][r['layout']]}, batching {r['batching']}"
    )
    lines.append(
        f"{'':20}{'conc':>5}{'samples/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'us cpu/req':>11}"
        f"{'vs raw':>7}{'vs naive':>9}{'other load':>11}{'err':>5}{'batch':>7}"
    )
    naive = {p["conc"]: p for p in r.get("naive", [])}
    rows = [("aiaas JSON", p) for p in r["aiaas"]] + [("aiaas binary", p) for p in r.get("binary", [])]
    rows += [("aiaas gRPC", p) for p in r.get("grpc", [])]
    rows += [("aiaas JSON gov=off", p) for p in r.get("gov_off", [])]
    rows += [("naive FastAPI", p) for p in r.get("naive", [])]
    for label, p in rows:
        vs_naive = ""
        if label.startswith("aiaas") and p["conc"] in naive:
            vs_naive = f"{p['samples_per_s'] / naive[p['conc']]['samples_per_s']:.2f}x"
        lines.append(
            f"{label:20}{p['conc']:>5}{p['samples_per_s']:>10,.0f}{p['p50_ms']:>8.2f}{p['p99_ms']:>8.2f}"
            f"{p['server_cpu_us_per_req']:>11,.0f}{p['samples_per_s'] / _limit(r, p):>7.3f}{vs_naive:>9}"
            f"{p['other_cores']:>11.2f}{p['errors']:>5}" + (f"{p['mean_batch']:>7.1f}" if "mean_batch" in p else "")
        )
    if "fast_path" in r:
        lines.append(
            f"fast path (AIAAS_FAST_PATH=1) vs routed (=0), JSON, median of {FAST_PATH_ROUNDS} alternating rounds:"
        )
        lines.append(
            f"{'':20}{'conc':>5}{'fast req/s':>11}{'routed':>8}{'ratio':>7}{'fast p50':>9}{'routed':>8}{'ratio':>7}"
            f"{'other load':>11}"
        )
        for q in r["fast_path"]:
            f, o = q["fast"], q["routed"]
            lines.append(
                f"{'fast/routed':20}{q['conc']:>5}{f['rps']:>11,.0f}{o['rps']:>8,.0f}{q['rps_ratio']:>7.3f}"
                f"{f['p50_ms']:>9.2f}{o['p50_ms']:>8.2f}{q['p50_ratio']:>7.3f}"
                f"{max(f['other_cores'], o['other_cores']):>11.2f}"
            )
    lines.append("targets:")
    for t in r["targets"]:
        lines.append(f"  {t['name']:48} {t['value']:>8} (target {t['target']:>6})  {verdict(t['ok'])}")
    at64 = next((p for p in r["aiaas"] if p["conc"] == 64), None)
    if at64 is not None and at64.get("loadgen_cores"):
        # What the load generator alone leaves: the cores it uses are the cores raw had all to itself.
        row_us = (os.cpu_count() or 1) * 1e6 / _limit(r, at64)
        gen_us = at64["loadgen_cores"] / max(1e-9, at64["rps"]) * 1e6
        lines.append(
            f"  ceiling at conc 64: a raw row costs {row_us:,.0f} us of CPU and the load generator {gen_us:.1f} us "
            f"per request -> a server that cost nothing would reach {row_us / (row_us + gen_us):.3f} of raw"
        )
    return lines


def _limit(r: dict[str, Any], p: dict[str, Any]) -> float:
    """The raw figure a point is compared with: measured right around it when it was, else the sweep's."""
    return float(p.get("raw_adjacent") or r["raw"]["limit"]["samples_per_s"])


def targets(m: BenchModel) -> list[dict[str, Any]]:
    r = m.result
    out = []
    at = {p["conc"]: p for p in r["aiaas"]}
    if 64 in at:
        ratio = at[64]["samples_per_s"] / _limit(r, at[64])
        out.append(
            {
                "name": "served/raw samples/s at conc 64 (JSON)",
                "value": f"{ratio:.3f}",
                "target": f">= {TARGET_RATIO}",
                "ok": ratio >= TARGET_RATIO,
            }
        )
    for p in r.get("binary", []):
        ratio = p["samples_per_s"] / _limit(r, p)
        out.append(
            {
                "name": f"served/raw samples/s at conc {p['conc']} (binary)",
                "value": f"{ratio:.3f}",
                "target": f">= {TARGET_RATIO}",
                "ok": ratio >= TARGET_RATIO,
            }
        )
    if 1 in at:
        floor = r["raw"]["latency_b1"][r["layout"]]["p50_ms"]
        over = at[1]["p50_ms"] - floor
        out.append(
            {
                "name": f"p50 overhead at conc 1 over the raw call {floor:.3f} ms",
                "value": f"{over:.3f}",
                "target": f"<= {TARGET_OVERHEAD_MS}",
                "ok": over <= TARGET_OVERHEAD_MS,
            }
        )
    grpc, binary = {p["conc"]: p for p in r.get("grpc", [])}, {p["conc"]: p for p in r.get("binary", [])}
    if 64 in grpc and 64 in binary:
        x = grpc[64]["samples_per_s"] / binary[64]["samples_per_s"]
        out.append(
            {
                "name": "gRPC / REST binary samples/s at conc 64",
                "value": f"{x:.2f}x",
                "target": f">= {TARGET_GRPC_VS_BINARY}x",
                "ok": x >= TARGET_GRPC_VS_BINARY,
            }
        )
    if 1 in grpc and 1 in binary:
        d = grpc[1]["p50_ms"] - binary[1]["p50_ms"]
        out.append(
            {
                "name": "gRPC p50 - REST binary p50 at conc 1 (ms)",
                "value": f"{d:+.3f}",
                "target": f"<= +{TARGET_GRPC_P50_MS}",
                "ok": d <= TARGET_GRPC_P50_MS,
            }
        )
    naive = {p["conc"]: p for p in r.get("naive", [])}
    if 64 in at and 64 in naive:
        x = at[64]["samples_per_s"] / naive[64]["samples_per_s"]
        out.append(
            {
                "name": "aiaas / naive FastAPI samples/s at conc 64",
                "value": f"{x:.2f}x",
                "target": f">= {TARGET_VS_NAIVE}x",
                "ok": x >= TARGET_VS_NAIVE,
            }
        )
    return out


# -- main ---------------------------------------------------------------------------------------------------
def fast_path_compare(
    work: Path,
    models: list[BenchModel],
    layouts: dict[str, str],
    batching: dict[str, Any],
    concs: list[int],
    load: Callable[..., dict[str, Any]],
    args: argparse.Namespace,
    servers: list[Server],
) -> None:
    """``--fast-path-compare``: two servers, ``AIAAS_FAST_PATH=1`` and ``=0``, both up; per model and concurrency
    the JSON point on each in turn, ``FAST_PATH_ROUNDS`` times; medians and ratios into ``m.result["fast_path"]``."""
    pair = {
        "fast": start_aiaas(work, models, layouts, "fp-on", batching, fast_path=True),
        "routed": start_aiaas(work, models, layouts, "fp-off", batching, fast_path=False),
    }
    servers.extend(pair.values())
    for m in models:
        for s in pair.values():
            check_answer(m, s.port, m.result["json_body"], m.result["expected"])
        m.result["fast_path"] = []
        for c in concs:
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in pair}
            for i in range(FAST_PATH_ROUNDS):
                for k, s in pair.items():
                    print(f"[{m.name}] aiaas fast path {k} conc {c} round {i + 1} ...", flush=True)
                    runs[k].append(measure(load, work, s, m.result["json_body"], c, args.duration, args.warmup))
            keys = ("rps", "p50_ms", "p99_ms", "errors", "other_cores")
            med = {k: {x: float(np.median([p[x] for p in ps])) for x in keys} for k, ps in runs.items()}
            m.result["fast_path"].append(
                {
                    "conc": c,
                    **med,
                    "rps_ratio": med["fast"]["rps"] / med["routed"]["rps"],
                    "p50_ratio": med["fast"]["p50_ms"] / med["routed"]["p50_ms"],
                }
            )
    for s in pair.values():
        s.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measured point (wrk -d)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each point")
    ap.add_argument("--raw-seconds", type=float, default=0.6, help="seconds per raw batch size and pass")
    ap.add_argument("--models", default="mlp,mlp-large,encoder")
    ap.add_argument("--conc", default="1,16,64", help="concurrency levels")
    ap.add_argument("--instances", choices=sorted(LAYOUTS), help="skip the decision, use this layout")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-binary", action="store_true")
    ap.add_argument("--no-gov-off", action="store_true", help="skip the governance=off point")
    ap.add_argument("--no-grpc", action="store_true", help="skip the gRPC points (they need h2load)")
    ap.add_argument("--spin", action="store_true", help="let onnxruntime's threads busy-wait (runtime.allow_spinning)")
    ap.add_argument("--delay-ms", type=float, default=None, help="override batching.max_queue_delay_ms")
    ap.add_argument(
        "--fast-path-compare",
        action="store_true",
        help="also measure AIAAS_FAST_PATH=1 against =0 (routed), alternating, and print the ratio fast/routed",
    )
    args = ap.parse_args(argv)
    global SPIN
    SPIN = args.spin
    concs = [int(c) for c in args.conc.split(",")]
    batching: dict[str, Any] = {} if args.delay_ms is None else {"max_queue_delay_ms": args.delay_ms}

    if shutil.which("wrk"):
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
        load, loadgen = wrk_load, f"wrk -t1 ({version})"
    else:
        load, loadgen = py_load, "python asyncio keep-alive load generator (wrk unavailable: `apt-get install wrk`)"
    print(
        f"aiaas serving bench: {os.cpu_count()} cores, load generator {loadgen}, {args.duration:g} s per point "
        f"(+{args.warmup:g} s warm-up), loopback {HOST}",
        flush=True,
    )

    t_start = time.monotonic()
    servers: list[Server] = []

    raw_sessions: dict[str, list[Any]] = {}

    def raw_now(m: BenchModel) -> float:
        """The raw limit again, now (its layout and batch size, 2 s): background load drifts on a shared
        machine, so each conc-64 point is compared with the raw figure measured right around it."""
        lim = m.result["raw"]["limit"]
        if m.name not in raw_sessions:
            raw_sessions[m.name] = _sessions(m.path, *LAYOUTS[lim["layout"]])
        return _raw_throughput(raw_sessions[m.name], m.input, m.make(lim["batch"]), 2.0)

    with_grpc = not args.no_grpc and grpc_load.available()
    if not args.no_grpc and not with_grpc:
        print("gRPC points skipped: h2load not found (`apt-get install nghttp2-client`)", flush=True)

    def grpc_h2load(server: Server) -> Callable[..., dict[str, Any]]:
        def load(work: Path, port: int, body: Body, conc: int, seconds: float) -> dict[str, Any]:
            return grpc_load.h2load(work, server.grpc_port, body.data, f"Bearer {ADMIN_KEY}", conc, seconds)

        return load

    def point(server: Server, m: BenchModel, body: str, conc: int, label: str) -> dict[str, Any]:
        print(f"[{m.name}] {label} conc {conc} ...", flush=True)
        before = raw_now(m) if conc == 64 else None
        if body == "grpc_body":  # h2load on the gRPC port; the REST stats path still counts the model's calls
            s0 = _executions(server.port, m.result[body].path)
            p = measure(grpc_h2load(server), work, server, m.result[body], conc, args.duration, args.warmup)
            s1 = _executions(server.port, m.result[body].path)
            if s0 and s1 and s1[0] - s0[0] < p["requests"]:  # an RPC that failed still answers HTTP 200
                p["errors"] += p["requests"] - (s1[0] - s0[0])
        else:
            p = measure(load, work, server, m.result[body], conc, args.duration, args.warmup)
        if before is not None:
            p["raw_adjacent"] = (before + raw_now(m)) / 2
        return p

    with tempfile.TemporaryDirectory(prefix="aiaas-bench-") as tmp:
        work = Path(tmp)
        try:
            models = build_models(work, args.models.split(","))
            for m in models:
                print(f"[{m.name}] raw onnxruntime ...", flush=True)
                m.result["raw"] = raw_baseline(m, args.raw_seconds)
                m.result["batching"] = batching or {"max_queue_delay_ms": "default"}
                sess = _sessions(m.path, 1, 1)[0]
                m.result["expected"] = sess.run(None, {m.input: m.row})[0]
                m.result["expected_output"] = sess.get_outputs()[0].name
                data, headers = json_body(m)
                m.result["json_body"] = Body(f"/v2/models/{m.name}/infer", data, headers)
                data, headers = binary_body(m)
                m.result["binary_body"] = Body(f"/v2/models/{m.name}/infer", data, headers)
                m.result["grpc_body"] = Body(
                    f"/v2/models/{m.name}/infer", grpc_load.infer_body(m.name, m.input, m.datatype, m.row), {}
                )

            # instances: measure both layouts at conc 64, keep the faster per model
            if args.instances:
                for m in models:
                    m.result["layout"] = args.instances
            else:
                for layout in LAYOUTS:
                    server = start_aiaas(work, models, {m.name: layout for m in models}, layout, batching)
                    servers.append(server)
                    for m in models:
                        check_answer(m, server.port, m.result["json_body"], m.result["expected"])
                        p = point(server, m, "json_body", 64, f"aiaas {layout}")
                        m.result.setdefault("decision_points", {})[layout] = p
                    server.stop()
                for m in models:
                    rates = {k: p["samples_per_s"] for k, p in m.result["decision_points"].items()}
                    # compared as fractions of the raw figure measured around each (background load drifts)
                    ratios = {k: p["samples_per_s"] / p["raw_adjacent"] for k, p in m.result["decision_points"].items()}
                    chosen = max(ratios, key=lambda k: ratios[k])
                    m.result["decision"] = {"samples_per_s": rates, "chosen": chosen}
                    m.result["layout"] = chosen
            layouts = {m.name: m.result["layout"] for m in models}

            server = start_aiaas(work, models, layouts, "final", batching, grpc=with_grpc)
            servers.append(server)
            for m in models:
                check_answer(m, server.port, m.result["json_body"], m.result["expected"])
                check_answer(m, server.port, m.result["binary_body"], m.result["expected"])
                points = []
                for c in concs:
                    if c == 64 and "decision_points" in m.result:
                        points.append(m.result["decision_points"][m.result["layout"]])
                    else:
                        points.append(point(server, m, "json_body", c, "aiaas"))
                m.result["aiaas"] = points
                if not args.no_binary:
                    binary_concs = sorted({1, 64} & set(concs)) if with_grpc else [64]
                    m.result["binary"] = [point(server, m, "binary_body", c, "aiaas binary") for c in binary_concs]
                if with_grpc:
                    grpc_load.check_answer(
                        server.grpc_port,
                        m.result["grpc_body"].data,
                        f"Bearer {ADMIN_KEY}",
                        m.result["expected_output"],
                        m.result["expected"],
                    )
                    m.result["grpc"] = [
                        point(server, m, "grpc_body", c, "aiaas gRPC") for c in sorted({1, 64} & set(concs))
                    ]
            server.stop()

            if not args.no_gov_off:  # what the governance layer (tenants, keys, metering) costs per request
                server = start_aiaas(work, models, layouts, "gov-off", batching, governance="off")
                servers.append(server)
                for m in models:
                    m.result["gov_off"] = [point(server, m, "json_body", 64, "aiaas governance=off")]
                server.stop()

            if args.fast_path_compare:  # the fast path against plain routing, alternated so drift hits both
                fast_path_compare(work, models, layouts, batching, concs, load, args, servers)

            if not args.no_naive:
                naive = start_naive(work, models, threads=2)
                servers.append(naive)
                for m in models:
                    check_answer(m, naive.port, m.result["json_body"], m.result["expected"])
                    m.result["naive"] = [point(naive, m, "json_body", c, "naive FastAPI") for c in concs]
                naive.stop()
        finally:
            for s in servers:
                s.stop()

    print()
    for m in models:
        m.result["targets"] = targets(m)
        print("\n".join(report(m)))
        print()
    busiest = max(
        (
            p["other_cores"]
            for m in models
            for k in ("aiaas", "binary", "gov_off", "naive")
            for p in m.result.get(k, [])
        ),
        default=0.0,
    )
    if busiest > 0.25:
        print(
            f"WARNING: other processes kept up to {busiest:.2f} cores busy during the points: the figures are "
            "not reliable, rerun on a quiet machine."
        )
    print(
        f"total {time.monotonic() - t_start:.0f} s. naive app: bench/naive_app.py (2 intra-op threads, thread "
        "pool, no auth). us cpu/req: server CPU per request, model compute included. other load: cores busy "
        "outside the server and wrk during the point (> 0.2: another process interfered; rerun)."
    )

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "cores": os.cpu_count(),
        "load_generator": loadgen,
        "duration_s": args.duration,
        "models": {
            m.name: {
                k: v
                for k, v in m.result.items()
                if k not in ("expected", "expected_output", "json_body", "binary_body", "grpc_body")
            }
            | {"title": m.title}
            for m in models
        },
    }
    RESULTS.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    print(f"results: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
