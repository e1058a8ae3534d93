"""TFTP transport on Twisted: a listener per address, a UDP port per transfer.

The listener answers requests; each accepted read gets its own port, bound to the address
the request came to, so replies leave from that address. The transfer's port checks the
peer's transfer id and feeds a `ReadTransfer`; it is closed when the transfer ends.

Every socket reads whole datagrams (codec.READ_SIZE). Nothing here ever answers an ERROR
(RFC 1350 section 7) or a datagram from one of our own sockets, so no two of our ports can
answer each other for ever.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import assert_never

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IReactorTime, IReactorUDP, IUDPTransport
from twisted.internet.protocol import DatagramProtocol

from xprov.config import Listen, Network
from xprov.descriptors import TFTP_CLOSING
from xprov.guard import Asker, Gate, Transport, allowed
from xprov.logs import get_logger
from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Refused, Served
from xprov.tftp import codec
from xprov.tftp.admission import Admission, admit
from xprov.tftp.options import Limits, negotiate
from xprov.tftp.session import ReadTransfer, Result

log = get_logger("xprov.tftp")
Address = tuple[str, int]

# ERROR 5 answers per transfer port, one per stranger address: RFC 1350 answers a stranger
# so that a misdirected client stops, and one answer does that; a flood of strangers
# (forged addresses cost nothing) gets no more than this from a port, which is no reflector.
UNKNOWN_TID_ANSWERS = 4
WILDCARDS = frozenset({"", "0.0.0.0", "::"})  # hosts a socket bound to "any address" reports


@dataclass
class TftpStats:
    """Counters for status and metrics."""

    ok: int = 0
    failed: int = 0
    retransmits: int = 0
    bytes: int = 0  # DATA payload bytes sent, retransmissions included
    busy: int = 0  # requests refused because max_transfers were running
    evicted: int = 0  # never-answered transfers ended to make room (also counted in failed)
    rejected: dict[str, int] = field(default_factory=dict)  # requests answered with ERROR

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def netascii(body: bytes) -> bytes:
    """RFC 764 line endings: CR -> CR NUL, LF -> CR LF."""
    return body.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


class _Listener(DatagramProtocol):
    noisy = False

    def __init__(self, server: TftpServer, host: str) -> None:
        self.server, self.host = server, host

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None  # Twisted delivers only to a started protocol
        self.server.request(datagram, addr[:2], self.host, self.transport)


class _TransferPort(DatagramProtocol):
    """One transfer's own port: only the peer that asked may speak to it."""

    noisy = False

    def __init__(self, server: TftpServer, peer: Address, request: codec.Request) -> None:
        self.server, self.peer, self.request = server, peer, request
        self.transfer: ReadTransfer | None = None
        self.port: IListeningPort | None = None
        self.local: Address = ("", 0)  # the port's own address, once bound
        self.strangers: set[Address] = set()  # those answered with ERROR 5
        self.closed: Callable[[], None] = lambda: None

    def stopProtocol(self) -> None:
        self.closed()  # Twisted closes the port's socket right after this

    def send(self, datagram: bytes) -> None:
        assert self.transport is not None  # sends start once the port is bound
        self.transport.write(datagram, self.peer)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self.transfer is None or self.transfer.result is not None:
            return  # over: the port is closing
        assert self.transport is not None  # Twisted delivers only to a started protocol
        source = addr[:2]
        if source != self.peer:
            if self._answers(datagram, source):
                self.transport.write(codec.error(codec.UNKNOWN_TID, "Unknown transfer ID"), addr)
            return
        try:
            packet = codec.decode(datagram)
        except codec.Malformed:
            return
        self.transfer.receive(packet)

    def _answers(self, datagram: bytes, stranger: Address) -> bool:
        """Whether a stranger's datagram gets ERROR 5 (RFC 1350 section 4): not if it is an
        ERROR (never acknowledged), comes from one of our own sockets, or this port already
        answered that stranger or UNKNOWN_TID_ANSWERS of them. Records the answer."""
        if codec.is_error(datagram) or self.server.ours(stranger):
            return False
        if stranger in self.strangers or len(self.strangers) >= UNKNOWN_TID_ANSWERS:
            return False
        self.strangers.add(stranger)
        return True


