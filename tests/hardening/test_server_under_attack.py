"""A real ``aiaas serve`` under hostile requests: it stays live, answers each with the right status, and its
resident memory stays within a stated bound of its baseline (peak RSS, ``VmHWM``, reset before each class)."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import build_models
from security.kit import ROOT, served

MB = 1 << 20
MAX_REQUEST = 16 * MB  # V2 infer bodies (the worst JSON parse the limits allow)
MAX_UPLOAD = 32 * MB
SERVER_ENV = {
    "AIAAS_MAX_REQUEST_BYTES": str(MAX_REQUEST),
    "AIAAS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
    "AIAAS_MAX_CONTROL_REQUEST_BYTES": str(MB),
}
# what each class of attack may add to the server's baseline RSS
REFUSED_EARLY_MB = 60  # refused before anything is allocated: a few buffers at most
# JSON -> Python objects -> numpy: orjson builds a float object per number (~32 bytes for ~5 bytes of text)
BIG_PARSE_MB = 12 * MAX_REQUEST // MB


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1]) // 1024  # MiB
    return out


def _reset_peak(pid: int) -> None:
    # resets VmHWM to the current RSS (Linux >= 4.0); where it cannot, the peak covers the process's whole life
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    home = tmp_path_factory.mktemp("attack") / "home"
    build_models(home)
    with served(home, home.parent / "server.log", **SERVER_ENV) as (url, proc):
        x = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
        for _ in range(20):  # warm up: the first requests load lazily imported code
            assert httpx.post(f"{url}/v2/models/mlp/infer", json=x, headers=ROOT).status_code == 200
        assert httpx.post(f"{url}/v1/tenants", json={"name": "acme"}, headers=ROOT).status_code == 201
        yield url, proc.pid


class Peak:
    """The server's peak RSS over a block, against its RSS when the block began."""

    def __init__(self, pid: int, what: str, bound_mb: int) -> None:
        self.pid, self.what, self.bound = pid, what, bound_mb

    def __enter__(self) -> Peak:
        _reset_peak(self.pid)
        self.base = _status(self.pid)["VmRSS"]
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:
            return
        peak = _status(self.pid)["VmHWM"]
        print(
            f"\n[rss] {self.what}: baseline {self.base} MiB, peak {peak} MiB (+{peak - self.base}, bound +{self.bound})"
        )
        assert peak - self.base <= self.bound, f"{self.what}: peak RSS {peak} MiB, baseline {self.base} MiB"


def _live(url: str) -> None:
    assert httpx.get(f"{url}/v2/health/live", timeout=10).status_code == 200


