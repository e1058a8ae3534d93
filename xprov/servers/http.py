"""HTTP and HTTPS transport (twisted.web): phones' files and /healthz, nothing else.

Before a file is rendered the guard may refuse it (a blocked source, missing or wrong
credentials, a TLS certificate naming another device). Connections are bounded: request
heads must arrive in time and within size limits, and sources may hold only so many.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from cryptography import x509
from twisted.internet import ssl
from twisted.internet.task import LoopingCall
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from xprov.config import HttpsConfig, Network
from xprov.guard import Guard, allowed, macs_in
from xprov.logs import get_logger
from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Provisioner, Served
from xprov.servers import charge
from xprov.vendors import identify

security = get_logger("xprov.security")


class PhoneFiles(Resource):
    """Every path is a file name for the provisioning core, except /healthz."""

    isLeaf = True

    def __init__(
        self,
        provisioner: Provisioner,
        observer: Observer,
        guard: Guard | None = None,
        tls: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.provisioner, self.observer, self.guard = provisioner, observer, guard
        self.tls, self.clock = tls, clock

    def render(self, request: Request) -> bytes:
        if request.method == b"GET":
            return self.render_GET(request)
        if request.method == b"HEAD":
            return self.render_HEAD(request)
        request.setHeader(b"allow", b"GET, HEAD")
        return _empty(request, 405)  # and no page that echoes the method back

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/healthz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"ok\n"
        source = _client(request)
        guard = self.guard
        if guard is not None and guard.blocked(source, self.clock()):
            return _empty(request, 429)
        try:
            path = request.path.decode("ascii")
            agent = request.getHeader(b"user-agent")
            user_agent = agent.decode("latin-1") if agent else None
        except UnicodeDecodeError:
            return _empty(request, 404)
        if (
            guard is not None
            and guard.protects(self.tls)
            and (refused := self._authorize(request, path, user_agent, source))
        ):
            return refused
        outcome = self.provisioner.provide(path, user_agent)
        if isinstance(outcome, Served):
            self.observer.served(outcome, "http")
            request.setHeader(b"content-type", outcome.content_type.encode())
            request.setHeader(b"cache-control", b"no-store")
            return outcome.body
        self.observer.refused(outcome, "http", source)
        if isinstance(outcome, Failed):
            return _empty(request, 500)
        assert isinstance(outcome, NotFound)
        if guard is not None and outcome.request is not None:
            charge(guard, source, outcome.request.mac, outcome.reason, self.clock())
        return _empty(request, 404)

    def _authorize(
        self, request: Request, path: str, user_agent: str | None, source: str
    ) -> bytes | None:
        """Credentials and certificate checks for a per-device file; the refusal, if any."""
        file = identify(path, user_agent)
        if file is None or not file.spec.per_device:
            return None
        assert self.guard is not None and file.mac is not None
        header = request.getHeader(b"authorization")
        now = self.clock()
        refusal = self.guard.authorize(
            file.mac,
            request.method.decode("ascii", "replace"),
            path,
            header.decode("latin-1") if header else None,
            source,
            self.tls,
            _certificate_macs(request) if self.tls else None,
            self.provisioner.inputs.inventory.accounts,
            now,
        )
        if refusal is None:
            return None
        if refusal.spend:
            charge(self.guard, source, file.mac, refusal.reason, now)
        if refusal.challenge:
            request.setHeader(b"www-authenticate", refusal.challenge.encode())
        return _empty(request, refusal.code)

    def render_HEAD(self, request: Request) -> bytes:
        body = self.render_GET(request)
        request.setHeader(b"content-length", b"%d" % len(body))
        return b""


def _client(request: Request) -> str:
    """The client's address, as the connection noted it (a look-up costs a syscall)."""
    source = getattr(getattr(request, "channel", None), "source", None)
    return source or getattr(request.getClientAddress(), "host", "?")


