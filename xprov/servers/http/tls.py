"""HTTPS: the TLS options of `[https]`, and the TLS wrapper that keeps a PhoneSite's
refusals."""

from __future__ import annotations

from typing import Any

from twisted.internet import ssl
from twisted.protocols.tls import TLSMemoryBIOFactory

from xprov.config import HttpsConfig


class BoundedTLSFactory(TLSMemoryBIOFactory):
    """TLS in front of a PhoneSite that keeps the site's refusals: Twisted's wrapper wraps
    the None of a refused connection, fails on it and leaves the connection open, beyond
    every cap (each one a descriptor)."""

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


def tls_options(config: HttpsConfig) -> Any:
    """TLS 1.2 and later; the phones' certificates checked against `client_ca` if set."""
    identity = ssl.PrivateCertificate.loadPEM(
        config.certificate.read_bytes() + b"\n" + config.private_key.read_bytes()
    )
    authorities = []
    for path in config.client_ca:
        with path.open("rb") as f:
            authorities.append(ssl.Certificate.loadPEM(f.read()).original)
    return ssl.CertificateOptions(
        privateKey=identity.privateKey.original,
        certificate=identity.original,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        verify=config.client_certificate != "off",
        caCerts=authorities or None,
        requireCertificate=config.client_certificate == "require",
    )
