"""HTTP and HTTPS transport (twisted.web): phones' files and /healthz, nothing else.

Every request goes through the gate (`xprov.guard.Gate`), which decides who may have a file
before it is rendered; this module only maps the gate's typed answer to HTTP. A refusal and
an error have an empty body, always (HEAD included, and an unexpected exception too).
Connections are bounded: a request (head and any body) must arrive in time and within size
limits, a request body is refused before a byte of it is read unless the listener takes one
(the admin API, a few KB, kept in memory), a connection whose answers pile up unread is read
no more, and sources may hold only so many.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import IO, Any, assert_never, cast

from cryptography import x509
from twisted.internet import ssl
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.http import HTTPChannel
from twisted.web.http import Request as HTTPRequest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from xprov.config import HttpsConfig, Network
from xprov.guard import Asker, Gate, Transport, allowed, macs_in
from xprov.logs import get_logger
from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Refused, Served
from xprov.security_log import SECURITY, BoundedLog

log = get_logger("xprov.http")
# An outsider decides how many bodies are refused: their lines are bounded (security_log).
REFUSED_BODIES = BoundedLog(log, level="info")
# Every answer of every listener names xprov, not twisted.web and its version (the way
# twisted.web.server offers to change it).
server.version = b"xprov"

# Requests of one connection answered from one read of it before the server turns to its
# other connections: a client pipelining thousands of requests in one segment gets them
# answered a few at a time, and the transport's back-pressure (`BoundedChannel`) is heeded
# between turns (over TLS, small writes are only handed to TCP once per turn).
MAX_PIPELINED = 16


class PhoneFiles(Resource):
    """Every path is a file name for the gate, except /healthz."""

    isLeaf = True

    def __init__(
        self,
        gate: Gate,
        observer: Observer,
        tls: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.gate, self.observer, self.clock = gate, observer, clock
        self.transport = Transport.HTTPS if tls else Transport.HTTP

    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _empty(request, 405)  # and no page that echoes the method back
        if request.path == b"/healthz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return _body(request, b"ok\n")
        asker = self._asker(request)
        if asker is None:
            return _empty(request, 404)
        answer = self.gate.answer(asker, self.clock())
        self.observer.outcome(answer, self.transport.value, asker.source, asker.user_agent)
        match answer:
            case Served():
                request.setHeader(b"content-type", answer.content_type.encode())
                request.setHeader(b"cache-control", b"no-store")
                return _body(request, answer.body)
            case Refused():
                for challenge in answer.challenges:
                    request.responseHeaders.addRawHeader(b"www-authenticate", challenge.encode())
                if answer.retry_after is not None:
                    request.setHeader(b"retry-after", b"%d" % answer.retry_after)
                return _empty(request, answer.status)
            case NotFound():
                return _empty(request, 404)
            case Failed():
                return _empty(request, 500)
            case _:
                assert_never(answer)

    def _asker(self, request: Request) -> Asker | None:
        """What the gate needs to know of `request`; None if its path is not ASCII. The path
        goes as sent (twisted.web's `request.path`: the target up to its `?`, undecoded):
        Digest checks it so, and the gate percent-normalises it once to name the file."""
        try:
            path = request.path.decode("ascii")
        except UnicodeDecodeError:
            return None
        agent = request.getHeader(b"user-agent")
        header = request.getHeader(b"authorization")
        return Asker(
            self.transport,
            _client(request),
            path,
            user_agent=agent.decode("latin-1") if agent is not None else None,
            method=request.method.decode("ascii"),
            authorization=header.decode("latin-1") if header is not None else None,
            certificate_macs=(
                _certificate_macs(request) if self.transport is Transport.HTTPS else None
            ),
        )


def _body(request: Request, body: bytes) -> bytes:
    """`body` for a GET; for a HEAD its length and nothing else (RFC 9110 section 9.3.2)."""
    if request.method == b"HEAD":
        request.setHeader(b"content-length", b"%d" % len(body))
        return b""
    return body


def _client(request: Request) -> str:
    """The client's address, as the connection noted it (a look-up costs a syscall)."""
    source: str | None = getattr(getattr(request, "channel", None), "source", None)
    if source:
        return source
    host: str = getattr(request.getClientAddress(), "host", "?")
    return host


def _certificate_macs(request: Request) -> frozenset[str]:
    """The MACs the client's verified certificate names (subject and alternative names),
    read once per connection: a connection's certificate never changes, and parsing it
    costs more than serving a cached file."""
    channel = request.channel
    known: frozenset[str] | None = getattr(channel, "certificate_macs", None)
    if known is None:
        known = _read_certificate_macs(getattr(channel, "transport", None))
        if isinstance(channel, BoundedChannel):  # PhoneSite's: the cache lives there
            channel.certificate_macs = known
    return known


def _read_certificate_macs(transport: Any) -> frozenset[str]:
    certificate = transport.getPeerCertificate() if transport is not None else None
    if certificate is None:
        return frozenset()
    parsed = certificate.to_cryptography()
    names = [str(attribute.value) for attribute in parsed.subject]
    with contextlib.suppress(x509.ExtensionNotFound):
        alternative = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [str(name.value) for name in alternative.value]
    return macs_in(names)


def _empty(request: Request, code: int) -> bytes:
    """An error answer says nothing about why (no oracle for MAC enumeration)."""
    request.setResponseCode(code, _REASONS.get(code))
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"content-length", b"0")
    return b""


