"""One HTTP/1.1 connection's bounds (twisted.web's `HTTPChannel`, narrowed): the size of a
request head, a body refused before it is read, the deadline the site's sweep enforces,
and back-pressure on answers left unread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, assert_never

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from xprov.logs import get_logger
from xprov.security_log import BoundedLog
from xprov.servers.http.body import BodyAdmitted, BodyRefused, refusal_answer, request_body

if TYPE_CHECKING:
    from xprov.servers.http.site import PhoneSite

log = get_logger("xprov.http")
# An outsider decides how many bodies are refused: their lines are bounded (security_log).
REFUSED_BODIES = BoundedLog(log, level="info")

# Requests of one connection answered from one read of it before the server turns to its
# other connections: a client pipelining thousands of requests in one segment gets them
# answered a few at a time, and the transport's back-pressure (`BoundedChannel`) is heeded
# between turns (over TLS, small writes are only handed to TCP once per turn).
MAX_PIPELINED = 16


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
    dismissed = False  # a reload no longer admits it: closed once its answers are written

    def connectionMade(self) -> None:
        super().connectionMade()
        self.request_since = self.site.clock.seconds()

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return
        if not self._busyReceiving:  # a read of the connection (not a replay of held bytes)
            self.answered = 0
        super().dataReceived(data)

    def dismiss(self) -> None:
        """A reload no longer admits this connection (its source, or the listener that
        accepted it): closed now if no request is in progress, else once the requests it
        holds are answered, with `Connection: close` (RFC 9112 section 9.6)."""
        self.dismissed, self.persistent = True, False
        if not self.requests:
            self.loseConnection()
            return
        for request in self.requests:
            if not request.startedWriting:
                request.responseHeaders.setRawHeaders(b"connection", [b"close"])

    def checkPersistence(self, request: Any, version: bytes) -> bool:
        if self.dismissed:  # a request whose head was still arriving at the reload
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            return False
        return bool(super().checkPersistence(request, version))

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
