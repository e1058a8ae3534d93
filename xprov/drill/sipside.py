"""The simulated phones' SIP side (issue 18): each probes the SIP server it uses with an OPTIONS
every `keepalive` seconds, as a REGISTER refresh or a call would reach it, and moves to the
next server its file names when one goes unanswered for its firmware's Timer F (measured:
a killed softswitch really does not answer); and each listens for a NOTIFY that makes it
fetch its file at once. One UDP socket carries every phone's probes; a phone's NOTIFYs come
to a UDP port of its own (the contact its registrar would know)."""

from __future__ import annotations

import itertools
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from xprov.config import SipService
from xprov.drill import sipmsg
from xprov.drill.firmware import Timers, timers_of
from xprov.drill.phones import SimPhone, SipServer, SipServers
from xprov.monitor.sip import build_options
from xprov.sipmessage import MAX_MESSAGE, Request

if TYPE_CHECKING:
    from xprov.drill.clients import IDrillReactor


# Seconds between two requests of a phone to its SIP server: not a phone's setting but the
# drill's sampling of "a call placed now" (a phone's REGISTER refresh is minutes apart), so
# that a phone's failover starts at most this long after the kill. 1,000 phones: 1,000
# small datagrams a second on loopback.
KEEPALIVE = 1.0

# Responses a phone keeps to answer a retransmitted NOTIFY with, as a server transaction
# does (RFC 3261 section 17.2.2); a drill's push sends one or two per phone.
MAX_ANSWERED = 16

Outcome = Literal["answered", "timeout"]

# A SIP datagram fits (xprov.sipmessage.MAX_MESSAGE: UDP's own bound); what is longer is
# cut, and then not read as SIP.
MAX_DATAGRAM = MAX_MESSAGE


@dataclass(frozen=True)
class SipEvent:
    """A change in what a phone's requests got: the first answer from a server after
    another outcome, or a request given up at Timer F."""

    at: float  # seconds since the epoch (the reactor's clock)
    outcome: Outcome
    server: str  # host:port the request went to
    site: str | None  # that server's site
    started: float  # when the phone first sent this request (to the server it used then):
    # a request moved on to the next server keeps it, so `at - started` is the wait of a
    # call placed at that moment
    moved: bool = False  # the request came here after the server before gave up on it


@dataclass(frozen=True)
class NotifySeen:
    """A request that reached a phone's NOTIFY port, and its answer."""

    at: float
    event: str  # the Event package, "" if none
    code: int  # the status the phone answered


@dataclass
class _Request:
    branch: str
    mac: str
    target: SipServer
    started: float
    moved: bool
    datagram: bytes
    retransmissions: list[float]  # seconds after the send still to come (Timer E)
    sent: float
    timer: IDelayedCall | None = None  # the next retransmission
    give_up: IDelayedCall | None = None  # Timer F


@dataclass
class _Phone:
    phone: SimPhone
    timers: Timers
    servers: tuple[SipServer, ...] = ()
    using: SipServer | None = None
    pending: _Request | None = None
    last: tuple[Outcome, str] | None = None  # the last recorded (outcome, server)
    tick: IDelayedCall | None = field(default=None, repr=False)