_REASONS = {429: b"Too Many Requests"}  # RFC 6585; twisted.web does not know it


@dataclass(frozen=True)
class BodyAdmitted:
    """The request's content may be read: `length` bytes (0: it has none), into memory."""

    length: int


@dataclass(frozen=True)
class BodyRefused:
    """The request is answered `status` (empty) and its connection closed, its body unread."""

    status: int  # 400 Bad Request, 411 Length Required or 413 Content Too Large
    reason: str  # for the log


def request_body(
    content_length: Sequence[bytes], transfer_encoding: Sequence[bytes], max_body: int
) -> BodyAdmitted | BodyRefused:
    """Whether a request head announces a body we take, decided before any of it is read.

    `content_length` and `transfer_encoding` are the values of every such header field of
    the head, in order; `max_body` the most bytes of content the listener takes (0: none).
    The framing is RFC 9112 section 6.3: a Transfer-Encoding whose final coding is not
    chunked is a framing error (400); a chunked body has no length to bound before reading
    it (411, RFC 9110 section 15.5.12); Transfer-Encoding beside Content-Length is the shape
    of request smuggling (400, RFC 9112 section 6.1). Content-Length is 1*DIGIT (RFC 9110
    section 8.6; leading and trailing OWS are not part of a field value); anything else, a
    list, or several fields are 400. A length over `max_body` is 413 (RFC 9110 section
    15.5.14)."""
    if transfer_encoding:
        if content_length:
            return BodyRefused(400, "Transfer-Encoding with Content-Length")
        final = transfer_encoding[-1].rpartition(b",")[2].strip(b" \t").lower()
        if final != b"chunked":
            return BodyRefused(400, "Transfer-Encoding not ending in chunked")
        return BodyRefused(411, "chunked body")
    if not content_length:
        return BodyAdmitted(0)
    if len(content_length) > 1:
        return BodyRefused(400, "several Content-Length fields")
    value = content_length[0].strip(b" \t")
    if not value.isdigit():  # bytes: ASCII digits only
        return BodyRefused(400, "malformed Content-Length")
    digits = value.lstrip(b"0")
    if len(digits) > len(str(max_body)) or int(digits or b"0") > max_body:
        return BodyRefused(413, "body too large")
    return BodyAdmitted(int(digits or b"0"))


_STATUS_LINES = {
    400: b"400 Bad Request",
    411: b"411 Length Required",
    413: b"413 Content Too Large",
}


def refusal_answer(status: int) -> bytes:
    """The whole answer to a refused request: no content, and the connection closes (its
    body, if any, is never read: the connection cannot carry another request)."""
    return b"HTTP/1.1 %s\r\nServer: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % (
        _STATUS_LINES[status],
        server.version,
    )


class PhoneRequest(Request):
    """A request whose content is kept in memory (its channel admitted at most its site's
    `max_body` bytes), and whose unexpected failure is an empty 500, never twisted.web's
    error page."""

    # twisted.web declares `content = None` (unannotated) and documents a binary file.
    content: IO[bytes] | None = None  # type: ignore[assignment]

    def gotLength(self, length: int | None) -> None:
        # twisted.web would spool a body of 100,000 bytes or more, or of unknown length,
        # to a temporary file: never here.
        self.content = BytesIO()

    def processingFailed(self, reason: Failure) -> None:
        log.error("request_failed", error=reason.getErrorMessage(), type=reason.type.__name__)
        if self.finished or self._disconnected:
            return
        if not self.startedWriting:
            self.responseHeaders = type(self.responseHeaders)()
            _empty(self, 500)
            self.finish()
        else:  # never a partial file: cut the connection
            self.channel.loseConnection()


