"""What every probe shares: a verdict within its own deadline, whatever happens.

A probe is started with `run_probe(attempt, timeout, clock)`. `attempt(done)` begins the
work, fires `done` with `(ok, detail)` when it knows, and returns a cleanup to call at the
end. The returned Deferred always fires with a ProbeResult, never with an error, and never
later than `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol

from xprov.monitor.state import ProbeResult

Verdict = tuple[bool, str]
Attempt = Callable[[Deferred[Verdict]], Callable[[], None]]


def run_probe(attempt: Attempt, timeout: float, clock: Any) -> Deferred[ProbeResult]:
    started = clock.seconds()
    done: Deferred[Verdict] = Deferred()

    def settle(verdict: Verdict) -> None:
        if not done.called:
            done.callback(verdict)

    timer = clock.callLater(timeout, settle, (False, "timeout"))
    watched: Deferred[Verdict] = Deferred()
    watched.addCallback(settle)
    try:
        cleanup = attempt(watched)
    except Exception as exc:  # a probe that cannot even start has failed, nothing more
        cleanup = _nothing
        settle((False, f"cannot start: {type(exc).__name__}: {exc}"))

    def finish(verdict: Verdict) -> ProbeResult:
        if timer.active():
            timer.cancel()
        with contextlib.suppress(Exception):  # a dead connection may not clean up; no matter
            cleanup()
        ok, detail = verdict
        return ProbeResult(ok, clock.seconds() - started, detail)

    return done.addCallback(finish)


def _nothing() -> None:
    pass


class UdpExchange(DatagramProtocol):
    """A question over connected UDP, asked again at each of `resend_at` seconds, until
    `judge` gives a verdict on an answer. Connected: the kernel drops strangers' datagrams
    and reports ICMP unreachable."""

    noisy = False
    resend_at: tuple[float, ...] = ()

    def __init__(self, address: str, port: int, done: Deferred[Verdict], clock: Any) -> None:
        self.address, self.port, self.done, self.clock = address, port, done, clock
        self.timers: list[Any] = []

    def question(self, local: tuple[str, int]) -> bytes:
        raise NotImplementedError

    def judge(self, datagram: bytes) -> Verdict | None:
        """The verdict on an answer; None: not an answer to our question (ignore it)."""
        raise NotImplementedError

    def startProtocol(self) -> None:
        self.transport.connect(self.address, self.port)
        local = self.transport.getHost()
        self.message = self.question((local.host, local.port))
        self.transport.write(self.message)
        self.timers = [self.clock.callLater(at, self._resend) for at in self.resend_at]

    def _resend(self) -> None:
        if not self.done.called:
            self.transport.write(self.message)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        if not self.done.called and (verdict := self.judge(datagram)) is not None:
            self.done.callback(verdict)

    def connectionRefused(self) -> None:
        if not self.done.called:
            self.done.callback((False, "ICMP port unreachable"))

    def stopProtocol(self) -> None:
        # Twisted's epoll reactor closes a connected UDP port on a pending ICMP error
        # (EPOLLERR) without reading it: the port ends here instead of connectionRefused.
        self.cleanup()
        self.connectionRefused()

    def cleanup(self) -> None:
        for timer in self.timers:
            if timer.active():
                timer.cancel()


def udp_attempt(
    host: str,
    port: int,
    exchange: Callable[[str, int, Deferred[Verdict]], UdpExchange],
    reactor: Any,
) -> Attempt:
    """Resolve `host`, then run `exchange` from an ephemeral port of the right family."""

    def attempt(done: Deferred[Verdict]) -> Callable[[], None]:
        opened: list[tuple[UdpExchange, Any]] = []

        def start(address: str) -> None:
            if done.called:
                return
            protocol = exchange(address, port, done)
            interface = "::" if ipaddress.ip_address(address).version == 6 else "0.0.0.0"
            opened.append((protocol, reactor.listenUDP(0, protocol, interface=interface)))

        resolve(host, reactor).addCallback(start).addErrback(
            lambda reason: done.called or done.callback((False, f"DNS: {error_detail(reason)}"))
        )

        def cleanup() -> None:
            for protocol, listening in opened:
                protocol.cleanup()
                listening.stopListening()

        return cleanup

    return attempt


def resolve(host: str, reactor: Any) -> Deferred[str]:
    """An IP address for `host` (itself when it is one)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return reactor.resolve(host)
    done: Deferred[str] = Deferred()
    done.callback(host)
    return done


def error_detail(reason: Any) -> str:
    """A short, secret-free description of a failure (a Failure or an exception)."""
    exc = getattr(reason, "value", reason)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:200] if text else name