class Probes(DatagramProtocol):
    """Every phone's requests to its SIP servers, on one UDP socket, each a non-INVITE
    client transaction (RFC 3261 section 17.1.2.2: sent again per Timer E, given up at
    Timer F) told apart by its Via branch. `record`: mac -> SipEvents, appended to."""

    noisy = False

    def __init__(
        self,
        reactor: IDrillReactor,
        phones: list[SimPhone],
        record: dict[str, list[SipEvent]],
        keepalive: float = KEEPALIVE,
        host: str = "127.0.0.1",
    ) -> None:
        self.reactor, self.record, self.keepalive, self.host = reactor, record, keepalive, host
        self.phones = {p.mac: _Phone(p, timers_of(p.vendor)) for p in phones}
        self.pending: dict[str, _Request] = {}  # branch -> request; one per phone at most
        self.numbers = itertools.count(1)
        self.port: IListeningPort | None = None
        self.local = (host, 0)

    def start(self) -> None:
        """Bind the socket; each phone's first probe spread over one keepalive period."""
        self.port = self.reactor.listenUDP(0, self, self.host, MAX_DATAGRAM)
        self.local = (self.host, _port_of(self.port))
        for i, state in enumerate(self.phones.values()):
            delay = self.keepalive * i / len(self.phones)
            state.tick = self.reactor.callLater(delay, self._tick, state)

    def stop(self) -> None:
        for state in self.phones.values():
            if state.tick is not None and state.tick.active():
                state.tick.cancel()
        for request in list(self.pending.values()):
            self._settle(request)
        if self.port is not None:
            self.port.stopListening()

    def configure(self, mac: str, named: SipServers) -> None:
        """The servers the phone's latest file names: if they changed, it drops what it was
        waiting for and sends to the first of them at once, as a phone registers anew with
        a new server (a Yealink applies one in place)."""
        state = self.phones[mac]
        if named.servers == state.servers:
            return
        state.servers = named.servers
        state.using = named.servers[0] if named.servers else None
        if state.pending is not None:
            self._settle(state.pending)
        if state.using is not None and self.port is not None:
            self._send(state, state.using, self.reactor.seconds())

    def _tick(self, state: _Phone) -> None:
        state.tick = self.reactor.callLater(self.keepalive, self._tick, state)
        if state.pending is None and state.using is not None:
            self._send(state, state.using, self.reactor.seconds())

    def _send(self, state: _Phone, target: SipServer, started: float, moved: bool = False) -> None:
        number = next(self.numbers)
        ids = Request(f"z9hG4bKdrill{number}", f"probe{number}@drill", str(number))
        service = SipService(target.host, target.port, "udp", 0)
        datagram = build_options(service, "udp", self.local, ids)
        request = _Request(
            ids.branch,
            state.phone.mac,
            target,
            started,
            moved,
            datagram,
            state.timers.retransmissions(),
            self.reactor.seconds(),
        )
        state.pending = self.pending[request.branch] = request
        request.give_up = self.reactor.callLater(
            state.timers.timer_f, self._timed_out, request.branch
        )
        self._write(request)

    def _write(self, request: _Request) -> None:
        if self.transport is not None:
            self.transport.write(request.datagram, (request.target.host, request.target.port))
        if request.retransmissions:
            at = request.retransmissions.pop(0)
            wait = max(0.0, request.sent + at - self.reactor.seconds())
            request.timer = self.reactor.callLater(wait, self._write, request)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        message = sipmsg.parse(datagram)
        if message is None or message.status is None or message.status < 200:
            return  # not a final response: the transaction goes on
        request = self.pending.get(message.branch or "")
        if request is not None:
            self._settle(request)
            self._note(request, "answered")

    def _timed_out(self, branch: str) -> None:
        request = self.pending.get(branch)
        if request is None:
            return
        self._settle(request)
        self._note(request, "timeout")
        state = self.phones[request.mac]
        following = _after(state.servers, request.target)
        if following is not None:  # the same request goes on to the next server at once
            state.using = following
            self._send(state, following, request.started, moved=True)

    def _settle(self, request: _Request) -> None:
        for timer in (request.timer, request.give_up):
            if timer is not None and timer.active():
                timer.cancel()
        self.pending.pop(request.branch, None)
        self.phones[request.mac].pending = None

    def _note(self, request: _Request, outcome: Outcome) -> None:
        state = self.phones[request.mac]
        if (outcome, str(request.target)) == state.last and outcome == "answered":
            return  # only changes are kept: one event per phone, not one a second
        state.last = (outcome, str(request.target))
        self.record.setdefault(request.mac, []).append(
            SipEvent(
                self.reactor.seconds(),
                outcome,
                str(request.target),
                request.target.site,
                request.started,
                request.moved,
            )
        )


