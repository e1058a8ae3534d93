"""What every probe shares: a verdict within its own deadline, whatever happens.

A probe is started with `run_probe(attempt, timeout, clock)`. `attempt(done)` begins the
work, fires `done` with `(ok, detail)` when it knows (or with `NotMade` when this process
could not even make the probe), and returns a cleanup to call at the end. The returned
Deferred always fires with a ProbeResult, never with an error, and never later than
`timeout` seconds. Without an outcome by then, it is `at_deadline()`: "timeout" by
default, what the exchange saw for a UDP probe (`probe_udp`). Error text: errors.py.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.internet import udp
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFDSet,
    IReactorFromThreads,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from xprov.monitor.errors import NotMade, error_detail, local_shortage, printable
from xprov.monitor.state import Cause, ProbeResult

if TYPE_CHECKING:

    class IProbeReactor(
        IReactorCore, IReactorTime, IReactorFDSet, IReactorTCP, IReactorFromThreads
    ):
        """What the probes ask of the reactor they run on: names resolved, timers, UDP
        sockets watched, TCP connections, results from the blocking probes' threads. Every
        real reactor provides all of it. A type only, like Twisted's `_IReactorCommon`
        (Python has no intersection of interfaces): nothing declares or adapts to it."""


Verdict = tuple[bool, str]  # the target's answer, or its lack of one: (up, detail)
Outcome = Verdict | NotMade
Attempt = Callable[[Deferred[Outcome]], Callable[[], None]]
TIMED_OUT: Verdict = (False, "timeout")
# The errno a connected UDP socket reports, once, for an ICMP error quoting one of its
# datagrams (Linux icmp_err_convert and icmpv6_err_convert, the "fatal" ones): by the next
# recv, the next send, or a read of SO_ERROR.
ICMP_ERRORS = {
    errno.ECONNREFUSED: "ICMP port unreachable",
    errno.EHOSTUNREACH: "ICMP host unreachable",
    errno.ENETUNREACH: "ICMP network unreachable",
    errno.ENOPROTOOPT: "ICMP protocol unreachable",
    errno.EHOSTDOWN: "ICMP host unknown",
    errno.ENONET: "ICMP host isolated",
    errno.EACCES: "ICMP administratively prohibited",
    errno.EPROTO: "ICMP parameter problem",
}


def _timed_out() -> Outcome:
    return TIMED_OUT


def run_probe(
    attempt: Attempt,
    timeout: float,
    clock: IReactorTime,
    at_deadline: Callable[[], Outcome] = _timed_out,
) -> Deferred[ProbeResult]:
    started = clock.seconds()
    done: Deferred[Outcome] = Deferred()

    def settle(outcome: Outcome) -> None:
        if not done.called:
            done.callback(outcome)

    timer = clock.callLater(timeout, lambda: settle(at_deadline()))
    watched: Deferred[Outcome] = Deferred()
    watched.addCallback(settle)
    try:
        cleanup = attempt(watched)
    except Exception as exc:  # a probe that cannot even start has failed, nothing more
        cleanup = _nothing
        settle(failed(exc, "cannot start: "))

    def finish(outcome: Outcome) -> ProbeResult:
        at_the_deadline = not timer.active()  # the timer fired: no answer settled it
        if not at_the_deadline:
            timer.cancel()
        with contextlib.suppress(Exception):  # a dead connection may not clean up; no matter
            cleanup()
        return result_of(outcome, clock.seconds() - started, at_the_deadline)

    return done.addCallback(finish)


def result_of(outcome: Outcome, latency: float, timed_out: bool = False) -> ProbeResult:
    """`timed_out`: the probe's deadline settled it (no answer came in time)."""
    if isinstance(outcome, NotMade):
        return ProbeResult(False, latency, outcome.detail, Cause.LOCAL)
    ok, detail = outcome
    return ProbeResult(ok, latency, printable(detail), timed_out=timed_out)


def failed(reason: Failure | BaseException, context: str = "") -> Outcome:
    """The outcome of an error (a Failure or an exception): NotMade when it is ours (out of
    descriptors), else a failure of the target, described after `context`."""
    shortage = local_shortage(reason)
    if shortage is not None:
        return NotMade(shortage)
    return False, context + error_detail(reason)


def _nothing() -> None:
    pass


def no_answer(icmp: str | None) -> Verdict:
    """The verdict at the deadline of a UDP probe that got no answer: "timeout", or
    "no reply; <the last ICMP error> seen" when ICMP errors came. Anyone who sees the request
    can forge one (RFC 5927 section 4.1: the kernel checks only the quoted addresses and
    ports), so an ICMP error never ends a probe early: it is named if the answer never comes."""
    return (False, f"no reply; {icmp} seen") if icmp else TIMED_OUT


