"""The NOTIFYs' delivery: one UDP socket for every NOTIFY, each a non-INVITE client
transaction (RFC 3261 section 17.1.2.2) on the reactor's clock.

A send is sent at once and again at Timer E: after T1, then at doubling intervals up to T2
(0.5, 1.5, 3.5, 7.5, 11.5, ... s); a provisional response (1xx) makes every later interval
T2; Timer F (64*T1, 32 s) ends it as "timeout". The first final response ends it: 2xx
"ok"; 401/407 answered once, when the contact has credentials, by a new transaction (new
branch, CSeq + 1, same Call-ID and From tag) carrying the MD5 Digest answer; a second
401/407, or none to answer with, "unauthorized"; any other final response "error" with its
code. A response is ours when its top Via's branch names a send in flight and its Call-ID
and CSeq (number and method) match (RFC 3261 section 17.1.3); anything else is ignored,
as is what cannot be parsed (xprov/sipmessage.py, bounded).

A contact we cannot send to (xprov/push/notify.py `target_of`: not sip:, no IP literal, a
host name: names are never resolved) is "unreachable" at once, without a datagram.

Bounded: the pusher sends at most `[push] rate` NOTIFYs a second and each lasts at most
two transactions of 64*T1 (a challenge and its answer), so at the default rate (100) at
most 6,400 are in flight; beyond MAX_IN_FLIGHT a send answers "unreachable" ("too many
NOTIFYs in flight") at once instead of holding another transaction's timers and bytes.
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol

from xprov.logs import get_logger
from xprov.monitor.errors import error_detail, printable
from xprov.push.model import Contact, Outcome, PushResult
from xprov.push.notify import (
    METHOD,
    Authorization,
    Refusal,
    Target,
    answer,
    build_notify,
    challenge_of,
    event_for,
    require_event,
    target_of,
)
from xprov.sipmessage import (
    MAX_MESSAGE,
    Request,
    Response,
    matches,
    parse_response,
    top_branch,
)

if TYPE_CHECKING:

    class IPushReactor(IReactorUDP, IReactorTime):
        """What the sender asks of its reactor: a UDP port and timers. A type only (Python
        has no intersection of interfaces): every real reactor provides both."""


log = get_logger("xprov.push")

T1 = 0.5  # s, RFC 3261 section 17.1.1.1: the round-trip estimate, Timer E's first interval
T2 = 4.0  # s, RFC 3261 section 17.1.2.2: the longest interval between retransmissions
# Sends in flight at most (each holds a request of ~500 bytes and two timers): above the
# 6,400 the default rate can have in flight, far below what the process can hold.
MAX_IN_FLIGHT = 10_000
# A send buffer momentarily full: as if the datagram were lost; Timer E sends it again.
LOST = frozenset({errno.EAGAIN, errno.ENOBUFS})


@dataclass(eq=False)
class _Send:
    """One contact's NOTIFY: its current transaction and what the result will say."""

    target: Target
    event: str
    credentials: tuple[str, str] | None = field(repr=False)
    done: Deferred[PushResult]
    source: tuple[str, int]  # our address and port, for the Via and From
    request: Request
    message: bytes = b""
    attempts: int = 0  # requests sent (a new transaction each), retransmissions not counted
    interval: float = 0.0  # Timer E's last interval
    due: float = 0.0  # when Timer E fires next, on the reactor's clock
    proceeding: bool = False  # a 1xx came (RFC 3261 section 17.1.2.2 "Proceeding")
    timers: list[IDelayedCall] = field(default_factory=list)  # Timer E, Timer F


class _Socket(DatagramProtocol):
    noisy = False  # a start and a stop line per sender is noise

    def __init__(self, received: Callable[[bytes], None]) -> None:
        self.received = received

    def datagramReceived(self, datagram: bytes, addr: object) -> None:
        self.received(datagram)


