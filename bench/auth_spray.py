"""Key spray: what a stream of random API keys costs the server, against one wrong key repeated.

Method
------
Real servers (``aiaas serve``, ``AIAAS_CATALOG=none``, governance on SQLite) with the tiny model of
``bench/governance_http.py``. One client sends V2 infer requests back to back over one keep-alive connection
for ``--seconds`` per phase, each phase on its own server (the per-address brake remembers a client):

* **one wrong key**: the same well-formed but unknown key every time (looked up once, then the negative
  cache answers; after ``AIAAS_AUTH_FAILURES_PER_MINUTE`` failures the address gets 429);
* **random keys**: a new random well-formed key every request, with the default brake (60 per minute);
* **random keys, no brake** (``AIAAS_AUTH_FAILURES_PER_MINUTE=0``): only the negative cache, so every
  request costs a database lookup -- the cost the brake removes.

The three servers run at once and the phases take turns in ``--rounds`` rounds, so drift in machine load hits
them alike. Reported per phase: requests/s, server CPU per request (user + sys from /proc: what the request
cost the server, less noisy than throughput on a shared machine) and the statuses seen. Target: a spray costs
about what one wrong key costs -- server CPU per request of random keys <= 1.25 x that of one wrong key.

    nice .venv/bin/python bench/auth_spray.py [--seconds 10] [--rounds 10]
"""

from __future__ import annotations

import argparse
import http.client
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from governance_http import BODY, MODEL, Server, build_model, make_home

TARGET = 1.25  # a random key may cost the server at most this much more CPU than a repeated wrong key


def random_key() -> str:
    return f"aiaas-{secrets.token_hex(6)}-{secrets.token_urlsafe(32)}"


@dataclass
class Phase:
    label: str
    keys: str  # "one" | "random"
    server: Server
    wrong: str = field(default_factory=random_key)
    n: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    def run(self, seconds: float, record: bool = True) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=30)
        headers = {"Content-Type": "application/json"}
        cpu0, t0 = self.server.cpu_s(), time.monotonic()
        n = 0
        while time.monotonic() - t0 < seconds:
            headers["Authorization"] = f"Bearer {self.wrong if self.keys == 'one' else random_key()}"
            conn.request("POST", f"/v2/models/{MODEL}/infer", body=BODY, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if record:
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
            n += 1
        conn.close()
        if record:
            self.n += n
            self.seconds += time.monotonic() - t0
            self.cpu += self.server.cpu_s() - cpu0

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.n * 1e6


def main(seconds: float, rounds: int) -> int:
    specs = [
        ("one wrong key", "one", {}),
        ("random keys", "random", {}),
        ("random keys, no brake", "random", {"AIAAS_AUTH_FAILURES_PER_MINUTE": "0"}),
    ]
    with tempfile.TemporaryDirectory(prefix="aiaas-spray-") as tmp:
        onnx_file = build_model(Path(tmp) / "src" / "tiny.onnx")
        phases: list[Phase] = []
        try:
            for i, (label, keys, env) in enumerate(specs):
                server = Server(f"s{i}", Path(tmp) / f"s{i}" / "home", "db", env=env)
                make_home(server.home, onnx_file)
                server.start()
                phases.append(Phase(label, keys, server))
            for phase in phases:
                phase.run(1.0, record=False)  # warm-up (also spends the brake's burst, as a real spray would)
            for i in range(rounds):  # interleaved, so drift in machine load hits every phase alike
                for phase in phases if i % 2 == 0 else phases[::-1]:
                    phase.run(seconds / rounds)
        finally:
            for phase in phases:
                phase.server.stop()
    print(
        f"key spray: V2 infer with invalid keys, one keep-alive connection, {seconds:.0f} s per phase "
        f"in {rounds} interleaved rounds"
    )
    print(f"{'phase':24} {'req/s':>8} {'server CPU us/req':>18}  statuses")
    for p in phases:
        print(f"{p.label:24} {p.rate:8.0f} {p.cpu_us:18.0f}  {dict(sorted(p.statuses.items()))}")
    one, spray, bare = phases
    cost = spray.cpu_us / one.cpu_us
    verdict = "PASS" if cost <= TARGET else "MISS"
    print(
        f"server CPU per request, random keys / one wrong key: {cost:.2f} (target <= {TARGET}: {verdict}); "
        f"without the brake: {bare.cpu_us / one.cpu_us:.2f}; req/s ratio {spray.rate / one.rate:.2f} "
        f"(without the brake {bare.rate / one.rate:.2f})"
    )
    return 0 if cost <= TARGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds the seconds are split into")
    args = parser.parse_args()
    raise SystemExit(main(args.seconds, args.rounds))
