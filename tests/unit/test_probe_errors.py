"""Probe errors labelled by their real cause: this process out of file descriptors is
"out of file descriptors (EMFILE)", a result that says nothing about the target (Cause.LOCAL),
never a "DNS:" failure or a connection error of the target's."""

from __future__ import annotations

import errno
import os
import socket
import struct

import pymysql
import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from xprov.config import DbService, SipService, StunService
from xprov.monitor import mysql, sip, stun
from xprov.monitor import probe as probing
from xprov.monitor.loop import _never_fails
from xprov.monitor.probe import NotMade, error_detail, failed, local_shortage
from xprov.monitor.state import Cause, ProbeResult

EMFILE = OSError(errno.EMFILE, "Too many open files")
ENFILE = OSError(errno.ENFILE, "Too many open files in system")
OUT = "out of file descriptors (EMFILE)"


def raised_from(cause: BaseException, exc: BaseException) -> BaseException:
    try:
        raise exc from cause
    except BaseException as raised:
        return raised


def raised_while(handling: BaseException, exc: BaseException) -> BaseException:
    try:
        try:
            raise handling
        except BaseException:
            raise exc  # noqa: B904 - the implicit context is what is tested
    except BaseException as raised:
        return raised


def pymysql_connect_error() -> BaseException:
    """What PyMySQL raises when its socket cannot be made (connections.py)."""
    exc = pymysql.err.OperationalError(
        2003, f"Can't connect to MySQL server on '127.0.0.1' ({EMFILE})"
    )
    exc.original_exception = EMFILE
    return exc


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        (EMFILE, OUT),
        (ENFILE, "out of file descriptors (ENFILE)"),
        (Failure(EMFILE), OUT),
        (error.CannotListenError("0.0.0.0", 0, EMFILE), OUT),  # listenUDP
        (error.getConnectError(EMFILE), OUT),  # connectTCP: ConnectBindError(24, ...)
        (Failure(error.getConnectError(EMFILE)), OUT),
        (pymysql_connect_error(), OUT),
        (raised_from(EMFILE, RuntimeError("wrapped")), OUT),
        (raised_while(EMFILE, ValueError("while handling")), OUT),
    ],
)
def test_out_of_descriptors_is_named_whatever_wraps_it(reason, label) -> None:
    assert local_shortage(reason) == label
    assert error_detail(reason) == label
    assert failed(reason, "DNS: ") == NotMade(label)  # and never blamed on the target


@pytest.mark.parametrize(
    ("reason", "detail"),
    [
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            "ConnectionRefusedError",
        ),
        (error.CannotListenError("0.0.0.0", 0, OSError(errno.EADDRINUSE, "in use")), "Cannot"),
        (error.ConnectionRefusedError(), "ConnectionRefusedError"),
        (error.DNSLookupError("no such host"), "DNSLookupError: DNS lookup failed"),
        (TimeoutError(), "TimeoutError"),
    ],
)
def test_other_errors_stay_the_targets(reason, detail) -> None:
    assert local_shortage(reason) is None
    assert error_detail(reason).startswith(detail)
    outcome = failed(reason, "DNS: ")
    assert outcome == (False, "DNS: " + error_detail(reason))


def test_a_cycle_of_causes_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    assert local_shortage(a) is None
    assert error_detail(a) == "RuntimeError: a"


def test_a_cause_too_deep_is_not_followed() -> None:
    exc: BaseException = EMFILE
    for n in range(7):
        exc = raised_from(exc, RuntimeError(str(n)))
    assert local_shortage(exc) == OUT  # eight in the chain: followed
    assert local_shortage(raised_from(exc, RuntimeError("ninth"))) is None


class NoSockets(Clock):
    """A reactor out of descriptors (with `no_sockets`): no UDP socket can be made, and no
    name resolved."""

    def resolve(self, name, timeout=(1, 3, 11, 45)):
        return fail(error.DNSLookupError(name))


@pytest.fixture
def no_sockets(monkeypatch) -> None:
    """socket() fails with EMFILE for the probes' UDP ports, as out of descriptors."""

    def create(port):
        raise EMFILE

    monkeypatch.setattr(probing.IcmpTolerantPort, "createInternetSocket", create)


def result_of(deferred) -> ProbeResult:
    results: list[ProbeResult] = []
    deferred.addCallback(results.append)
    assert results, "the probe gave no verdict at once"
    return results[0]


@pytest.mark.parametrize(
    "probe",
    [
        lambda r: sip.probe_options(SipService("127.0.0.1", 5060, "udp", 600), 1.0, r),
        lambda r: stun.probe_binding(StunService("127.0.0.1", 3478), 1.0, r),
    ],
    ids=["sip", "stun"],
)
def test_udp_probes_without_a_socket_are_not_made(probe, no_sockets) -> None:
    """The issue's "DNS: CannotListenError ... Too many open files": no DNS was involved."""
    result = result_of(probe(NoSockets()))
    assert result == ProbeResult(False, 0.0, OUT, Cause.LOCAL)