class NotifySender:
    """Sends NOTIFYs from one UDP socket bound to (`bind`, an ephemeral port).

    `send(contact, event)` -> Deferred[PushResult], which never fails (but for a caller's
    cancel()); `close()` stops the socket and ends what is in flight; `in_flight` counts
    the sends not ended yet."""

    def __init__(
        self,
        reactor: IPushReactor,
        bind: str,
        t1: float = T1,
        t2: float = T2,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.clock: IReactorTime = reactor
        self.t1, self.t2, self.max_in_flight = t1, t2, max_in_flight
        self.version = ipaddress.ip_address(bind).version
        self.protocol = _Socket(self._received)
        # the whole datagram, however large (Twisted's default reads 8 KB of it)
        self.port = reactor.listenUDP(0, self.protocol, bind, MAX_MESSAGE)
        self.sends: dict[str, _Send] = {}  # by the branch of its current transaction
        self.closed = False
        self.ignored = 0  # datagrams that answered nothing in flight (or did not parse)

    @property
    def in_flight(self) -> int:
        return len(self.sends)

    def send(self, contact: Contact, event: str | None = None) -> Deferred[PushResult]:
        """NOTIFY `contact` with `event` (None: the one for its vendor, notify.event_for).
        An `event` that is not an Event value raises ValueError (a caller's mistake)."""
        event = require_event(event_for(contact.vendor) if event is None else event)
        where = self._where(contact)
        if isinstance(where, Refusal):
            return succeed(_logged(contact, PushResult("unreachable", None, where.detail, 0)))
        target, source = where
        done: Deferred[PushResult] = Deferred(lambda _: self._end_transaction(send))
        send = _Send(target, event, contact.credentials, done, source, Request.fresh())
        send.message = build_notify(target, event, source, send.request)
        done.addCallback(lambda result: _logged(contact, result))
        self._begin(send)
        return done

    def close(self) -> Deferred[None]:
        """Stop the socket; each send in flight ends as "timeout" (no final response came)."""
        self.closed = True
        for send in list(self.sends.values()):
            self._finish(send, "timeout", None, "sender closed before a final response")
        stopped = self.port.stopListening()
        return stopped if stopped is not None else succeed(None)

    # -- starting

    def _where(self, contact: Contact) -> tuple[Target, tuple[str, int]] | Refusal:
        """Where the NOTIFY goes and our address for it; or why nothing is sent: this sender
        is closed or full, or the contact's URI unusable (notify.target_of)."""
        if self.closed:
            return Refusal("sender closed")
        if len(self.sends) >= self.max_in_flight:
            return Refusal("too many NOTIFYs in flight")
        target = target_of(contact)
        if isinstance(target, Refusal):
            return target
        if target.version != self.version:
            return Refusal(f"an IPv{target.version} contact and an IPv{self.version} bind")
        source = self._source(target)
        return source if isinstance(source, Refusal) else (target, source)

    def _source(self, target: Target) -> tuple[str, int] | Refusal:
        """Our (address, port) for the Via and From: the bound address, or, bound to every
        address (0.0.0.0, ::), the one the kernel's route to `target` leaves from."""
        assert self.protocol.transport is not None  # listenUDP started the protocol
        local = self.protocol.transport.getHost()
        if not ipaddress.ip_address(local.host).is_unspecified:
            return local.host, local.port
        family = socket.AF_INET6 if target.version == 6 else socket.AF_INET
        try:  # a connected UDP socket only picks a route: no datagram is sent
            with socket.socket(family, socket.SOCK_DGRAM) as probe:
                probe.connect((target.host, target.port))
                return str(probe.getsockname()[0]), local.port
        except OSError as exc:
            return Refusal(f"no route to {target.host}: {error_detail(exc)}")

    def _begin(self, send: _Send) -> None:
        """Start a transaction for `send.request` (RFC 3261 section 17.1.2.2 "Trying")."""
        send.attempts += 1
        send.interval, send.proceeding = self.t1, False
        send.due = self.clock.seconds() + self.t1
        self.sends[send.request.branch] = send
        send.timers = [
            self.clock.callLater(self.t1, self._timer_e, send),
            self.clock.callLater(64 * self.t1, self._timer_f, send),
        ]
        self._transmit(send)

    def _transmit(self, send: _Send) -> None:
        assert self.protocol.transport is not None
        try:
            self.protocol.transport.write(send.message, (send.target.host, send.target.port))
        except OSError as exc:
            if exc.errno not in LOST:  # RFC 3261 section 17.1.4: a transport error ends it
                self._finish(send, "unreachable", None, f"cannot send: {error_detail(exc)}")

    # -- timers

    def _timer_e(self, send: _Send) -> None:
        # Each firing is set from when the last was due, not from when it ran: a late
        # reactor shifts no retransmission after Timer F.
        send.interval = self.t2 if send.proceeding else min(2 * send.interval, self.t2)
        send.due += send.interval
        wait = max(0.0, send.due - self.clock.seconds())
        send.timers[0] = self.clock.callLater(wait, self._timer_e, send)
        self._transmit(send)

    def _timer_f(self, send: _Send) -> None:
        self._finish(send, "timeout", None, f"no final response in {64 * self.t1:g} s")

    # -- responses

    def _received(self, datagram: bytes) -> None:
        response = parse_response(datagram)
        send = self.sends.get(top_branch(response)) if response is not None else None
        if response is None or send is None or not matches(response, send.request, METHOD):
            self.ignored += 1
            return
        status = f"{response.status} {printable(response.reason)}".strip()
        if response.status < 200:
            send.proceeding = True
        elif response.status < 300:
            self._finish(send, "ok", response.status, status)
        elif response.status in (401, 407):
            self._challenged(send, response, status)
        else:
            self._finish(send, "error", response.status, status)

    def _challenged(self, send: _Send, response: Response, status: str) -> None:
        """Answer a 401/407 once, with the contact's credentials (RFC 3261 section 22.2)."""
        if send.credentials is None:
            self._finish(send, "unauthorized", response.status, f"{status}: no credentials")
            return
        if send.attempts > 1:
            self._finish(send, "unauthorized", response.status, f"{status} to the answer")
            return
        challenge = challenge_of(response)
        authorization: Authorization | Refusal = (
            challenge
            if isinstance(challenge, Refusal)
            else answer(challenge, send.credentials, send.target.uri, secrets.token_hex(8))
        )
        if isinstance(authorization, Refusal):
            self._finish(send, "unauthorized", response.status, authorization.detail)
            return
        log.debug("notify_challenged", uri=send.target.uri, status=response.status)
        self._end_transaction(send)
        send.request = send.request.retry()
        send.message = build_notify(
            send.target, send.event, send.source, send.request, authorization
        )
        self._begin(send)

    # -- ending

    def _end_transaction(self, send: _Send) -> None:
        for timer in send.timers:
            if timer.active():
                timer.cancel()
        self.sends.pop(send.request.branch, None)

    def _finish(self, send: _Send, outcome: Outcome, code: int | None, detail: str) -> None:
        self._end_transaction(send)
        if not send.done.called:
            send.done.callback(PushResult(outcome, code, detail, send.attempts))


def _logged(contact: Contact, result: PushResult) -> PushResult:
    """Log one send's result (debug: the pusher counts them); never a credential."""
    log.debug(
        "notify_result",
        user=printable(contact.user),
        uri=printable(contact.uri),
        outcome=result.outcome,
        code=result.code,
        detail=result.detail,
        attempts=result.attempts,
    )
    return result
