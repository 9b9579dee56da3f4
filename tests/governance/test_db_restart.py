"""A real PostgreSQL restart under load, in a throwaway cluster this test starts (initdb + pg_ctl from the
installed binaries, as the ``postgres`` user when run as root; never the shared server): requests answer
200 or a clear 503 while it is down -- never a 500 --, the server reconnects by itself, and no usage row of a
served request is lost."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from security.kit import ROOT, X, make_world

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
pytestmark = pytest.mark.skipif(not BIN, reason="no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[tuple[str, list[str]]]:
    """A fresh cluster on a free loopback port: yields (URL, the pg_ctl command line without its action)."""
    bindir = Path(BIN[-1]).parent
    root = Path(tempfile.mkdtemp(prefix="aiaas-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    ctl = _as_postgres(
        [
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
        ]
    )
    subprocess.run([*ctl, "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", ctl
    finally:
        subprocess.run([*ctl[:-2], "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_mid_load(tmp_path: Path) -> None:
    settings = {"key_cache_ttl_s": 0.2}  # cached keys expire during the outage: they must be served stale
    with throwaway_cluster() as (url, ctl), make_world(tmp_path / "home", tmp_path / "src", url, **settings) as w:
        user = w.key("acme", limits={"requests_per_minute": 100_000})
        statuses: dict[str, list[int]] = {"infer": [], "usage": []}
        restarted = threading.Event()

        def restart() -> None:
            time.sleep(0.5)
            subprocess.run([*ctl, "-m", "fast", "restart"], check=True, capture_output=True)
            restarted.set()

        thread = threading.Thread(target=restart)
        thread.start()
        unavailable = 0
        after = 0
        while after < 30:
            r = w.client.post("/v2/models/pub/infer", json=X, headers=user.headers)
            statuses["infer"].append(r.status_code)
            u = w.client.get("/v1/usage", headers=ROOT)  # needs the database on every call
            statuses["usage"].append(u.status_code)
            for resp in (r, u):
                if resp.status_code == 503:
                    unavailable += 1
                    assert int(resp.headers["retry-after"]) >= 1
                    assert "database is unavailable" in resp.text
            if restarted.is_set():
                after += 1
        thread.join()
        every = statuses["infer"] + statuses["usage"]
        assert set(every) <= {200, 503}, every  # never a 500
        # after the restart the server works again by itself: the last requests all succeeded
        assert statuses["infer"][-10:] == [200] * 10 and statuses["usage"][-10:] == [200] * 10
        # a key made after the restart (a fresh lookup through the reconnected pool) works too
        fresh = w.key("globex")
        assert w.client.post("/v2/models/pub/infer", json=X, headers=fresh.headers).status_code == 200
        # every served inference is metered: rows buffered during the outage were written after it
        assert w.usage_rows() == statuses["infer"].count(200) + 1
        print(f"restart: {len(statuses['infer'])} rounds, {unavailable} answers were 503 while it was down")

        # down for longer: readiness names it, known keys keep working, what needs the database is a clear 503
        subprocess.run([*ctl, "-m", "fast", "stop"], check=True, capture_output=True)
        time.sleep(0.3)  # past key_cache_ttl_s
        ready = w.client.get("/v2/health/ready")
        assert ready.status_code == 200 and ready.json()["degraded"] == ["database"], ready.text
        assert w.client.post("/v2/models/pub/infer", json=X, headers=user.headers).status_code == 200
        for r in (
            w.client.post("/v2/models/pub/infer", json=X, headers={"Authorization": "Bearer aiaas-0123456789ab-x"}),
            w.client.get("/v1/keys", headers=ROOT),
        ):
            assert r.status_code == 503 and "database is unavailable" in r.text, r.text
        subprocess.run([*ctl, "start"], check=True, capture_output=True)
        assert w.client.get("/v1/keys", headers=ROOT).status_code == 200
        time.sleep(1.1)  # the readiness probe result is cached for a second
        assert w.client.get("/v2/health/ready").json() == {"ready": True}
        assert w.usage_rows() == statuses["infer"].count(200) + 2