class BoundedChannel(HTTPChannel):
    """HTTP with small limits: a line is at most 4 KB, a request head at most 8 KB in at most
    50 headers (phones send a few hundred bytes), a body at most the site's `max_body` bytes
    (announced by Content-Length, refused before it is read), and a request (head and body)
    must be complete within the site's `header_timeout` of the connection or of the previous
    answer (the site's sweep enforces it: a timer per request would cost more than the
    request).

    Back-pressure (twisted.web only stops reading while no request is being answered, so a
    client that pipelines requests and reads no answer grows the send buffer without end):
    when the transport's send buffer is full (it calls `pauseProducing`), the channel stops
    reading the connection and parsing what it holds until the buffer drains; and it answers
    at most `MAX_PIPELINED` requests per turn. The deadline runs on meanwhile: a client that
    leaves its answers unread for `header_timeout` is cut off like a slow one. (This uses
    HTTPChannel's private state as Twisted 26.10, the pinned version, keeps it:
    `_waitingForTransport`, `_handlingRequest`, `_networkProducer`, and LineReceiver's
    `_busyReceiving`; tests/unit/test_http.py checks the behaviour.)"""

    site: PhoneSite  # set by Site.buildProtocol: the deadlines' clock, the caps

    maxHeaders = 50
    totalHeadersSize = 8192
    MAX_LENGTH = 4096
    source = "?"
    request_since: float | None = None  # waiting for a request's head or body since (site clock, s)
    certificate_macs: frozenset[str] | None = None  # HTTPS: read on its first request
    answered = 0  # requests answered in this turn
    next_turn: IDelayedCall | None = None  # starts the next turn, while one is due
    refused = False  # a body was refused: the connection reads and parses nothing more

    def connectionMade(self) -> None:
        super().connectionMade()
        self.request_since = self.site.clock.seconds()

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return
        if not self._busyReceiving:  # a read of the connection (not a replay of held bytes)
            self.answered = 0
        super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        headers = self.requests[-1].requestHeaders
        decision = request_body(
            headers.getRawHeaders(b"content-length", []),
            headers.getRawHeaders(b"transfer-encoding", []),
            self.factory.max_body,
        )
        match decision:
            case BodyAdmitted():
                super().allHeadersReceived()
            case BodyRefused():
                self._refuse(decision)
            case _:
                assert_never(decision)

    def _refuse(self, refusal: BodyRefused) -> None:
        """Answer `refusal` and close, reading nothing more (no 100 Continue was sent)."""
        REFUSED_BODIES.write(
            "body_refused", reason=refusal.reason, client=self.source, status=refusal.status
        )
        self.refused, self.paused, self.persistent = True, True, False
        self.length = None  # twisted.web would otherwise take a 0 as a complete request
        assert self.transport is not None  # a head arrived: the connection is made
        self.transport.write(refusal_answer(refusal.status))
        self.loseConnection()

    def allContentReceived(self) -> None:
        self.request_since = None
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self.answered += 1
        turn_over = self.answered >= MAX_PIPELINED
        if turn_over:
            self.paused = True  # before twisted.web replays the bytes it held
        super().requestDone(request)
        self.request_since = self.site.clock.seconds()
        if turn_over and self.next_turn is None and self.persistent:
            self.next_turn = self.callLater(0, self._next_turn)
            self._settle()

    def _next_turn(self) -> None:
        self.next_turn, self.answered = None, 0
        self._settle()

    def pauseProducing(self) -> None:
        """The transport's send buffer is full: read and parse nothing more until it drains."""
        super().pauseProducing()
        self._settle()

    def resumeProducing(self) -> None:
        """The transport's send buffer drained."""
        super().resumeProducing()
        self._settle()

    def _settle(self) -> None:
        """Read and parse the connection, or not, as the send buffer and the turn allow."""
        if self._waitingForTransport or self.next_turn is not None or self.refused:
            self.paused = True
            self._networkProducer.pauseProducing()
            return
        self.paused = False
        self.dataReceived(b"")  # parse what was held first: it may be held again
        if not self.paused and not self._handlingRequest:  # else requestDone resumes reading
            self._networkProducer.resumeProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.next_turn is not None:
            self.next_turn.cancel()
            self.next_turn = None
        super().connectionLost(reason)
        self.factory.connection_closed(self)


