"""SIP OPTIONS probe (RFC 3261 8.1.1, 11, 17.1) over UDP, TCP or TLS.

Each probe has a fresh branch, Call-ID and From tag, a neutral User-Agent and
`Max-Forwards: 70`; the reply must match all three of branch, Call-ID and CSeq. Over UDP the
request is retransmitted at +0.5 s and +1.5 s inside the deadline. 2xx is up; 408, 500, 503,
504, a refused TCP connection and the deadline are down; any other final reply proves the
server process answers and counts as up unless configured otherwise. Over UDP an ICMP error
ends nothing (anyone can forge one): without a reply by the deadline the detail names it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from twisted.internet import endpoints, ssl
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
    ITCPTransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from xprov import sipmessage
from xprov.config import SipService
from xprov.monitor.errors import NotMade
from xprov.monitor.probe import (
    Outcome,
    UdpExchange,
    Verdict,
    failed,
    probe_udp,
    run_probe,
)
from xprov.monitor.registry import ProbeContext
from xprov.monitor.state import ProbeResult
from xprov.sipmessage import MAX_MESSAGE, Request, Response, hostport, parse_response

if TYPE_CHECKING:
    from xprov.monitor.probe import IProbeReactor

DOWN_CODES = frozenset({408, 500, 503, 504})
USER_AGENT = "xprov-monitor"
RETRANSMIT_AT = (0.5, 1.5)


def build_options(
    target: SipService, transport: str, local: tuple[str, int], request: Request
) -> bytes:
    here = hostport(*local)
    there = hostport(target.host, target.port)
    uri = f"sip:{there}" + ("" if transport == "udp" else f";transport={transport}")
    lines = [
        f"OPTIONS {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {here};branch={request.branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:xprov@{here}>;tag={request.tag}",
        f"To: <sip:{there}>",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq} OPTIONS",
        f"User-Agent: {USER_AGENT}",
        "Accept: application/sdp",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def matches(response: Response, request: Request) -> bool:
    """The reply answers our OPTIONS (branch, Call-ID and CSeq)."""
    return sipmessage.matches(response, request, "OPTIONS")


def verdict(response: Response, down_codes: Collection[int] = DOWN_CODES) -> Verdict | None:
    """None while provisional (1xx): keep waiting for the final reply."""
    if response.status < 200:
        return None
    detail = f"{response.status} {response.reason}".strip()
    return (200 <= response.status < 300 or response.status not in down_codes), detail


class _UdpOptions(UdpExchange):
    resend_at = RETRANSMIT_AT

    def __init__(
        self,
        target: SipService,
        request: Request,
        down_codes: Collection[int],
        address: str,
        port: int,
        done: Deferred[Outcome],
        clock: IReactorTime,
    ) -> None:
        super().__init__(address, port, done, clock)
        self.target, self.request, self.down_codes = target, request, down_codes

    def question(self, local: tuple[str, int]) -> bytes:
        return build_options(self.target, "udp", local, self.request)

    def judge(self, datagram: bytes) -> Verdict | None:
        response = parse_response(datagram)
        if response is None or not matches(response, self.request):
            return None
        return verdict(response, self.down_codes)


class _StreamOptions(Protocol):
    transport: ITCPTransport | None  # TCP, or TLS over it (ITLSTransport extends ITCPTransport)

    def __init__(
        self,
        target: SipService,
        request: Request,
        done: Deferred[Outcome],
        down_codes: Collection[int],
    ) -> None:
        self.target, self.request, self.done, self.down_codes = target, request, done, down_codes
        self.buffer = b""

    def connectionMade(self) -> None:
        assert self.transport is not None  # makeConnection sets it first
        local = self.transport.getHost()
        self.transport.write(
            build_options(
                self.target, self.target.transport, (local.host, local.port), self.request
            )
        )

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer and not self.done.called:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            response = parse_response(head + b"\r\n\r\n")
            length = _content_length(response)
            if len(rest) < length:
                return  # the body is still on its way
            self.buffer = rest[length:]
            if response is not None and matches(response, self.request):
                result = verdict(response, self.down_codes)
                if result is not None:
                    self.done.callback(result)
        if len(self.buffer) > MAX_MESSAGE and not self.done.called:
            self.done.callback((False, "reply too large"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if not self.done.called:
            self.done.callback(failed(reason, "connection closed: "))


def _content_length(response: Response | None) -> int:
    text = response.first("content-length") if response else ""
    return int(text) if text.isdigit() else 0


def _tls_options(
    target: SipService, server_name: str | None, ca: str | None
) -> IOpenSSLClientConnectionCreator:
    trust = None
    if ca:
        with open(ca, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
    return ssl.optionsForClientTLS(server_name or target.host, trustRoot=trust)


def probe_options(
    target: SipService,
    timeout: float,
    reactor: IProbeReactor,
    down_codes: Collection[int] = DOWN_CODES,
    tls_server_name: str | None = None,
    tls_ca: str | None = None,
) -> Deferred[ProbeResult]:
    """One OPTIONS round trip to `target` over its own transport, bounded by `timeout`."""
    request = Request.fresh()
    if target.transport == "udp":
        return probe_udp(
            target.host,
            target.port,
            lambda address, port, done: _UdpOptions(
                target, request, down_codes, address, port, done, reactor
            ),
            timeout,
            reactor,
        )

    def stream(done: Deferred[Outcome]) -> Callable[[], None]:
        protocol = _StreamOptions(target, request, done, down_codes)
        endpoint = _tcp_endpoint(target.host, target.port, timeout, reactor)
        if target.transport == "tls":
            endpoint = endpoints.wrapClientTLS(
                _tls_options(target, tls_server_name, tls_ca), endpoint
            )
        connecting = endpoints.connectProtocol(endpoint, protocol)

        def refused(reason: Failure) -> None:
            if not done.called:
                done.callback(_connect_error(reason))

        connecting.addErrback(refused)

        def cleanup() -> None:
            connecting.cancel()
            if protocol.transport is not None:
                protocol.transport.abortConnection()

        return cleanup

    return run_probe(stream, timeout, reactor)


def _tcp_endpoint(
    host: str, port: int, timeout: float, reactor: IReactorTCP
) -> IStreamClientEndpoint:
    """An IP literal gets a plain endpoint: HostnameEndpoint would hold a refusal back for
    its happy-eyeballs delay (0.3 s) before reporting it."""
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout)
    kind = endpoints.TCP6ClientEndpoint if version == 6 else endpoints.TCP4ClientEndpoint
    return kind(reactor, host, port, timeout=timeout)


def _connect_error(reason: Failure) -> Outcome:
    outcome = failed(reason)
    if isinstance(outcome, NotMade):
        return outcome  # no socket for the connection: ours, not the target's
    return (False, "connection refused") if "refused" in outcome[1].lower() else outcome


class SipProbe:
    """The OPTIONS probe as a registry `Probe`, bound to the reactor and the final replies
    that mean down (`[monitor] sip_down_codes`)."""

    def __init__(self, context: ProbeContext) -> None:
        self.reactor = context.reactor
        self.settings = self.down_codes = context.settings.sip_down_codes

    def describe(self, target: SipService) -> str:
        return f"sip {target.transport} {target.host}:{target.port}"

    def probe(self, target: SipService, deadline: float) -> Deferred[ProbeResult]:
        return probe_options(
            target, deadline, self.reactor, self.down_codes, target.tls_server_name, target.tls_ca
        )

    def close(self) -> None:
        pass  # nothing kept between rounds
