"""Soak: a keyed, limited tenant at ~80% of the server's peak for a bounded time; does anything leak?

Method
------
One real server (``aiaas serve``, uvicorn, ``AIAAS_CATALOG=none``, governance on SQLite) serves the tiny ONNX
model of ``bench/governance_http.py`` (4 -> 3, FP32; nothing is downloaded). A ``user`` key of tenant ``soak``
has requests/minute, units/minute and concurrency limits on the key and on the tenant, set above the load so
they are checked on every request without refusing it; the model is priced, so budgets are reserved too.

1. **Peak**: ``--connections`` client threads send V2 infer requests back to back over keep-alive connections
   for ``--peak-s`` seconds; peak = requests/s.
2. **Soak**: the same threads send at ``--load`` x peak (default 0.8), paced open-loop (each thread on its
   own schedule), for ``--duration`` seconds (default 600). Every ``--sample-s`` seconds the server's RSS,
   thread count and open file descriptors are read from /proc.

Reported: requests and errors (any non-2xx, and transport errors), the achieved rate, RSS at the end of the
warm-up (the first fifth of the soak) and at the end -- growth target < 5% --, threads and fds min/max after
the warm-up (target: flat), the server's usage rows against the 2xx responses (target: equal), and how long
``GET /v1/usage`` takes over the rows the soak wrote. Exit status 1 when a target is missed.

The client threads share the 2 cores with the server, so "peak" is the peak of this setup, not of the server
alone; compare figures within one run. Run it nice'd on a shared machine:

    nice .venv/bin/python bench/soak.py [--duration 600] [--connections 8] [--load 0.8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from governance_http import ADMIN_KEY, BODY, MODEL, Server, build_model, governed_key, make_home

RSS_TARGET = 0.05
PATH = f"/v2/models/{MODEL}/infer"


@dataclass
class Counts:
    ok: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ok: int, errors: int, statuses: dict[int, int]) -> None:
        with self.lock:
            self.ok += ok
            self.errors += errors
            for k, v in statuses.items():
                self.statuses[k] = self.statuses.get(k, 0) + v


def drive(server: Server, api_key: str, seconds: float, rate: float | None, counts: Counts) -> None:
    """One client thread: back to back (rate None) or paced at ``rate`` requests/s, for ``seconds``."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    ok = errors = 0
    statuses: dict[int, int] = {}
    start = time.monotonic()
    end = start + seconds
    interval = 1.0 / rate if rate else 0.0
    due = start
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if rate:
            if due > now:
                time.sleep(due - now)
            due = max(due + interval, time.monotonic() - 1.0)  # never a catch-up burst of more than 1 s
        try:
            conn.request("POST", PATH, body=BODY, headers=headers)
            resp = conn.getresponse()
            resp.read()
            statuses[resp.status] = statuses.get(resp.status, 0) + 1
            if 200 <= resp.status < 300:
                ok += 1
            else:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            statuses[-1] = statuses.get(-1, 0) + 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.close()
    counts.add(ok, errors, statuses)


def run_threads(
    server: Server, api_key: str, n: int, seconds: float, rate: float | None, counts: Counts
) -> list[threading.Thread]:
    per_thread = rate / n if rate else None
    threads = [threading.Thread(target=drive, args=(server, api_key, seconds, per_thread, counts)) for _ in range(n)]
    for t in threads:
        t.start()
    return threads


def proc_stats(pid: int) -> tuple[int, int, int]:
    """(RSS bytes, threads, open fds) of a process."""
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