class PhoneSite(Site):
    """A Site without an access log (requests are counted, not written out one by one) and
    with bounded connections: an allow-list of sources, a cap in all and per source, no
    request body (`max_body`), and a deadline for every request."""

    displayTracebacks = False
    noisy = False
    # Twisted types a Site's protocol as its HTTP/1.1-or-2 switch; ours is HTTP/1.1 only.
    protocol = BoundedChannel  # type: ignore[assignment]
    requestFactory = PhoneRequest
    max_body = 0  # bytes of content a request may carry: phones send none

    def __init__(
        self,
        resource: Resource,
        idle_timeout: float,
        header_timeout: float,
        allow: Sequence[Network],
        max_connections: int,
        per_source: int,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(resource, timeout=idle_timeout)
        self.header_timeout, self.allow = header_timeout, tuple(allow)
        self.max_connections, self.per_source = max_connections, per_source
        self.connections: Counter[str] = Counter()  # per source
        self.channels: set[BoundedChannel] = set()
        # One clock for the deadlines, the sweeps and the channels' timers: the process's
        # reactor, or a task.Clock in tests.
        self.clock: IReactorTime = clock if clock is not None else _global_reactor()
        self.sweeper = LoopingCall(self.sweep)
        self.sweeper.clock = self.clock

    def startFactory(self) -> None:
        super().startFactory()
        if not self.sweeper.running:
            self.sweeper.start(self.sweep_interval, now=False)

    @property
    def sweep_interval(self) -> float:
        """Seconds between sweeps: a quarter of the deadline (at most 1 s), so a request is
        cut within 25% of `header_timeout` after it."""
        return min(1.0, self.header_timeout / 4)

    def reconfigure(
        self, allow: Sequence[Network], header_timeout: float, max_connections: int, per_source: int
    ) -> None:
        """A reload's bounds, for new connections; the deadline applies to open ones at the
        next sweep, and the sweeps follow it (a shorter deadline, more often)."""
        self.allow = tuple(allow)
        self.max_connections, self.per_source = max_connections, per_source
        self.header_timeout = header_timeout
        if self.sweeper.running and self.sweeper.interval != self.sweep_interval:
            self.sweeper.stop()
            self.sweeper.start(self.sweep_interval, now=False)

    def stopFactory(self) -> None:
        if self.sweeper.running:
            self.sweeper.stop()
        super().stopFactory()

    def sweep(self) -> None:
        """Cut off connections whose request (head or body) is overdue (slowloris), or that
        left their answers unread as long."""
        late = self.clock.seconds() - self.header_timeout
        for channel in [
            c for c in self.channels if c.request_since is not None and c.request_since < late
        ]:
            channel.request_since = None
            # TCP's or TLS's: both abort (ITransport itself has no abortConnection)
            cast(ITCPTransport, channel.transport).abortConnection()

    def buildProtocol(self, addr: Any) -> Any:
        source = getattr(addr, "host", "?")
        if not allowed(source, self.allow):
            return None  # the connection is closed at once
        if len(self.channels) >= self.max_connections or (
            self.connections[source] >= self.per_source
        ):
            SECURITY.write("security", client=source, reason="too many connections")
            return None
        channel = super().buildProtocol(addr)
        channel.source = source
        channel.callLater = self.clock.callLater  # its idle timeout and turns on our clock
        self.connections[source] += 1
        self.channels.add(channel)
        return channel

    def connection_closed(self, channel: BoundedChannel) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            self.connections[channel.source] -= 1
            if self.connections[channel.source] <= 0:
                del self.connections[channel.source]

    def log(self, request: HTTPRequest) -> None:
        pass


def site(
    resource: Resource,
    header_timeout: float = 10.0,
    allow: Sequence[Network] = (),
    max_connections: int = 10_000,
    per_source: int = 64,
    idle_timeout: float = 30.0,
    clock: IReactorTime | None = None,
) -> PhoneSite:
    return PhoneSite(
        resource, idle_timeout, header_timeout, allow, max_connections, per_source, clock
    )


def _global_reactor() -> IReactorTime:
    from twisted.internet import reactor  # installed by then: imported at first use only

    return reactor


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
