"""A real server's life: graceful SIGTERM with requests in flight, the first-start admin key, and memory that
goes back down after models are unloaded."""

from __future__ import annotations

import signal
import stat
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest
from v2kit import ADMIN_KEY, big_mlp, json_input, running_server, start_server, write_sleepy_model

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx

pytestmark = pytest.mark.slow

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll until ``predicate()`` holds; the timeout only guards against hanging, it is not a speed claim."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- graceful shutdown ----------------------------------------------------------------------------------
def test_sigterm_finishes_in_flight_requests_refuses_new_ones_and_exits_0(tmp_path: Path) -> None:
    home, markers, gate = tmp_path / "home", tmp_path / "started", tmp_path / "gate"
    write_sleepy_model(home / "models", markers, gate=gate, instances=4)
    server = start_server(home, ADMIN_KEY, AIAAS_GRACEFUL_SHUTDOWN_S="60")
    try:
        results: list[object] = []
        lock = threading.Lock()

        def call(i: int) -> None:
            doc = {"id": str(i), "inputs": [json_input("x", np.full(3, i, np.float32))]}
            try:
                r: object = httpx.post(server.url + "/v2/models/sleepy/infer", json=doc, headers=AUTH, timeout=120)
            except httpx.HTTPError as e:
                r = e
            with lock:
                results.append(r)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(list(markers.iterdir())) == 4, what="4 requests running in the model")
        server.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:
            try:
                httpx.get(server.url + "/v2/health/live", timeout=5)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
                # refused, or accepted by the closing listener and dropped without an answer: not served
                return True
            return False

        wait_for(refused, what="new connections to be refused")
        # the model holds every request until the gate opens, so all four are still in flight here
        assert all(t.is_alive() for t in threads) and not results
        assert server.proc.poll() is None, "the server must wait for in-flight requests"
        gate.touch()
        for t in threads:
            t.join(120)
        assert server.proc.wait(60) == 0, server.output()
    finally:
        gate.touch()
        server.stop()

    assert len(results) == 4
    for r in results:
        assert isinstance(r, httpx.Response), f"in-flight request failed: {r!r}"
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["outputs"][0]["data"] == [float(doc["id"]) + 1] * 3


# -- the admin key --------------------------------------------------------------------------------------
def test_first_start_writes_and_prints_the_admin_key_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_server(home, None) as first:
        key_file = home / "admin.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) >= 32
        assert httpx.get(first.url + "/v2", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
        assert httpx.get(first.url + "/v2", headers=AUTH, timeout=10).status_code == 401
    assert first.proc.returncode == 0
    first_output = first.output()
    assert first_output.count(key) == 1, first_output
    assert "shown once" in first_output

    with running_server(home, None) as second:
        assert httpx.get(second.url + "/v2", headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
    second_output = second.output()
    assert key not in second_output, second_output
    assert str(key_file) in second_output  # says where the key is, not what it is
    assert key_file.read_text().strip() == key


# -- memory -------------------------------------------------------------------------------------------
def test_rss_returns_after_load_unload_cycles(tmp_path: Path) -> None:
    """~50 MB of weights unloaded and reloaded 6 times: the server must give the memory back each time (it
    calls malloc_trim after an unload), so RSS after the last cycle is near RSS after the first."""
    home = tmp_path / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, big_mlp(tmp_path / "src" / "big.onnx"), "big", max_batch_size=4)
    x = {"inputs": [json_input("x", np.ones((1, 1024), np.float32))]}
    mb = 1024 * 1024
    with running_server(home, ADMIN_KEY) as server:
        proc = psutil.Process(server.pid)

        def cycle() -> tuple[float, float]:
            """Unload, measure; load, infer, measure."""
            assert (
                httpx.post(server.url + "/v2/repository/models/big/unload", headers=AUTH, timeout=60).status_code == 200
            )
            unloaded = proc.memory_info().rss / mb
            assert (
                httpx.post(server.url + "/v2/repository/models/big/load", headers=AUTH, timeout=60).status_code == 200
            )
            r = httpx.post(server.url + "/v2/models/big/infer", json=x, headers=AUTH, timeout=60)
            assert r.status_code == 200, r.text
            return unloaded, proc.memory_info().rss / mb

        # The baseline is the first full cycle, not the start: memory freed at the first unload was partly
        # left over from startup, so the first reload needs fresh pages -- that is not a leak.
        # Five more cycles: a leak of the weights (~50 MB a cycle) would add ~250 MB; the bounds leave room for
        # what a loaded server's RSS varies by on a busy host without a leak (+68 MB loaded, seen once in CI).
        first_unloaded, first_loaded = cycle()
        assert first_loaded - first_unloaded > 25, "loading ~50 MB of weights should raise RSS"
        for _ in range(5):
            unloaded, loaded = cycle()
        assert unloaded < first_unloaded + 60, (first_unloaded, unloaded)
        assert loaded < first_loaded + 100, (first_loaded, loaded)
