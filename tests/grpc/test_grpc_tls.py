"""TLS on both transports of a real ``aiaas serve`` process: ``tritonclient.http`` (HTTPS) and
``tritonclient.grpc`` with the self-signed pair of docs/grpc.md, plain-text clients refused, and mutual TLS
(a client without a certificate signed by AIAAS_SSL_CA_CERTS is refused on both ports)."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th
from conftest import write_models
from tlskit import pki, self_signed
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pbg
from tritonclient.utils import InferenceServerException
from v2kit import ADMIN_KEY, ServerProcess, free_port

pytestmark = pytest.mark.slow

H = {"authorization": f"Bearer {ADMIN_KEY}"}
X = np.ones((1, 4), np.float32)


@contextlib.contextmanager
def tls_server(
    home: Path, cert: Path, key: Path, ca: Path | None = None, client: tuple[Path, Path] | None = None
) -> Iterator[tuple[ServerProcess, int]]:
    grpc_port = free_port()
    env = {
        "AIAAS_GRPC_PORT": str(grpc_port),
        "AIAAS_SSL_CERTFILE": str(cert),
        "AIAAS_SSL_KEYFILE": str(key),
        "AIAAS_GOVERNANCE": "off",
    }
    if ca is not None:
        env["AIAAS_SSL_CA_CERTS"] = str(ca)
    server = ServerProcess(home, ADMIN_KEY, **env)
    try:
        deadline = time.monotonic() + 90
        while True:  # ready over HTTPS (the plain-HTTP readiness probe of ServerProcess cannot talk to it)
            if server.proc.poll() is not None:
                raise RuntimeError(server.output())
            with contextlib.suppress(httpx.HTTPError):
                verify = ssl.create_default_context(cafile=str(ca or cert))
                if client is not None:
                    verify.load_cert_chain(str(client[0]), str(client[1]))
                if (
                    httpx.get(f"https://127.0.0.1:{server.port}/v2/health/ready", verify=verify, timeout=2).status_code
                    == 200
                ):
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(server.output())
            time.sleep(0.2)
        yield server, grpc_port
    finally:
        server.stop()


def test_tls_both_transports_and_plain_text_refused(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path / "certs")
    write_models(tmp_path / "home", tmp_path / "src", llm=False)
    with tls_server(tmp_path / "home", cert, key) as (server, grpc_port):
        # HTTPS with tritonclient.http
        import gevent.ssl

        http = th.InferenceServerClient(
            f"127.0.0.1:{server.port}",
            ssl=True,
            ssl_options={"ca_certs": str(cert)},
            ssl_context_factory=gevent.ssl.create_default_context,
        )
        inp = th.InferInput("x", [1, 4], "FP32")
        inp.set_data_from_numpy(X)
        assert http.infer("mlp", [inp], headers={"Authorization": f"Bearer {ADMIN_KEY}"}).as_numpy("y").shape == (1, 3)
        http.close()
        # gRPC over TLS with tritonclient.grpc
        with tg.InferenceServerClient(f"127.0.0.1:{grpc_port}", ssl=True, root_certificates=str(cert)) as c:
            ginp = tg.InferInput("x", [1, 4], "FP32")
            ginp.set_data_from_numpy(X)
            assert c.infer("mlp", [ginp], headers=H).as_numpy("y").shape == (1, 3)
        # plain text is refused on both ports
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/v2/health/ready", timeout=5)
        with tg.InferenceServerClient(f"127.0.0.1:{grpc_port}") as plain:
            with pytest.raises(InferenceServerException) as e:
                plain.is_server_live(client_timeout=5)
            assert e.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


def test_mutual_tls(tmp_path: Path) -> None:
    p = pki(tmp_path / "pki")
    write_models(tmp_path / "home", tmp_path / "src", llm=False)
    with tls_server(tmp_path / "home", p.server_cert, p.server_key, p.ca, (p.client_cert, p.client_key)) as (
        server,
        grpc_port,
    ):
        target = f"127.0.0.1:{grpc_port}"
        with_cert = grpc.ssl_channel_credentials(
            p.ca.read_bytes(), p.client_key.read_bytes(), p.client_cert.read_bytes()
        )
        with grpc.secure_channel(target, with_cert) as ch:
            assert pbg.GRPCInferenceServiceStub(ch).ServerLive(pb.ServerLiveRequest(), timeout=10).live
        with grpc.secure_channel(target, grpc.ssl_channel_credentials(p.ca.read_bytes())) as ch:
            with pytest.raises(grpc.RpcError) as e:
                pbg.GRPCInferenceServiceStub(ch).ServerLive(pb.ServerLiveRequest(), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):  # HTTPS without a client certificate
            httpx.get(
                f"https://127.0.0.1:{server.port}/v2/health/ready",
                timeout=5,
                verify=ssl.create_default_context(cafile=str(p.ca)),
            )
        tls = ssl.create_default_context(cafile=str(p.ca))
        tls.load_cert_chain(str(p.client_cert), str(p.client_key))
        assert httpx.get(f"https://127.0.0.1:{server.port}/v2/health/ready", timeout=5, verify=tls).status_code == 200


def test_bad_tls_settings_fail_at_start(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path / "certs")
    server = ServerProcess(tmp_path / "home", ADMIN_KEY, AIAAS_SSL_CERTFILE=str(cert))  # no key
    try:
        assert server.proc.wait(60) == 2
        assert "AIAAS_SSL_KEYFILE" in server.output()
    finally:
        server.stop()
