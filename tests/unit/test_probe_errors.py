"""Probe errors labelled by their real cause: this process out of file descriptors is
"out of file descriptors (EMFILE)", a result that says nothing about the target (Cause.LOCAL),
never a "DNS:" failure or a connection error of the target's."""

from __future__ import annotations

import errno

import pymysql
import pytest
from twisted.internet import error
from twisted.internet.defer import fail
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from xprov.config import DbService, SipService, StunService
from xprov.monitor import _never_fails, mysql, sip, stun
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
    """A reactor out of descriptors: every socket it is asked for fails with EMFILE."""

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        raise error.CannotListenError(interface, port, EMFILE)

    def resolve(self, name, timeout=(1, 3, 11, 45)):
        return fail(error.DNSLookupError(name))


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
def test_udp_probes_without_a_socket_are_not_made(probe) -> None:
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
    from xprov import cli

    rows = [
        {"target": "sip@chicago", "probe": "sip udp 127.0.0.1:5060", "ok": False}
        | {"cause": "local", "latency_ms": 0.0, "detail": OUT},
        {"target": "sip@virginia", "probe": "sip udp 127.0.0.2:5070", "ok": False}
        | {"cause": "target", "latency_ms": 1000.0, "detail": "timeout"},
        {"target": "stun@chicago", "probe": "stun udp 127.0.0.1:3478", "ok": True}
        | {"cause": "target", "latency_ms": 0.6, "detail": "mapped 127.0.0.1:4000"},
    ]
    lines = cli._table(rows).splitlines()
    assert lines[1].split()[:5] == ["sip@chicago", "sip", "udp", "127.0.0.1:5060", "NOT"]
    assert lines[1].endswith(OUT)
    assert lines[2].split()[4] == "DOWN" and lines[3].split()[4] == "up"