class TftpServer:
    """Every TFTP listener and transfer of one xprov process."""

    ports_open = 0  # transfer ports whose socket is open (an ended one closes a turn later)

    def __init__(
        self,
        gate: Gate,
        limits: Limits,
        max_transfers: int,
        reactor: IReactorUDP,
        observer: Observer | None = None,
        allow: Sequence[Network] = (),
        per_source: int = 8,
    ) -> None:
        self.gate, self.limits = gate, limits
        # One reactor does both: every real one, and test clocks with listenUDP.
        self.clock = IReactorTime(reactor)
        self.observer = observer or Observer(self.clock.seconds)
        self.allow, self.per_source = tuple(allow), per_source
        self.max_transfers, self.reactor = max_transfers, reactor
        self.transfers: dict[Address, _TransferPort] = {}
        self._sources: Counter[str] = Counter()  # transfers per source address, in step
        # Transfers whose peer had not answered when last looked at, oldest first: the
        # ones to evict when every slot is taken (see xprov.tftp.admission); and the same
        # per source address, to evict when a source is at its own cap.
        self._unanswered: dict[_TransferPort, None] = {}
        self._unanswered_from: dict[str, dict[_TransferPort, None]] = {}
        self._bound: dict[int, list[str]] = {}  # our sockets: port number -> hosts bound
        self.stats = TftpStats()

    def reconfigure(
        self, limits: Limits, max_transfers: int, allow: Sequence[Network], per_source: int
    ) -> None:
        """A reload's limits: for new transfers; running ones finish under their own."""
        self.limits, self.max_transfers = limits, max_transfers
        self.allow, self.per_source = tuple(allow), per_source

    @property
    def active(self) -> int:
        return len(self.transfers)

    def listen(self, address: Listen) -> IListeningPort:
        port = self.reactor.listenUDP(
            address.port,
            _Listener(self, address.host),
            interface=address.host,
            maxPacketSize=codec.READ_SIZE,
        )
        host, number = _local(port)
        self._bound.setdefault(number, []).append(host)
        return port

    def ours(self, source: Address) -> bool:
        """Whether `source` is one of our sockets, a listener (one ever opened) or a transfer
        port. A socket bound to any address matches loopback sources only: the host's other
        addresses are not known here (and never answering ERRORs ends any loop anyway)."""
        host, number = source
        return any(
            bound == host or (bound in WILDCARDS and _loopback(host))
            for bound in self._bound.get(number, ())
        )

    def stop(self) -> None:
        for port in list(self.transfers.values()):
            if port.transfer is not None:
                port.transfer.cancel()

    def request(self, datagram: bytes, peer: Address, host: str, listener: IUDPTransport) -> None:
        """A datagram on a listening port: a new read request, or an error answer."""
        if peer[1] == 0 or not allowed(peer[0], self.allow) or self.ours(peer):
            return  # nobody to answer, nobody we answer, or ourselves
        if codec.is_error(datagram):
            return  # an ERROR is never acknowledged (RFC 1350 section 7), however malformed
        try:
            packet = codec.decode(datagram)  # judged whole: longer than MAX_DATAGRAM is ERROR 4
        except codec.Malformed:
            return self._refuse(listener, peer, codec.ILLEGAL_OPERATION, "malformed")
        if not isinstance(packet, codec.Request):
            return self._refuse(listener, peer, codec.ILLEGAL_OPERATION, "not_a_request")
        if packet.opcode == codec.WRQ:
            return self._refuse(listener, peer, codec.ACCESS_VIOLATION, "write")
        if packet.mode not in codec.MODES:
            return self._refuse(listener, peer, codec.ILLEGAL_OPERATION, "mode")
        running = self.transfers.get(peer)
        if running is not None:
            if running.request == packet:
                return  # the peer repeated its request: the running transfer answers it
            assert running.transfer is not None  # set before the port joined self.transfers
            running.transfer.cancel()  # a new request replaces it
        oldest = _oldest_unanswered(self._unanswered)
        oldest_from_source = _oldest_unanswered(self._unanswered_from.get(peer[0], {}))
        admission = admit(
            len(self.transfers),
            self._from(peer[0]),
            oldest is not None,
            oldest_from_source is not None,
            self.max_transfers,
            self.per_source,
        )
        victim = {Admission.EVICT: oldest, Admission.EVICT_SOURCE: oldest_from_source}.get(
            admission
        )
        if admission in (Admission.BUSY, Admission.BUSY_SOURCE):
            self.stats.busy += 1
            return self._refuse(listener, peer, codec.NOT_DEFINED, "busy")
        # The file name as sent: a TFTP name is not a URL, never percent-decoded.
        answer = self.gate.answer(
            Asker(Transport.TFTP, peer[0], packet.filename), self.clock.seconds()
        )
        self.observer.outcome(answer, "tftp", peer[0])
        match answer:
            case Served():
                body = netascii(answer.body) if packet.mode == "netascii" else answer.body
                if victim is not None:  # its peer never answered
                    assert victim.transfer is not None
                    victim.transfer.cancel(Result.EVICTED)
                self._start(packet, peer, host, body, listener, victim is not None)
            case Refused(status=429):
                self.stats.reject("rate_limited")  # out of its budget: not even an error
            case Refused():
                self._refuse(listener, peer, codec.ACCESS_VIOLATION, "refused")
            case NotFound():
                self._refuse(listener, peer, codec.FILE_NOT_FOUND, "not_found")
            case Failed():
                self._refuse(listener, peer, codec.NOT_DEFINED, "render_failed")
            case _:
                assert_never(answer)

    def _from(self, host: str) -> int:
        """Transfers running for `host` (O(1))."""
        return self._sources[host]

    def _refuse(self, listener: IUDPTransport, peer: Address, code: int, reason: str) -> None:
        self.stats.reject(reason)
        listener.write(codec.error(code, _MESSAGES[reason]), peer)

    def _start(
        self,
        packet: codec.Request,
        peer: Address,
        host: str,
        body: bytes,
        listener: IUDPTransport,
        evicting: bool = False,
    ) -> None:
        # A descriptor each: the cap holds the ports until their sockets close, a reactor turn
        # after their transfers end; a request that evicts may open its port before the
        # victim's is closed, within the reserve's TFTP_CLOSING.
        if self.ports_open >= self.max_transfers + (TFTP_CLOSING if evicting else 0):
            self.stats.busy += 1
            return self._refuse(listener, peer, codec.NOT_DEFINED, "busy")
        protocol = _TransferPort(self, peer, packet)
        try:
            protocol.port = self.reactor.listenUDP(
                0, protocol, interface=host, maxPacketSize=codec.READ_SIZE
            )
        except Exception as exc:  # out of ports or file descriptors
            log.warning("tftp_no_port", peer=peer[0], error=str(exc))
            return self._refuse(listener, peer, codec.NOT_DEFINED, "no_port")
        protocol.local = _local(protocol.port)
        self._bound.setdefault(protocol.local[1], []).append(protocol.local[0])
        self.ports_open += 1

        def closed() -> None:
            self.ports_open -= 1

        protocol.closed = closed
        negotiated = negotiate(packet.options, len(body), self.limits)
        protocol.transfer = ReadTransfer(
            body,
            negotiated,
            self.limits.retries,
            self.limits.max_stall,
            protocol.send,
            self.clock,
            lambda transfer, result: self._finished(protocol, transfer, result),
        )
        self.transfers[peer] = protocol
        self._sources[peer[0]] += 1
        self._unanswered[protocol] = None
        self._unanswered_from.setdefault(peer[0], {})[protocol] = None
        protocol.transfer.start()

    def _finished(self, protocol: _TransferPort, transfer: ReadTransfer, result: Result) -> None:
        self.stats.retransmits += transfer.retransmits
        self.stats.bytes += transfer.bytes_sent
        if result is Result.OK:
            self.stats.ok += 1
        else:
            self.stats.failed += 1
        if result is Result.EVICTED:
            self.stats.evicted += 1
        source = protocol.peer[0]
        if self.transfers.get(protocol.peer) is protocol:
            del self.transfers[protocol.peer]
            self._sources[source] -= 1
            if not self._sources[source]:
                del self._sources[source]  # no memory kept per address once it is idle
        self._unanswered.pop(protocol, None)
        queue = self._unanswered_from.get(source)
        if queue is not None:
            queue.pop(protocol, None)
            if not queue:
                del self._unanswered_from[source]
        if protocol.port is not None:
            host, number = protocol.local
            hosts = self._bound[number]
            hosts.remove(host)
            if not hosts:
                del self._bound[number]
            protocol.port.stopListening()


def _oldest_unanswered(queue: dict[_TransferPort, None]) -> _TransferPort | None:
    """The transfer in `queue` (oldest first) whose peer has not answered for longest, if
    any; forgets those that have answered since (amortised O(1): each leaves once)."""
    while queue:
        protocol = next(iter(queue))
        assert protocol.transfer is not None  # set before the port joined a queue
        if not protocol.transfer.answered:
            return protocol
        del queue[protocol]
    return None


def _local(port: IListeningPort) -> Address:
    """The (host, port number) a UDP port is bound to."""
    local = port.getHost()
    assert isinstance(local, IPv4Address | IPv6Address)  # a UDP port's address is IP
    return local.host, local.port


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# Short on purpose: an ERROR tells a stranger nothing about what exists.
_MESSAGES = {
    "malformed": "Malformed request",
    "not_a_request": "Expected a read request",
    "write": "Read-only server",
    "mode": "Unsupported mode",
    "busy": "Server busy, try later",
    "no_port": "Server busy, try later",
    "render_failed": "Internal error",
    "not_found": "File not found",
    "refused": "Access violation",
}