def test_a_failed_name_look_up_is_still_dns_and_the_targets() -> None:
    result = result_of(
        sip.probe_options(SipService("sip.invalid", 5060, "udp", 600), 1.0, NoSockets())
    )
    assert result.detail.startswith("DNS: DNSLookupError") and result.cause is Cause.TARGET


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_sip_over_tcp_without_a_socket_is_not_made(transport) -> None:
    reactor = MemoryReactorClock()
    target = SipService("127.0.0.1", 5060, transport, 600)
    probing = sip.probe_options(target, 1.0, reactor)
    _, _, factory, _, _ = reactor.tcpClients[0]
    # What tcp.Client reports when socket() fails: ConnectBindError(24, ...)
    factory.clientConnectionFailed(None, Failure(error.getConnectError(EMFILE)))
    assert result_of(probing) == ProbeResult(False, 0.0, OUT, Cause.LOCAL)


def test_sip_over_tcp_refused_is_still_the_targets() -> None:
    reactor = MemoryReactorClock()
    probing = sip.probe_options(SipService("127.0.0.1", 5060, "tcp", 600), 1.0, reactor)
    _, _, factory, _, _ = reactor.tcpClients[0]
    factory.clientConnectionFailed(None, Failure(error.ConnectionRefusedError()))
    assert result_of(probing) == ProbeResult(False, 0.0, "connection refused", Cause.TARGET)


def test_database_probe_without_a_socket_is_not_made(monkeypatch) -> None:
    def connect(db, timeout):
        raise pymysql_connect_error()

    monkeypatch.setattr(mysql.database, "connect", connect)
    db = DbService("127.0.0.1", 3306, "provisioning", "prov", "provpass")
    assert mysql.check(db, 1.0) == NotMade(OUT)
    assert mysql.DatabaseProbe(db, 1.0).check() == NotMade(OUT)


def test_a_probe_that_raises_is_labelled_too() -> None:
    def probe():
        raise error.CannotListenError("0.0.0.0", 0, EMFILE)

    assert result_of(_never_fails(probe)) == ProbeResult(False, 0.0, OUT, Cause.LOCAL)
    refused = result_of(_never_fails(lambda: fail(ConnectionRefusedError("refused"))))
    assert refused == ProbeResult(False, 0.0, "ConnectionRefusedError: refused", Cause.TARGET)


def test_xprov_probe_says_a_probe_was_not_made_rather_than_down() -> None:
    from xprov import status_text

    rows = [
        {"target": "sip@chicago", "probe": "sip udp 127.0.0.1:5060", "ok": False}
        | {"cause": "local", "latency_ms": 0.0, "detail": OUT},
        {"target": "sip@virginia", "probe": "sip udp 127.0.0.2:5070", "ok": False}
        | {"cause": "target", "latency_ms": 1000.0, "detail": "timeout"},
        {"target": "stun@chicago", "probe": "stun udp 127.0.0.1:3478", "ok": True}
        | {"cause": "target", "latency_ms": 0.6, "detail": "mapped 127.0.0.1:4000"},
    ]
    lines = status_text.probe_table(rows).splitlines()
    assert lines[1].split()[:5] == ["sip@chicago", "sip", "udp", "127.0.0.1:5060", "NOT"]
    assert lines[1].endswith(OUT)
    assert lines[2].split()[4] == "DOWN" and lines[3].split()[4] == "up"


# ICMP errors on UDP probes: anyone who sees the request can forge one, so it never ends a
# probe; the probe waits for the answer until its deadline and names the ICMP error if none
# came. The socket layer is a fake here (`fake_udp`); tests/integration/test_probes.py has
# the kernel's real ICMP errors and forged ones.


