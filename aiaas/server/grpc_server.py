"""The gRPC server: a ``grpc.aio`` server on the app's event loop, started and stopped by the app's lifespan.

It serves ``inference.GRPCInferenceService`` (``aiaas.api.grpc_v2``), ``grpc.health.v1.Health`` (SERVING while
the app is ready, NOT_SERVING from the start of shutdown) and server reflection, so grpcurl, grpc_cli and load
balancers work without the .proto files. Shutdown drains: health turns NOT_SERVING, open streams stop taking
requests and finish the ones in flight, then the server stops with ``graceful_shutdown_s`` of grace.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiaas.api.grpc_v2 import SERVICE_NAME, InferenceServicer, add_to_server
from aiaas.server.tls import TLS

log = logging.getLogger("aiaas.grpc")


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class GrpcServer:
    def __init__(self, services: Any, tls: TLS | None) -> None:
        settings = services.settings
        self.settings = settings
        limit = settings.grpc_max_message_bytes or settings.max_request_bytes + (1 << 20)
        self.server = grpc.aio.server(options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a silently shared listener
        ])  # fmt: skip
        self.servicer = InferenceServicer(services)
        add_to_server(self.servicer, self.server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            self.server,
        )
        address = _address(settings.host, settings.grpc_port)
        try:
            if tls is not None:
                self.port = self.server.add_secure_port(address, tls.grpc_credentials())
            else:
                self.port = self.server.add_insecure_port(address)
        except RuntimeError as e:
            raise RuntimeError(f"cannot bind gRPC on {address}: {e}") from None
        self.scheme = "grpcs" if tls is not None else "grpc"

    async def start(self) -> None:
        await self.server.start()
        for name in ("", SERVICE_NAME):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC (KServe V2) on %s://%s", self.scheme, _address(self.settings.host, self.port))

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        self.servicer.draining.set()
        await self.server.stop(grace)
