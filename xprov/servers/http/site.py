"""The HTTP listener's bounds (a twisted.web `Site`): an allow-list of sources, a cap on
connections in all and per source, the request deadline's sweep, and no access log."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, cast

from twisted.internet.interfaces import IReactorTime, ITCPTransport
from twisted.internet.task import LoopingCall
from twisted.web.http import Request as HTTPRequest
from twisted.web.resource import Resource
from twisted.web.server import Site

from xprov.config import Listen, Network, overlap
from xprov.guard import allowed
from xprov.security_log import SECURITY
from xprov.servers.http.body import PhoneRequest
from xprov.servers.http.channel import BoundedChannel


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

    def admit_only(self, listening: Collection[Listen]) -> int:
        """A reload's allow-list and listeners, for the connections already open: one from a
        source no longer allowed, or accepted on an address no listener in `listening`
        takes (a listener removed), is dismissed (closed now, or once its request in
        progress is answered). Returns how many were."""
        strays = [c for c in self.channels if not self._admits(c, listening)]
        for channel in strays:
            channel.dismiss()
        return len(strays)

    def _admits(self, channel: BoundedChannel, listening: Collection[Listen]) -> bool:
        if not allowed(channel.source, self.allow):
            return False
        if channel.transport is None:  # not connected yet: accepted under the new bounds
            return True
        local = channel.transport.getHost()
        host, port = getattr(local, "host", ""), getattr(local, "port", 0)
        return any(takes(listen, host, port) for listen in listening)

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


def takes(listen: Listen, host: str, port: int) -> bool:
    """Whether a listener bound to `listen` takes connections to the local address `host`,
    `port` (an IPv4-mapped IPv6 address is its IPv4 one)."""
    try:
        local = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped:
        local = local.ipv4_mapped
    return overlap(listen, Listen(str(local), port))


def _global_reactor() -> IReactorTime:
    from twisted.internet import reactor  # installed by then: imported at first use only

    return reactor
