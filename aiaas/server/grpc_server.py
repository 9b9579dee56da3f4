"""The gRPC server: ``grpc.aio`` servers on the app's event loop, started and stopped by the app's lifespan.

They serve ``inference.GRPCInferenceService`` (``aiaas.api.grpc_v2``), ``grpc.health.v1.Health`` (SERVING while
the app is ready, NOT_SERVING from the start of shutdown) and server reflection, so grpcurl, grpc_cli and load
balancers work without the .proto files. Shutdown drains: health turns NOT_SERVING, open streams stop taking
requests and finish the ones in flight, then the servers stop with ``graceful_shutdown_s`` of grace.

Several listeners: a ``grpc.aio`` server accepts one new call per trip through its main loop, so under many
connections calls queue in gRPC's core instead of reaching the batcher together (a small model then runs batches
of ~1). ``grpc_listeners`` servers share the port (SO_REUSEPORT: the kernel spreads connections over them) and
one servicer; the port is checked free first, so another process's listener is an error, not a silent share.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiaas.api.grpc_v2 import SERVICE_NAME, InferenceServicer, add_to_server
from aiaas.server.tls import TLS

log = logging.getLogger("aiaas.grpc")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _check_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart is not blocked by TIME_WAIT; a listener is
        try:
            s.bind((host.strip("[]"), port))
        except OSError as e:
            why = "it is in use" if e.errno == errno.EADDRINUSE else e.strerror
            raise RuntimeError(f"cannot bind gRPC on {_address(host, port)}: {why}") from None


class GrpcServer:
    def __init__(self, services: Any, tls: TLS | None) -> None:
        settings = services.settings
        self.settings = settings
        limit = settings.grpc_max_message_bytes or settings.max_request_bytes + (1 << 20)
        self.servicer = InferenceServicer(services)
        self.health = health.aio.HealthServicer()
        names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME)
        _check_free(settings.host, settings.grpc_port)
        self.servers: list[grpc.aio.Server] = []
        for _ in range(max(1, settings.grpc_listeners)):
            server = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", limit),
                    ("grpc.max_send_message_length", -1),
                    ("grpc.so_reuseport", 1),
                ]
            )
            add_to_server(self.servicer, server)
            health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
            reflection.enable_server_reflection(names, server)
            address = _address(settings.host, settings.grpc_port)
            try:
                port = (
                    server.add_secure_port(address, tls.grpc_credentials())
                    if tls
                    else server.add_insecure_port(address)
                )
            except RuntimeError as e:
                raise RuntimeError(f"cannot bind gRPC on {address}: {e}") from None
            self.servers.append(server)
        self.port = port
        self.scheme = "grpcs" if tls is not None else "grpc"

    async def start(self) -> None:
        for server in self.servers:
            await server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "gRPC (KServe V2) on %s://%s (%d listeners)",
            self.scheme,
            _address(self.settings.host, self.port),
            len(self.servers),
        )

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        self.servicer.draining.set()
        await asyncio.gather(*(server.stop(grace) for server in self.servers))