class FakeDatagramTransport:
    """What IcmpTolerantPort offers a UdpExchange, recording what is sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.peer: tuple[str, int] | None = None
        self.stopped = False

    def connect(self, host: str, port: int) -> None:
        self.peer = (host, port)

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "127.0.0.1", 40000)

    def write(self, datagram: bytes, addr=None) -> None:
        self.sent.append(datagram)

    def stopListening(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_udp(monkeypatch) -> list[tuple[probing.UdpExchange, FakeDatagramTransport]]:
    """Every UDP exchange the probes start, on a fake transport."""
    opened: list[tuple[probing.UdpExchange, FakeDatagramTransport]] = []

    def listen(protocol, interface, reactor):
        transport = FakeDatagramTransport()
        protocol.makeConnection(transport)
        opened.append((protocol, transport))
        return transport

    monkeypatch.setattr(probing, "listen_udp", listen)
    return opened


def sip_answer(request: bytes) -> bytes:
    """Kamailio's 200 OK to an OPTIONS request: Via, From, Call-ID and CSeq echoed."""
    echoed = [
        line
        for line in request.decode().split("\r\n")
        if line.split(":")[0] in ("Via", "From", "Call-ID", "CSeq")
    ]
    lines = ["SIP/2.0 200 OK", *echoed, "To: <sip:127.0.0.1:5060>;tag=k1", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def stun_answer(request: bytes) -> bytes:
    """A Binding Success for the request's transaction, XOR-MAPPED-ADDRESS 127.0.0.1:40000."""
    transaction = request[8:20]
    key = struct.pack("!I", stun.MAGIC_COOKIE) + transaction
    address = bytes(a ^ b for a, b in zip(bytes([127, 0, 0, 1]), key, strict=False))
    value = struct.pack("!BBH", 0, 1, 40000 ^ (stun.MAGIC_COOKIE >> 16)) + address
    attribute = struct.pack("!HH", stun.XOR_MAPPED_ADDRESS, len(value)) + value
    head = struct.pack("!HHI", stun.BINDING_SUCCESS, len(attribute), stun.MAGIC_COOKIE)
    return head + transaction + attribute


UDP_PROBES = {
    "sip": (
        lambda clock, timeout: sip.probe_options(
            SipService("127.0.0.1", 5060, "udp", 600), timeout, clock
        ),
        sip_answer,
        "200 OK",
        sip.RETRANSMIT_AT,
    ),
    "stun": (
        lambda clock, timeout: stun.probe_binding(StunService("127.0.0.1", 3478), timeout, clock),
        stun_answer,
        "mapped 127.0.0.1:40000",
        stun.RETRANSMIT_AT,
    ),
}


def pending(deferred) -> bool:
    return not deferred.called


def test_no_answer_names_the_icmp_error_seen() -> None:
    assert probing.no_answer(None) == (False, "timeout")
    assert probing.no_answer("ICMP port unreachable") == (
        False,
        "no reply; ICMP port unreachable seen",
    )


@pytest.mark.parametrize("kind", UDP_PROBES)
@pytest.mark.parametrize(
    "icmp",
    [
        lambda exchange: exchange.connectionRefused(),  # what Twisted calls for ECONNREFUSED
        lambda exchange: exchange.icmpReceived(errno.EHOSTUNREACH),  # IcmpTolerantPort, others
    ],
    ids=["port-unreachable", "host-unreachable"],
)
def test_an_icmp_error_then_the_answer_is_up(fake_udp, kind, icmp) -> None:
    start, answer, detail, _ = UDP_PROBES[kind]
    clock = Clock()
    probing_now = start(clock, 1.0)
    ((exchange, transport),) = fake_udp
    clock.advance(0.25)
    icmp(exchange)
    assert pending(probing_now)  # a forged ICMP error would end it here
    clock.advance(0.25)
    exchange.datagramReceived(answer(transport.sent[0]), transport.peer)
    assert result_of(probing_now) == ProbeResult(True, 0.5, detail, Cause.TARGET)
    assert transport.stopped


@pytest.mark.parametrize("kind", UDP_PROBES)
def test_an_icmp_error_without_an_answer_fails_at_the_deadline(fake_udp, kind) -> None:
    start, _, _, retransmit_at = UDP_PROBES[kind]
    clock = Clock()
    timeout = 2.0
    probing_now = start(clock, timeout)
    ((exchange, transport),) = fake_udp
    clock.advance(0.1)
    exchange.connectionRefused()
    clock.advance(timeout - 0.1 - 0.001)
    assert pending(probing_now)
    # the request was still retransmitted after the ICMP error, as after a loss
    assert transport.sent == [transport.sent[0]] * (1 + len(retransmit_at))
    clock.advance(0.001)
    assert result_of(probing_now) == ProbeResult(
        False, timeout, "no reply; ICMP port unreachable seen", Cause.TARGET, timed_out=True
    )
    assert transport.stopped


@pytest.mark.parametrize("kind", UDP_PROBES)
def test_the_last_icmp_error_is_named_and_none_is_a_timeout(fake_udp, kind) -> None:
    start, _, _, _ = UDP_PROBES[kind]
    clock = Clock()
    silent = start(clock, 1.0)
    clock.advance(1.0)
    assert result_of(silent) == ProbeResult(False, 1.0, "timeout", Cause.TARGET, timed_out=True)
    refused = start(clock, 1.0)
    exchange = fake_udp[1][0]
    exchange.connectionRefused()
    exchange.icmpReceived(errno.EHOSTUNREACH)
    clock.advance(1.0)
    assert result_of(refused).detail == "no reply; ICMP host unreachable seen"


@pytest.mark.parametrize("kind", UDP_PROBES)
def test_a_port_closed_under_the_probe_ends_it(fake_udp, kind) -> None:
    """Only an ICMP error is kept from closing the port; any other close ends the probe."""
    start, _, _, _ = UDP_PROBES[kind]
    clock = Clock()
    probing_now = start(clock, 1.0)
    ((exchange, _),) = fake_udp
    exchange.doStop()
    assert result_of(probing_now) == ProbeResult(False, 0.0, "UDP socket closed", Cause.TARGET)


class ErringSocket:
    """A connected UDP socket whose kernel has `errors` pending: each is reported once, by
    the next recv, send or SO_ERROR read, as Linux does."""

    def __init__(self, *errors: int) -> None:
        self.errors = list(errors)
        self.inbox = [(b"answer", ("127.0.0.1", 5060))]
        self.sent: list[bytes] = []
        self.closed = False

    def _raise_pending(self) -> None:
        if self.errors:
            number = self.errors.pop(0)
            raise OSError(number, os.strerror(number))

    def recvfrom(self, size: int):
        self._raise_pending()
        if not self.inbox:
            raise BlockingIOError(errno.EAGAIN, "empty")
        return self.inbox.pop(0)

    def send(self, datagram: bytes) -> int:
        self._raise_pending()
        self.sent.append(datagram)
        return len(datagram)

    def getsockopt(self, level: int, option: int) -> int:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR)
        return self.errors.pop(0) if self.errors else 0

    def close(self) -> None:
        self.closed = True