def usage_total(server: Server) -> tuple[int, int, float]:
    """(requests, errors) the server metered for tenant soak, and how long GET /v1/usage took (s)."""
    t0 = time.perf_counter()
    status, doc = server.request(
        "GET", "/v1/usage?tenant=soak&group_by=model", None, {"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    took = time.perf_counter() - t0
    if status != 200:
        raise RuntimeError(f"GET /v1/usage: {status} {doc}")
    return sum(r["requests"] for r in doc["data"]), sum(r["errors"] for r in doc["data"]), took


def main(duration: float, peak_s: float, connections: int, load: float, sample_s: float) -> int:
    with tempfile.TemporaryDirectory(prefix="aiaas-soak-") as tmp:
        onnx_file = build_model(Path(tmp) / "src" / "tiny.onnx")
        server = Server("soak", Path(tmp) / "soak" / "home", "db")
        make_home(server.home, onnx_file)
        server.start()
        try:
            return soak(server, duration, peak_s, connections, load, sample_s)
        finally:
            server.stop()


def soak(server: Server, duration: float, peak_s: float, connections: int, load: float, sample_s: float) -> int:
    assert server.proc is not None
    pid = server.proc.pid
    api_key = governed_key(server, "soak", concurrency=256)
    peak_counts = Counts()
    for t in run_threads(server, api_key, connections, peak_s, None, peak_counts):
        t.join()
    peak = (peak_counts.ok + peak_counts.errors) / peak_s
    rate = load * peak
    print(
        f"peak: {peak:.0f} req/s over {peak_s:.0f} s with {connections} connections "
        f"({peak_counts.errors} errors); soak at {load:.0%} = {rate:.0f} req/s for {duration:.0f} s",
        flush=True,
    )

    counts = Counts()
    started = time.monotonic()
    threads = run_threads(server, api_key, connections, duration, rate, counts)
    samples: list[tuple[float, int, int, int]] = []
    while any(t.is_alive() for t in threads):
        time.sleep(min(sample_s, max(0.1, started + duration - time.monotonic())))
        elapsed = time.monotonic() - started
        if all(t.is_alive() for t in threads):  # under load only (the clients close their connections at the end)
            rss, nthreads, fds = proc_stats(pid)
            samples.append((elapsed, rss, nthreads, fds))
            print(
                f"  t={elapsed:6.0f}s  rss={rss / 2**20:7.1f} MiB  threads={nthreads:3d}  fds={fds:4d}",
                flush=True,
            )
    for t in threads:
        t.join()
    soak_s = time.monotonic() - started

    warm = duration / 5
    after = [s for s in samples if s[0] >= warm] or samples[-1:]
    rss_warm, rss_end = after[0][1], statistics.median(s[1] for s in after[-3:])
    growth = (rss_end - rss_warm) / rss_warm
    threads_range = (min(s[2] for s in after), max(s[2] for s in after))
    fds_range = (min(s[3] for s in after), max(s[3] for s in after))

    served = peak_counts.ok + counts.ok
    metered = errors_metered = -1
    took = 0.0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # usage is written every second
        metered, errors_metered, took = usage_total(server)
        if metered - errors_metered >= served:
            break
        time.sleep(0.5)

    total = counts.ok + counts.errors
    print(
        f"soak: {total} requests in {soak_s:.0f} s ({total / soak_s:.0f} req/s), errors {counts.errors} "
        f"(statuses {dict(sorted(counts.statuses.items()))})"
    )
    checks = {
        "errors == 0": counts.errors == 0 and peak_counts.errors == 0,
        f"RSS growth after warm-up < {RSS_TARGET:.0%}": growth < RSS_TARGET,
        "threads flat after warm-up": threads_range[1] - threads_range[0] <= 2,
        "fds flat after warm-up": fds_range[1] - fds_range[0] <= 4,
        "usage rows == 2xx responses": metered - errors_metered == served and errors_metered == 0,
    }
    print(
        f"RSS: {rss_warm / 2**20:.1f} MiB after warm-up ({warm:.0f} s) -> {rss_end / 2**20:.1f} MiB at the end "
        f"({growth:+.2%})"
    )
    print(f"threads after warm-up: {threads_range[0]}..{threads_range[1]}; fds: {fds_range[0]}..{fds_range[1]}")
    print(
        f"usage rows: {metered} ({errors_metered} errors) for {served} 2xx responses (peak + soak); "
        f"GET /v1/usage took {took * 1000:.0f} ms"
    )
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="soak seconds (default 600)")
    parser.add_argument("--peak-s", type=float, default=15.0, help="seconds of the peak measurement")
    parser.add_argument("--connections", type=int, default=8, help="client threads / keep-alive connections")
    parser.add_argument("--load", type=float, default=0.8, help="fraction of the peak to soak at")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between /proc samples")
    args = parser.parse_args()
    raise SystemExit(main(args.duration, args.peak_s, args.connections, args.load, args.sample_s))
