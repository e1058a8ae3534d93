"""A test PKI made with the openssl command: a CA for phones' device certificates, a server
certificate for 127.0.0.1, device certificates naming a MAC, and a rogue CA."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _run(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def authority(directory: Path, name: str, alt_names: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate (a CA, or a server that is its own CA) and its key."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    extra = ["-addext", f"subjectAltName={alt_names}"] if alt_names else []
    _run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        *extra,
        "-keyout",
        str(key),
        "-out",
        str(cert),
    )
    return cert, key


def issued(
    directory: Path, name: str, ca: tuple[Path, Path], subject: str, alt_names: str | None = None
) -> tuple[Path, Path]:
    cert, key, csr = (
        directory / f"{name}.pem",
        directory / f"{name}.key",
        directory / f"{name}.csr",
    )
    _run(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        subject,
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    extra = []
    if alt_names:
        ext = directory / f"{name}.ext"
        ext.write_text(f"subjectAltName = {alt_names}\n")
        extra = ["-extfile", str(ext)]
    _run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        str(cert),
        *extra,
    )
    return cert, key


class Pki:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.ca = authority(directory, "phone-ca")
        self.server_ca = authority(directory, "server-ca")
        self.server = issued(
            directory, "server", self.server_ca, "/CN=localhost", "DNS:localhost, IP:127.0.0.1"
        )
        self.t46g = issued(directory, "t46g", self.ca, "/O=Yealink/CN=00156574b150")
        self.spa = issued(directory, "spa", self.ca, "/CN=SPA504G", "DNS:0002fdff2103.phones")
        rogue = authority(directory, "rogue-ca")
        self.rogue = issued(directory, "rogue", rogue, "/CN=00156574b150")
