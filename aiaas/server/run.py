"""Run the server under uvicorn; SIGTERM stops accepting, finishes in-flight requests, drains and exits 0."""

from __future__ import annotations

import errno
import signal
import socket
import sys

import uvicorn

from aiaas.server.app import create_app
from aiaas.server.fastpath import http_protocol
from aiaas.server.observe import configure_logging
from aiaas.server.tls import tls_from
from aiaas.settings import Settings


def _loop() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:
        return "asyncio"


def check_port(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (in use, no such address, no permission), or None. Checked
    before anything loads, so a taken port is reported at once rather than after every model has loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {host}:{port}: {e.strerror} (check --host / AIAAS_HOST)"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is not "in use"
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (another aiaas or program is listening there): "
                    "stop it, or choose another port with --port / AIAAS_PORT"
                )
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return None


def serve(settings: Settings) -> int:
    configure_logging(settings)  # text or JSON lines, with the request id when there is one
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000.0)
    tls = tls_from(settings)  # checked before anything starts: a bad pair is a clear error, not a failed handshake
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop=_loop(),
        http=http_protocol(settings.fast_path),  # httptools, each response in one write (server/fastpath.py)
        lifespan="on",
        access_log=False,  # aiaas writes its own access log (server/observe.py): model, tenant, request id
        log_config=None,  # keep configure_logging's handler for uvicorn's own lines too
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.graceful_shutdown_s),
        timeout_keep_alive=30,
        backlog=4096,
        **(tls.uvicorn_kwargs() if tls is not None else {}),
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handler that was
    # installed before it: make that handler a clean exit so a graceful stop ends with status 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_zero)
    try:
        server.run()
    except SystemExit as e:
        return int(e.code or 0) if server.started else 1
    return 0 if server.started else 1


def _exit_zero(signum: int, frame: object) -> None:
    raise SystemExit(0)
