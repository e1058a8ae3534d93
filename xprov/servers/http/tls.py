"""HTTPS: the TLS options of `[https]`, the TLS wrapper that keeps a PhoneSite's refusals,
and the listening ports' factory whose options a reload replaces without a rebind."""

from __future__ import annotations

from typing import Any

from twisted.internet import ssl
from twisted.internet.protocol import ServerFactory
from twisted.protocols.tls import TLSMemoryBIOFactory

from xprov.config import HttpsConfig
from xprov.servers.http.site import PhoneSite


class BoundedTLSFactory(TLSMemoryBIOFactory):
    """TLS in front of a PhoneSite that keeps the site's refusals: Twisted's wrapper wraps
    the None of a refused connection, fails on it and leaves the connection open, beyond
    every cap (each one a descriptor)."""

    def buildProtocol(self, addr: Any) -> Any:
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


class CurrentTLS(ServerFactory):
    """The HTTPS listening ports' factory: each new connection gets the TLS of the current
    `BoundedTLSFactory`, which a reload replaces (`use`) without closing the ports; an
    established connection keeps the one it began with. Starting and stopping follow the
    phones' site, as Twisted's wrapper does (its deadline sweep runs while a port listens)."""

    noisy = False

    def __init__(self, site: PhoneSite) -> None:
        self.site = site
        self.tls: BoundedTLSFactory | None = None  # None until the first `use`
        self.settings: HttpsConfig | None = None  # the [https] its options were read from

    def use(self, options: Any, settings: HttpsConfig) -> None:
        """TLS from `options` (`tls_options(settings)`) for the connections to come."""
        self.tls = BoundedTLSFactory(options, False, self.site)
        self.settings = settings

    def doStart(self) -> None:
        self.site.doStart()
        super().doStart()

    def doStop(self) -> None:
        super().doStop()
        self.site.doStop()

    def buildProtocol(self, addr: Any) -> Any:
        return None if self.tls is None else self.tls.buildProtocol(addr)


def tls_options(config: HttpsConfig) -> Any:
    """TLS 1.2 and later; the phones' certificates checked against `client_ca` if set.
    Reads the files (blocking: a reload calls it on the builder thread); raises OSError or
    OpenSSL's error if one cannot be read or parsed."""
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
