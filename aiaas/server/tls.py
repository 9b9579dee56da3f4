"""TLS for both transports from one set of settings (``AIAAS_SSL_CERTFILE``, ``_KEYFILE``, ``_CA_CERTS``).

With a certificate, HTTPS (uvicorn) and gRPC speak only TLS on their ports: a plain-text client fails its
handshake. With a CA bundle as well, both demand a client certificate signed by it (mutual TLS).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiaas.errors import InvalidInput
from aiaas.settings import Settings


@dataclass(frozen=True, slots=True)
class TLS:
    certfile: Path
    keyfile: Path
    ca_certs: Path | None

    def uvicorn_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile)}
        if self.ca_certs is not None:
            kw["ssl_ca_certs"] = str(self.ca_certs)
            kw["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        return kw

    def grpc_credentials(self) -> Any:
        import grpc

        ca = self.ca_certs.read_bytes() if self.ca_certs is not None else None
        return grpc.ssl_server_credentials(
            [(self.keyfile.read_bytes(), self.certfile.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


def tls_from(settings: Settings) -> TLS | None:
    """The TLS settings checked (both halves of the pair, readable files, a loadable pair), or None for none."""
    cert, key, ca = settings.ssl_certfile, settings.ssl_keyfile, settings.ssl_ca_certs
    if cert is None and key is None:
        if ca is not None:
            raise InvalidInput(
                "AIAAS_SSL_CA_CERTS (client certificates) needs AIAAS_SSL_CERTFILE and AIAAS_SSL_KEYFILE"
            )
        return None
    if cert is None or key is None:
        raise InvalidInput("TLS needs both AIAAS_SSL_CERTFILE and AIAAS_SSL_KEYFILE")
    for what, path in (("certificate", cert), ("key", key), ("CA bundle", ca)):
        if path is not None and not Path(path).is_file():
            raise InvalidInput(f"TLS {what} file {path} does not exist")
    try:  # fail at startup with a clear message, not at the first handshake
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        if ca is not None:
            ctx.load_verify_locations(str(ca))
    except (ssl.SSLError, OSError) as e:
        raise InvalidInput(f"cannot load the TLS certificate/key ({cert}, {key}): {e}") from None
    return TLS(Path(cert), Path(key), Path(ca) if ca is not None else None)