def _after(servers: tuple[SipServer, ...], dead: SipServer) -> SipServer | None:
    """The server a phone tries after `dead`: the next one its file names; None after the
    last (or if `dead` is no longer named: its next request goes to the first)."""
    if dead not in servers:
        return None
    index = servers.index(dead)
    return servers[index + 1] if index + 1 < len(servers) else None


class NotifyPort(DatagramProtocol):
    """One phone's SIP port: it answers a NOTIFY as its firmware does (sipmsg.answer) and,
    on its resync event, calls `resync(phone)`: the phone fetches its file now."""

    noisy = False

    def __init__(
        self,
        phone: SimPhone,
        reactor: IReactorTime,
        resync: Callable[[SimPhone], object],
        seen: list[NotifySeen],
    ) -> None:
        self.phone, self.reactor, self.resync, self.seen = phone, reactor, resync, seen
        self.nonce = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        # an SPA challenges with its line's credentials; a Yealink does not (fact sheet 3)
        self.credentials = phone.credentials if phone.vendor == "linksys" else None
        self.answered: OrderedDict[tuple[str | None, str | None], bytes] = OrderedDict()

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        message = sipmsg.parse(datagram)
        if message is None or message.method in (None, "ACK") or self.transport is None:
            return  # a response, an ACK or noise: nothing to answer
        key = (message.branch, message.header("cseq"))
        if key in self.answered:  # a retransmission: the same answer, nothing done again
            self.transport.write(self.answered[key], addr)
            return
        answer = sipmsg.answer(message, self.phone.vendor, self.credentials, self.nonce)
        data = sipmsg.response(message, answer.code, answer.reason, self.tag, answer.headers)
        self.answered[key] = data
        while len(self.answered) > MAX_ANSWERED:
            self.answered.popitem(last=False)
        self.transport.write(data, addr)  # to the source: rport (RFC 3581)
        self.seen.append(NotifySeen(self.reactor.seconds(), sipmsg.event_of(message), answer.code))
        if answer.resync:
            self.resync(self.phone)


class NotifyPorts:
    """A NOTIFY port for every phone with a line, on `host`; `record`: mac -> what reached
    it."""

    def __init__(
        self,
        reactor: IDrillReactor,
        phones: list[SimPhone],
        resync: Callable[[SimPhone], object],
        record: dict[str, list[NotifySeen]],
        host: str = "127.0.0.1",
    ) -> None:
        self.reactor, self.phones, self.resync, self.record = reactor, phones, resync, record
        self.host = host
        self.ports: dict[str, IListeningPort] = {}

    def start(self) -> dict[str, int]:
        """Bind a port per phone with a line; mac -> port."""
        for phone in self.phones:
            if phone.user:
                seen = self.record.setdefault(phone.mac, [])
                protocol = NotifyPort(phone, self.reactor, self.resync, seen)
                self.ports[phone.mac] = self.reactor.listenUDP(0, protocol, self.host, MAX_DATAGRAM)
        return {mac: _port_of(port) for mac, port in self.ports.items()}

    def stop(self) -> None:
        for port in self.ports.values():
            port.stopListening()
        self.ports = {}


def _port_of(port: IListeningPort) -> int:
    """The port number a UDP socket was bound to (an IPv4Address or IPv6Address)."""
    number: int = port.getHost().port  # type: ignore[attr-defined]
    return number


def contacts_toml(phones: list[SimPhone], ports: dict[str, int], host: str) -> str:
    """The operator's contact list for `[push] contacts = "file"`: one `[[contacts]]`
    (user, uri) per phone with a port."""
    out = []
    for phone in phones:
        if phone.mac in ports:
            uri = f"sip:{phone.user}@{host}:{ports[phone.mac]}"
            # a JSON string is a TOML basic string (quotes and backslashes escaped alike)
            out.append(f"[[contacts]]\nuser = {json.dumps(phone.user)}\nuri = {json.dumps(uri)}\n")
    return "\n".join(out)