class UdpExchange(DatagramProtocol):
    """A question over connected UDP, asked again at each of `resend_at` seconds, until
    `judge` gives a verdict on an answer. Connected: the kernel drops strangers' datagrams.
    An ICMP error is remembered (`icmp`), never a verdict: the answer may still come."""

    noisy = False
    resend_at: tuple[float, ...] = ()

    def __init__(
        self, address: str, port: int, done: Deferred[Outcome], clock: IReactorTime
    ) -> None:
        self.address, self.port, self.done, self.clock = address, port, done, clock
        self.timers: list[IDelayedCall] = []
        self.icmp: str | None = None  # the last ICMP error reported, e.g. "ICMP port unreachable"

    def question(self, local: tuple[str, int]) -> bytes:
        raise NotImplementedError

    def judge(self, datagram: bytes) -> Verdict | None:
        """The verdict on an answer; None: not an answer to our question (ignore it)."""
        raise NotImplementedError

    def startProtocol(self) -> None:
        assert self.transport is not None  # set by the port before it starts us
        self.transport.connect(self.address, self.port)
        local = self.transport.getHost()
        self.message = self.question((local.host, local.port))
        self.transport.write(self.message, None)  # connected: to its peer
        self.timers = [self.clock.callLater(at, self._resend) for at in self.resend_at]

    def _resend(self) -> None:
        # Our timers run while the port holds us: stopProtocol, as it lets go, ends them.
        assert self.transport is not None
        if not self.done.called:
            self.transport.write(self.message, None)

    def datagramReceived(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if not self.done.called and (verdict := self.judge(datagram)) is not None:
            self.done.callback(verdict)

    def icmpReceived(self, number: int) -> None:
        """The kernel reported an ICMP error (`number`, a key of ICMP_ERRORS) for our socket."""
        self.icmp = ICMP_ERRORS[number]

    def connectionRefused(self) -> None:
        # Twisted's name for ECONNREFUSED read on a connected UDP socket
        self.icmpReceived(errno.ECONNREFUSED)

    def unanswered(self) -> Verdict:
        return no_answer(self.icmp)

    def stopProtocol(self) -> None:
        self.cleanup()
        if not self.done.called:  # the port closed under us (not by an ICMP error)
            self.done.callback((False, "UDP socket closed"))

    def cleanup(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()


class IcmpTolerantPort(udp.Port):
    """A connected UDP port that outlives ICMP errors, passing each to its exchange's
    `icmpReceived`. Twisted would close it: its epoll and poll reactors take a pending error
    without data (EPOLLERR without EPOLLIN) for a disconnection, and its `doRead` lets any
    errno but ECONNREFUSED escape; the answer to our question could then never arrive."""

    protocol: UdpExchange

    def doRead(self) -> None:
        try:
            # ECONNREFUSED: Twisted calls protocol.connectionRefused. Not super(): see
            # untyped_calls_exclude in setup.cfg.
            udp.Port.doRead(self)
        except OSError as exc:
            if exc.errno not in ICMP_ERRORS:
                raise
            self.protocol.icmpReceived(exc.errno)

    def write(self, datagram: bytes, addr: tuple[str, int] | None = None) -> None:
        """Send on the connected socket. A pending ICMP error fails the send that finds it,
        which clears it: report it and send again."""
        if not self._connectedAddr:
            return super().write(datagram, addr)
        try:
            self.socket.send(datagram)
            return
        except OSError as exc:
            if exc.errno not in ICMP_ERRORS:
                raise
            self.protocol.icmpReceived(exc.errno)
        self.socket.send(datagram)

    def connectionLost(self, reason: Failure | None = None) -> None:
        # The reactor calls this with a reason on EPOLLERR; our own stopListening, without.
        if reason is not None and self._icmp_pending():
            self.startReading()
            return
        udp.Port.connectionLost(self, reason)  # not super(): see untyped_calls_exclude

    def _icmp_pending(self) -> bool:
        number = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # and clears it
        if number not in ICMP_ERRORS:
            return False
        self.protocol.icmpReceived(number)
        return True


def listen_udp(protocol: UdpExchange, interface: str, reactor: IReactorFDSet) -> IcmpTolerantPort:
    """An ephemeral UDP port on `interface` for `protocol` (started: it asks its question).
    Raises CannotListenError, e.g. when out of descriptors."""
    port = IcmpTolerantPort(0, protocol, interface, reactor=reactor)
    port.startListening()
    return port


def probe_udp(
    host: str,
    port: int,
    exchange: Callable[[str, int, Deferred[Outcome]], UdpExchange],
    timeout: float,
    reactor: IProbeReactor,
) -> Deferred[ProbeResult]:
    """Resolve `host`, then run `exchange` from an ephemeral port of the right family, for
    at most `timeout` seconds; without an answer by then the verdict is `no_answer`."""
    opened: list[tuple[UdpExchange, IcmpTolerantPort]] = []

    def attempt(done: Deferred[Outcome]) -> Callable[[], None]:
        def start(address: str) -> None:
            if done.called:
                return
            try:
                protocol = exchange(address, port, done)
                interface = "::" if ipaddress.ip_address(address).version == 6 else "0.0.0.0"
                opened.append((protocol, listen_udp(protocol, interface, reactor)))
            except Exception as exc:  # no socket (EMFILE...): not a name look-up's failure
                if not done.called:
                    done.callback(failed(exc, "cannot start: "))

        def unresolved(reason: Failure) -> None:
            if not done.called:
                done.callback(failed(reason, "DNS: "))

        resolve(host, reactor).addCallbacks(start, unresolved)

        def cleanup() -> None:
            for protocol, listening in opened:
                protocol.cleanup()
                listening.stopListening()

        return cleanup

    def at_deadline() -> Outcome:
        return opened[0][0].unanswered() if opened else TIMED_OUT

    return run_probe(attempt, timeout, reactor, at_deadline)


def resolve(host: str, reactor: IReactorCore) -> Deferred[str]:
    """An IP address for `host` (itself when it is one)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return reactor.resolve(host)
    done: Deferred[str] = Deferred()
    done.callback(host)
    return done