def _certificate_macs(request: Request) -> set[str]:
    """The MACs the client's verified certificate names (subject and alternative names)."""
    transport = getattr(request.channel, "transport", None)
    certificate = transport.getPeerCertificate() if transport is not None else None
    if certificate is None:
        return set()
    parsed = certificate.to_cryptography()
    names = [str(attribute.value) for attribute in parsed.subject]
    with contextlib.suppress(x509.ExtensionNotFound):
        alternative = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [str(name.value) for name in alternative.value]
    return macs_in(names)


def _empty(request: Request, code: int) -> bytes:
    """An error answer says nothing about why (no oracle for MAC enumeration)."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b""


class BoundedChannel(HTTPChannel):
    """HTTP with small limits: a line is at most 4 KB, a request head at most 8 KB in at most
    50 headers (phones send a few hundred bytes), and a head must be complete within the
    site's `header_timeout` of the connection or of the previous answer (the site's sweep
    enforces it: a timer per request would cost more than the request)."""

    maxHeaders = 50
    totalHeadersSize = 8192
    MAX_LENGTH = 4096
    source = "?"
    head_since: float | None = None  # waiting for a request head since (monotonic seconds)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.head_since = time.monotonic()

    def allHeadersReceived(self) -> None:
        self.head_since = None
        super().allHeadersReceived()

    def requestDone(self, request: Any) -> None:
        super().requestDone(request)
        self.head_since = time.monotonic()

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self.factory.connection_closed(self)


class PhoneSite(Site):
    """A Site without an access log (requests are counted, not written out one by one) and
    with bounded connections: an allow-list of sources, a cap in all and per source, and a
    deadline for every request head."""

    displayTracebacks = False
    noisy = False
    protocol = BoundedChannel

    def __init__(
        self,
        resource: Resource,
        idle_timeout: float,
        header_timeout: float,
        allow: Sequence[Network],
        max_connections: int,
        per_source: int,
    ) -> None:
        super().__init__(resource, timeout=idle_timeout)
        self.header_timeout, self.allow = header_timeout, tuple(allow)
        self.max_connections, self.per_source = max_connections, per_source
        self.connections: Counter[str] = Counter()  # per source
        self.channels: set[BoundedChannel] = set()
        self.sweeper = LoopingCall(self.sweep)

    def startFactory(self) -> None:
        super().startFactory()
        if not self.sweeper.running:
            self.sweeper.start(min(1.0, self.header_timeout / 4), now=False)

    def stopFactory(self) -> None:
        if self.sweeper.running:
            self.sweeper.stop()
        super().stopFactory()

    def sweep(self) -> None:
        """Cut off connections whose request head is overdue (slowloris)."""
        late = time.monotonic() - self.header_timeout
        for channel in [c for c in self.channels if c.head_since and c.head_since < late]:
            channel.head_since = None
            channel.transport.abortConnection()

    def buildProtocol(self, addr: Any) -> Any:
        source = getattr(addr, "host", "?")
        if not allowed(source, self.allow):
            return None  # the connection is closed at once
        if len(self.channels) >= self.max_connections or (
            self.connections[source] >= self.per_source
        ):
            security.warning("security", client=source, reason="too many connections")
            return None
        channel = super().buildProtocol(addr)
        channel.source = source
        self.connections[source] += 1
        self.channels.add(channel)
        return channel

    def connection_closed(self, channel: BoundedChannel) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            self.connections[channel.source] -= 1
            if self.connections[channel.source] <= 0:
                del self.connections[channel.source]

    def log(self, request: Request) -> None:
        pass


def site(
    resource: Resource,
    header_timeout: float = 10.0,
    allow: Sequence[Network] = (),
    max_connections: int = 10_000,
    per_source: int = 64,
    idle_timeout: float = 30.0,
) -> PhoneSite:
    return PhoneSite(resource, idle_timeout, header_timeout, allow, max_connections, per_source)


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
