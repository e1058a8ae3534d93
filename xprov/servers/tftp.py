"""TFTP transport on Twisted: a listener per address, a UDP port per transfer.

The listener answers requests; each accepted read gets its own port, bound to the address
the request came to, so replies leave from that address. The transfer's port checks the
peer's transfer id and feeds a `ReadTransfer`; it is closed when the transfer ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import DatagramProtocol

from xprov.config import Listen, Network
from xprov.guard import Asker, Gate, Transport, allowed
from xprov.logs import get_logger
from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Refused, Served
from xprov.tftp import codec
from xprov.tftp.options import Limits, negotiate
from xprov.tftp.session import ReadTransfer, Result

log = get_logger("xprov.tftp")
Address = tuple[str, int]


@dataclass
class TftpStats:
    """Counters for status and metrics."""

    ok: int = 0
    failed: int = 0
    retransmits: int = 0
    bytes: int = 0  # DATA payload bytes sent, retransmissions included
    busy: int = 0  # requests refused because max_transfers were running
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

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.server.request(datagram, addr[:2], self.host, self.transport)


class _TransferPort(DatagramProtocol):
    """One transfer's own port: only the peer that asked may speak to it."""

    noisy = False

    def __init__(self, peer: Address, request: codec.Request) -> None:
        self.peer, self.request = peer, request
        self.transfer: ReadTransfer | None = None
        self.port: IListeningPort | None = None
        self.closed: Callable[[], None] = lambda: None

    def stopProtocol(self) -> None:
        self.closed()  # Twisted closes the port's socket right after this

    def send(self, datagram: bytes) -> None:
        self.transport.write(datagram, self.peer)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if self.transfer is None or self.transfer.result is not None:
            return  # over: the port is closing
        if addr[:2] != self.peer:
            self.transport.write(codec.error(codec.UNKNOWN_TID, "Unknown transfer ID"), addr)
            return
        try:
            packet = codec.decode(datagram)
        except codec.Malformed:
            return
        self.transfer.receive(packet)


class TftpServer:
    """Every TFTP listener and transfer of one xprov process."""

    ports_open = 0  # transfer ports whose socket is open (an ended one closes a turn later)

    def __init__(
        self,
        gate: Gate,
        limits: Limits,
        max_transfers: int,
        reactor: Any,
        observer: Observer | None = None,
        allow: Sequence[Network] = (),
        per_source: int = 8,
    ) -> None:
        self.gate, self.limits = gate, limits
        self.observer = observer or Observer(reactor.seconds)
        self.allow, self.per_source = tuple(allow), per_source
        self.max_transfers, self.reactor = max_transfers, reactor
        self.transfers: dict[Address, _TransferPort] = {}
        self.stats = TftpStats()

    @property
    def active(self) -> int:
        return len(self.transfers)

    def listen(self, address: Listen) -> IListeningPort:
        return self.reactor.listenUDP(
            address.port, _Listener(self, address.host), interface=address.host
        )

    def stop(self) -> None:
        for port in list(self.transfers.values()):
            if port.transfer is not None:
                port.transfer.cancel()

    def request(self, datagram: bytes, peer: Address, host: str, listener: Any) -> None:
        """A datagram on a listening port: a new read request, or an error answer."""
        if peer[1] == 0 or not allowed(peer[0], self.allow):
            return  # nobody to answer, or nobody we answer
        try:
            packet = codec.decode(datagram)
        except codec.Malformed:
            return self._refuse(listener, peer, codec.ILLEGAL_OPERATION, "malformed")
        if isinstance(packet, codec.Error):
            return  # never answer an error with an error
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
            running.transfer.cancel()  # type: ignore[union-attr]  # a new request replaces it
        if len(self.transfers) >= self.max_transfers or self._from(peer[0]) >= self.per_source:
            self.stats.busy += 1
            return self._refuse(listener, peer, codec.NOT_DEFINED, "busy")
        answer = self.gate.answer(
            Asker(Transport.TFTP, peer[0], packet.filename), self.reactor.seconds()
        )
        self.observer.outcome(answer, "tftp", peer[0])
        match answer:
            case Served():
                body = netascii(answer.body) if packet.mode == "netascii" else answer.body
                self._start(packet, peer, host, body, listener)
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
        """Transfers running for `host`."""
        return sum(1 for peer in self.transfers if peer[0] == host)

    def _refuse(self, listener: Any, peer: Address, code: int, reason: str) -> None:
        self.stats.reject(reason)
        listener.write(codec.error(code, _MESSAGES[reason]), peer)

    def _start(
        self, packet: codec.Request, peer: Address, host: str, body: bytes, listener: Any
    ) -> None:
        if self.ports_open >= self.max_transfers:  # a descriptor each: the cap holds them
            self.stats.busy += 1
            return self._refuse(listener, peer, codec.NOT_DEFINED, "busy")
        protocol = _TransferPort(peer, packet)
        try:
            protocol.port = self.reactor.listenUDP(0, protocol, interface=host)
        except Exception as exc:  # out of ports or file descriptors
            log.warning("tftp_no_port", peer=peer[0], error=str(exc))
            return self._refuse(listener, peer, codec.NOT_DEFINED, "no_port")
        self.ports_open += 1

        def closed() -> None:
            self.ports_open -= 1

        protocol.closed = closed
        negotiated = negotiate(packet.options, len(body), self.limits)
        protocol.transfer = ReadTransfer(
            body,
            negotiated,
            self.limits.retries,
            protocol.send,
            self.reactor,
            lambda transfer, result: self._finished(protocol, transfer, result),
        )
        self.transfers[peer] = protocol
        protocol.transfer.start()

    def _finished(self, protocol: _TransferPort, transfer: ReadTransfer, result: Result) -> None:
        self.stats.retransmits += transfer.retransmits
        self.stats.bytes += transfer.bytes_sent
        if result is Result.OK:
            self.stats.ok += 1
        else:
            self.stats.failed += 1
        if self.transfers.get(protocol.peer) is protocol:
            del self.transfers[protocol.peer]
        if protocol.port is not None:
            protocol.port.stopListening()


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