def _raw_status(url: str, request: str) -> int:
    """The status of a hand-written request (httpx will not send a body shorter than its Content-Length)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(request.encode())
        reply = s.recv(65536)
    return int(reply.split(b" ", 2)[1])


def _chunks(total: int, size: int = MB) -> Iterator[bytes]:
    block = b"[" * size
    for _ in range(total // size):
        yield block


def test_huge_bodies_without_a_key_are_refused_while_read(server: tuple[str, int]) -> None:
    url, pid = server
    with Peak(pid, "300 MB bodies without a key to /v1 routes", REFUSED_EARLY_MB):
        for path in ("/v1/tenants", "/v1/keys", "/v1/chat/completions", "/v1/optimizations"):
            # declared: refused from the header, nothing read
            assert _raw_status(url, f"POST {path} HTTP/1.1\r\nContent-Length: {300 * MB}\r\n\r\n{{}}") == 413
            # chunked, no length: refused once the limit is crossed; the server may close while we still send
            try:
                r = httpx.post(
                    f"{url}{path}", content=_chunks(300 * MB), headers={"Content-Type": "application/json"}, timeout=60
                )
                assert r.status_code == 413, r.text
            except httpx.TransportError:
                pass
            _live(url)


def test_declared_sizes_cost_nothing(server: tuple[str, int]) -> None:
    url, pid = server
    with Peak(pid, "~100-byte V2 requests declaring 2^26 BYTES elements", REFUSED_EARLY_MB):
        for model in ("mlp", "no-such-model"):
            head = json.dumps(
                {
                    "inputs": [
                        {"name": "x", "shape": [1, 1 << 26], "datatype": "BYTES", "parameters": {"binary_data_size": 4}}
                    ]
                }
            ).encode()
            headers = {**ROOT, "Inference-Header-Content-Length": str(len(head))}
            for _ in range(20):
                r = httpx.post(f"{url}/v2/models/{model}/infer", content=head + struct.pack("<I", 0), headers=headers)
                assert r.status_code == 400 and "holds at most 1" in r.json()["error"]
            doc = {"inputs": [{"name": "x", "shape": [1 << 13, 1 << 13], "datatype": "BYTES", "data": ["a"]}]}
            r = httpx.post(f"{url}/v2/models/{model}/infer", json=doc, headers=ROOT)
            assert r.status_code == 400
        _live(url)


def _npz(shape: tuple[int, ...], data: bytes) -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z, z.open("x.npy", "w", force_zip64=True) as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
        zeros = b"\0" * (4 * MB)
        for _ in range(len(data) // len(zeros)):
            f.write(zeros)
        f.write(data[: len(data) % len(zeros)])
    return buf.getvalue()


def test_npz_bombs_are_refused_before_inflating(server: tuple[str, int]) -> None:
    url, pid = server
    bomb = _npz((64 * MB,), b"\0" * (256 * MB))  # ~250 KB that inflates to 256 MB (8x the upload limit)
    liar = _npz((1 << 40,), b"\0" * 64)  # claims 4 TiB
    with Peak(pid, "NPZ bombs (256 MB inflated, 4 TiB declared)", REFUSED_EARLY_MB):
        for name, content in (("bomb.npz", bomb), ("liar.npz", liar)):
            r = httpx.post(
                f"{url}/v1/files",
                files={"file": (name, content)},
                data={"purpose": "training"},
                headers=ROOT,
                timeout=60,
            )
            assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]["message"], r.text
        _live(url)


def _big_json(size: int) -> bytes:
    """A V2 request of about ``size`` bytes: four FP32 inputs of numbers (decoded one after another)."""
    per = (size - 1024) // 4
    n = per // len("0.123456,")
    inputs = [
        f'{{"name": "x{i}", "shape": [{n}], "datatype": "FP32", "data": [' + ",".join(["0.123456"] * n) + "]}"
        for i in range(4)
    ]
    return ('{"inputs": [' + ",".join(inputs) + "]}").encode()


def test_liveness_is_answered_while_the_biggest_request_is_parsed(server: tuple[str, int]) -> None:
    url, pid = server
    body = _big_json(MAX_REQUEST - 4096)
    host, port = url.removeprefix("http://").split(":")
    answered: list[float] = []
    latency: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                if c.get(f"{url}/v2/health/live").status_code == 200:
                    answered.append(time.monotonic())
                    latency.append(answered[-1] - t0)
                time.sleep(0.002)

    what = f"a {len(body) // MB} MB JSON infer request (the limit is {MAX_REQUEST // MB} MB)"
    with Peak(pid, what, BIG_PARSE_MB), socket.create_connection((host, int(port))) as s:
        s.settimeout(120)
        head = f"POST /v2/models/mlp/infer HTTP/1.1\r\nHost: {host}\r\nAuthorization: {ROOT['Authorization']}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        s.sendall(head.encode() + body)
        sent = time.monotonic()
        prober = threading.Thread(target=probe)
        prober.start()
        try:
            reply = s.recv(65536)
            while b"\r\n\r\n" not in reply:
                reply += s.recv(65536)
            done = time.monotonic()
        finally:
            stop.set()
            prober.join()
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]  # four unknown inputs for mlp: decoded, then refused
    during = [t for t in answered if sent < t < done]
    worst = max(latency, default=0.0) * 1000
    print(
        f"\n[live] {len(during)} liveness answers while the {len(body) // MB} MB request was in flight "
        f"({done - sent:.2f} s); "
        f"slowest liveness answer {worst:.0f} ms"
    )
    assert during, "no liveness answer while the big request was being parsed"
    _live(url)
