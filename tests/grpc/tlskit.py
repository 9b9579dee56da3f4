"""Test certificates made at run time with the openssl CLI: the self-signed pair of docs/grpc.md, and a small
CA that signs a server and a client certificate for mutual TLS. Valid for 127.0.0.1 and localhost."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def self_signed(d: Path) -> tuple[Path, Path]:
    """Exactly the recipe of docs/grpc.md: (cert.pem, key.pem)."""
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    _run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(cert),
        "-days",
        "30",
        "-subj",
        "/CN=localhost",
        "-addext",
        SAN,
    )
    return cert, key


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _signed(d: Path, name: str, ca: Path, ca_key: Path, ext: str) -> tuple[Path, Path]:
    key, csr, cert, extfile = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _run("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    _run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "30",
        "-extfile",
        str(extfile),
    )
    return cert, key


def pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = d / "ca.pem", d / "ca.key"
    _run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "30",
        "-subj",
        "/CN=aiaas test CA",
    )
    server = _signed(d, "localhost", ca, ca_key, SAN + "\nextendedKeyUsage=serverAuth")
    client = _signed(d, "client", ca, ca_key, "extendedKeyUsage=clientAuth")
    return Pki(ca, *server, *client)