class Recorder(probing.UdpExchange):
    def __init__(self) -> None:
        super().__init__("127.0.0.1", 5060, Deferred(), Clock())
        self.answers: list[bytes] = []

    def judge(self, datagram: bytes) -> None:
        self.answers.append(datagram)


def port_with(*errors: int) -> tuple[probing.IcmpTolerantPort, Recorder, ErringSocket]:
    reactor = MemoryReactorClock()
    recorder = Recorder()
    port = probing.IcmpTolerantPort(0, recorder, "127.0.0.1", reactor=reactor)
    port.socket, port._connectedAddr = ErringSocket(*errors), ("127.0.0.1", 5060)
    port.connected, port.fileno = True, lambda: 99
    recorder.transport, recorder.numPorts = port, 1  # started; the fake is already connected
    return port, recorder, port.socket


@pytest.mark.parametrize(
    ("number", "label"),
    [(errno.ECONNREFUSED, "ICMP port unreachable"), (errno.EHOSTUNREACH, "ICMP host unreachable")],
)
def test_the_port_reads_past_an_icmp_error(number, label) -> None:
    port, recorder, _ = port_with(number)
    port.doRead()  # the error, alone
    assert recorder.icmp == label and recorder.answers == []
    port.doRead()
    assert recorder.answers == [b"answer"]


@pytest.mark.parametrize("number", [errno.ECONNREFUSED, errno.EHOSTUNREACH])
def test_a_send_that_finds_an_icmp_error_is_made_again(number) -> None:
    port, recorder, sock = port_with(number)
    port.write(b"OPTIONS")
    assert sock.sent == [b"OPTIONS"] and recorder.icmp == probing.ICMP_ERRORS[number]


def test_the_port_stays_open_when_the_reactor_sees_an_icmp_error() -> None:
    """EPOLLERR without EPOLLIN: the epoll and poll reactors take the port for lost."""
    port, recorder, sock = port_with(errno.EHOSTUNREACH)
    port.reactor.removeReader(port)
    port.connectionLost(Failure(error.ConnectionDone()))
    assert recorder.icmp == "ICMP host unreachable"
    assert port in port.reactor.getReaders() and not sock.closed
    assert not recorder.done.called


@pytest.mark.parametrize("pending", [[], [errno.EBADF]], ids=["nothing", "not-icmp"])
def test_any_other_loss_still_closes_the_port(pending) -> None:
    port, recorder, sock = port_with(*pending)
    port.connectionLost(Failure(error.ConnectionDone()))
    assert sock.closed and recorder.icmp is None
    assert result_of(recorder.done) == (False, "UDP socket closed")


def test_other_errors_are_not_hidden() -> None:
    port, recorder, sock = port_with(errno.EBADF)
    with pytest.raises(OSError):
        port.write(b"OPTIONS")
    sock.errors = [errno.EBADF]
    with pytest.raises(OSError):
        port.doRead()
    assert sock.sent == [] and recorder.icmp is None
