"""Key spray: what a stream of random API keys costs the server, against one wrong key repeated.

Method
------
Real servers (``aiaas serve``, ``AIAAS_CATALOG=none``, governance on SQLite) with the tiny model of
``bench/governance_http.py``. One client sends V2 infer requests back to back over one keep-alive connection
for ``--seconds`` per phase, each phase on a fresh server (the per-address brake remembers a client):

* **one wrong key**: the same well-formed but unknown key every time (looked up once, then the negative
  cache answers; after ``AIAAS_AUTH_FAILURES_PER_MINUTE`` failures the address gets 429);
* **random keys**: a new random well-formed key every request, with the default brake (60 per minute);
* **random keys, no brake** (``AIAAS_AUTH_FAILURES_PER_MINUTE=0``): only the negative cache, so every
  request costs a database lookup -- the cost the brake removes.

Reported per phase: requests/s, server CPU per request (from /proc) and the statuses seen. The target is that
a spray costs about what one wrong key costs: random/one-wrong-key throughput ratio >= 0.8.

    nice .venv/bin/python bench/auth_spray.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from governance_http import BODY, MODEL, Server, build_model, make_home  # noqa: E402

TARGET = 0.8


def random_key() -> str:
    return f"aiaas-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"


def phase(server: Server, seconds: float, keys: str) -> tuple[float, float, dict[int, int]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    wrong = random_key()
    statuses: dict[int, int] = {}
    cpu0, t0 = server.cpu_s(), time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        key = wrong if keys == "one" else random_key()
        conn.request("POST", f"/v2/models/{MODEL}/infer", body=BODY,
                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})  # fmt: skip
        resp = conn.getresponse()
        resp.read()
        statuses[resp.status] = statuses.get(resp.status, 0) + 1
        n += 1
    elapsed, cpu = time.monotonic() - t0, server.cpu_s() - cpu0
    conn.close()
    return n / elapsed, cpu / n * 1e6, statuses


def main(seconds: float) -> int:
    phases = [("one wrong key", "one", {}), ("random keys", "random", {}),
              ("random keys, no brake", "random", {"AIAAS_AUTH_FAILURES_PER_MINUTE": "0"})]  # fmt: skip
    results = {}
    with tempfile.TemporaryDirectory(prefix="aiaas-spray-") as tmp:
        onnx_file = build_model(Path(tmp) / "src" / "tiny.onnx")
        for i, (label, keys, env) in enumerate(phases):
            server = Server(f"s{i}", Path(tmp) / f"s{i}" / "home", "db", env=env)
            make_home(server.home, onnx_file)
            server.start()
            try:
                phase(server, 1.0, keys)  # warm-up (also spends the brake's burst, as a real spray would)
                results[label] = phase(server, seconds, keys)
            finally:
                server.stop()
    print(f"key spray: V2 infer with invalid keys, one keep-alive connection, {seconds:.0f} s per phase")
    print(f"{'phase':24} {'req/s':>8} {'CPU us/req':>11}  statuses")
    for label, (rate, cpu, statuses) in results.items():
        print(f"{label:24} {rate:8.0f} {cpu:11.0f}  {dict(sorted(statuses.items()))}")
    ratio = results["random keys"][0] / results["one wrong key"][0]
    unbraked = results["random keys, no brake"][0] / results["one wrong key"][0]
    print(f"random / one wrong key: {ratio:.2f} (target >= {TARGET}: {'PASS' if ratio >= TARGET else 'MISS'}); "
          f"without the brake: {unbraked:.2f}")  # fmt: skip
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per phase")
    raise SystemExit(main(parser.parse_args().seconds))
