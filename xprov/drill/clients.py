"""Fetching a file as a phone does, over HTTP (no keep-alive) or TFTP (no options)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from xprov.tftp import codec

# Twisted's default receive size, spelled out (IReactorUDP declares no defaults): any
# packet of a plain RFC 1350 read fits (516 bytes at most).
MAX_DATAGRAM = 8192

if TYPE_CHECKING:

    class IDrillReactor(IReactorTime, IReactorTCP, IReactorUDP):
        """What the drill asks of the reactor: timers, HTTP connections and TFTP's UDP
        sockets. Every real reactor provides all of it. A type only, like Twisted's
        `_IReactorCommon` (Python has no intersection of interfaces)."""


class HttpFetcher:
    def __init__(self, reactor: IDrillReactor, timeout: float) -> None:
        # Phones open a connection per file: no pool of persistent connections.
        self.agent = Agent(
            reactor, pool=HTTPConnectionPool(reactor, persistent=False), connectTimeout=timeout
        )
        self.reactor, self.timeout = reactor, timeout

    def get(self, url: str, user_agent: str | None) -> Deferred[tuple[int, bytes]]:
        headers = Headers({b"connection": [b"close"]})
        if user_agent:
            headers.addRawHeader(b"user-agent", user_agent.encode())
        request = self.agent.request(b"GET", url.encode(), headers)

        def body(response: IResponse) -> Deferred[tuple[int, bytes]]:
            return readBody(response).addCallback(lambda data: (response.code, data))

        return request.addCallback(body).addTimeout(
            self.timeout, self.reactor, onTimeoutCancel=_timed_out
        )


def _timed_out(result: object, timeout: float) -> NoReturn:
    """An attempt cut by its deadline fails with a TimeoutError, whether it was connecting
    (ConnectingCancelledError) or waiting for the answer (ResponseNeverReceived)."""
    raise defer.TimeoutError(f"no answer within {timeout} s")


class _TftpRead(DatagramProtocol):
    noisy = False

    def __init__(
        self,
        server: tuple[str, int],
        name: str,
        done: Deferred[bytes],
        reactor: IReactorTime,
        retry: float,
    ) -> None:
        self.server, self.name, self.done = server, name, done
        self.reactor, self.retry = reactor, retry
        self.peer: tuple[str, int] | None = None
        self.data, self.expected = b"", 1
        self.last = codec.rrq(name)
        self.timer: IDelayedCall | None = None

    def startProtocol(self) -> None:
        self._send(self.last, self.server)

    def _send(self, datagram: bytes, to: tuple[str, int]) -> None:
        # Held until tftp_get's close stops listening, which ends our timer first.
        assert self.transport is not None
        self.last, self.last_to = datagram, to
        self.transport.write(datagram, to)
        if self.timer is not None and self.timer.active():
            self.timer.reset(self.retry)
        else:
            self.timer = self.reactor.callLater(self.retry, self._resend)

    def _resend(self) -> None:
        if not self.done.called:
            self._send(self.last, self.last_to)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self.done.called:
            return
        if self.peer is None:
            self.peer = addr[:2]
        elif addr[:2] != self.peer:
            return
        try:
            packet = codec.decode(datagram)
        except codec.Malformed:
            return
        if isinstance(packet, codec.Error):
            self._finish(error=f"TFTP ERROR {packet.code}")
        elif isinstance(packet, codec.Data) and packet.block == self.expected & 0xFFFF:
            self.data += packet.payload
            self.expected += 1
            self._send(codec.ack(packet.block), self.peer)
            if len(packet.payload) < 512:
                self._finish()

    def _finish(self, error: str | None = None) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if error is None:
            self.done.callback(self.data)
        else:
            self.done.errback(RuntimeError(error))


def tftp_get(
    reactor: IDrillReactor, host: str, port: int, name: str, timeout: float, retry: float = 1.0
) -> Deferred[bytes]:
    """A plain RFC 1350 read, 512-byte blocks, as the phones do."""
    done: Deferred[bytes] = Deferred()
    protocol = _TftpRead((host, port), name, done, reactor, retry)
    listening = reactor.listenUDP(0, protocol, interface=host, maxPacketSize=MAX_DATAGRAM)

    def close(result: bytes | Failure) -> bytes | Failure:
        if protocol.timer is not None and protocol.timer.active():
            protocol.timer.cancel()
        listening.stopListening()
        return result

    return done.addTimeout(timeout, reactor).addBoth(close)
