"""The etcd client's HTTP plumbing on the caller's reactor: connections to the members (TCP,
TLS), a pool that logs no connection, request bodies written at once, reply bodies read up to
MAX_REPLY_BYTES.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import cast

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IConsumer,
    IPushProducer,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import URI, HTTPConnectionPool, ResponseDone, _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from xprov.cluster.etcd.codec import MAX_REPLY_BYTES, BoundedBody, TooBig

# Seconds between connection attempts to a member's addresses. HostnameEndpoint also waits
# this long before it reports that the last address refused: Twisted's 0.3 s made every move
# away from a killed member 0.3 s slower.
ATTEMPT_DELAY = 0.05


class IEtcdReactor(IReactorTCP, IReactorTime, IReactorPluggableNameResolver):
    """What the client needs of a reactor: TCP, timers and name resolution (treq's Agent)."""


class _BodyReader(Protocol):
    """Feeds a reply body to `sink` as it arrives; `done` fires when it ends. Cancelling
    `done`, or `sink` raising, drops the connection."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.done: Deferred[None] = Deferred(lambda _: self._stop())

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        try:
            self.sink(data)
        except Exception:
            self._stop()
            self.done.errback()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if isinstance(reason.value, ResponseDone | PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)

    def _stop(self) -> None:
        if self.transport is not None:  # the HTTP client's proxy of the connection
            cast(IPushProducer, self.transport).stopProducing()


@implementer(IBodyProducer)
class _Body:
    """A request body written at once (treq's default producer writes through the global
    reactor's cooperator, which may not be the reactor the client runs on)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.length = data, len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IAgentEndpointFactory)
class _Members:
    """Connections to the members (IAgentEndpointFactory): TCP, with TLS for https, verified
    against `ca` (the system's roots without it) and with a client certificate when given.
    Every timer runs on the client's reactor (Agent's own factory runs TLS's on the global
    one)."""

    def __init__(
        self,
        reactor: IEtcdReactor,
        timeout: float,
        ca: Path | None,
        certificate: Path | None,
        key: Path | None,
    ) -> None:
        self.reactor, self.timeout = reactor, timeout
        self.trust = Certificate.loadPEM(ca.read_bytes()) if ca else None
        self.client = None
        if certificate and key:
            pem = certificate.read_bytes() + b"\n" + key.read_bytes()
            self.client = PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        endpoint = HostnameEndpoint(
            self.reactor, host, uri.port, timeout=self.timeout, attemptDelay=ATTEMPT_DELAY
        )
        if uri.scheme != b"https":
            return endpoint
        tls = optionsForClientTLS(host, trustRoot=self.trust, clientCertificate=self.client)
        return wrapClientTLS(tls, endpoint, self.reactor)


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # a connection per call: "Starting factory" twice a second otherwise


class QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


def _read(response: IResponse) -> Deferred[bytes]:
    """The whole body, up to MAX_REPLY_BYTES (TooBig past it, with the connection dropped)."""
    body = BoundedBody(MAX_REPLY_BYTES)
    reader = _BodyReader(body.feed)
    response.deliverBody(reader)  # type: ignore[no-untyped-call]
    if response.length is not UNKNOWN_LENGTH and response.length > MAX_REPLY_BYTES:
        reader.done.cancel()
        raise TooBig(f"reply of {response.length} bytes is bigger than {MAX_REPLY_BYTES}")
    return reader.done.addCallback(lambda _: body.value())
