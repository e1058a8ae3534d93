"""Every probe against real servers started from Debian packages: Kamailio (UDP, TCP, TLS),
coturn, MariaDB; killed (SIGKILL), stopped (SIGSTOP), a listener that never speaks, and
forged ICMP errors (raw sockets). Run through `xprov probe --json`, each verdict must come
within its deadline."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from twisted.internet.epollreactor import EPollReactor
from twisted.internet.pollreactor import PollReactor
from twisted.internet.selectreactor import SelectReactor

from tests.certs import authority
from tests.helpers import site_config, xprov
from tests.peers import Coturn, Kamailio, SilentListener, free_udp_tcp_port
from xprov.config import StunService
from xprov.monitor import probe as probing
from xprov.monitor import stun

TIMEOUT = 1.0
SLACK = 0.3  # process and scheduling noise on a loaded 2-core machine


def probe(tmp: Path, sites: dict, **monitor) -> tuple[int, dict[str, dict]]:
    config = site_config(tmp, sites, {"timeout": TIMEOUT, **monitor})
    done = xprov(config, "probe", "--json")
    assert done.stdout, done.stderr
    return done.returncode, {row["target"]: row for row in json.loads(done.stdout)}


def sip(peer: Kamailio, transport: str = "udp", **extra) -> dict:
    port = peer.tls_port if transport == "tls" else peer.port
    return {"sip": {"host": peer.host, "port": port, "transport": transport, **extra}}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return authority(tmp_path_factory.mktemp("cert"), "sip.test", "DNS:sip.test")


@pytest.fixture
def kamailio(tmp_path, certificate):
    with Kamailio(
        tmp_path / "kamailio", free_udp_tcp_port(), tls_port=free_udp_tcp_port(), cert=certificate
    ) as peer:
        yield peer


@pytest.fixture
def backup(tmp_path):
    with Kamailio(tmp_path / "backup", free_udp_tcp_port(), host="127.0.0.2") as peer:
        yield peer


@pytest.fixture
def coturn(tmp_path):
    with Coturn(tmp_path / "coturn", free_udp_tcp_port()) as peer:
        yield peer


def db(server, **extra) -> dict:
    return {
        "db": {
            "host": server.host,
            "port": server.port,
            "database": server.DATABASE,
            "user": server.USER,
            "password": server.PASSWORD,
            **extra,
        }
    }


def within_deadline(row: dict) -> None:
    assert row["latency_ms"] <= (TIMEOUT + SLACK) * 1000, row


def test_everything_up(tmp_path, kamailio, backup, coturn, mariadb) -> None:
    code, rows = probe(
        tmp_path,
        {
            "chicago": {
                **sip(kamailio),
                "stun": {"host": "127.0.0.1", "port": coturn.port},
                **db(mariadb),
            },
            "virginia": {
                **sip(backup),
                "stun": {"host": "127.0.0.1", "port": coturn.port},
                **db(mariadb),
            },
        },
    )
    assert code == 0
    assert rows["sip@chicago"]["ok"] and rows["sip@chicago"]["detail"] == "200 OK"
    assert rows["sip@virginia"]["ok"]
    assert rows["stun@chicago"]["ok"] and rows["stun@chicago"]["detail"].startswith(
        "mapped 127.0.0.1:"
    )
    assert rows["db@chicago"]["ok"]
    assert rows["db@chicago"]["detail"] == "SELECT 1 ok, read_only=0 (new connection)"
    for row in rows.values():
        within_deadline(row)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_sip_transports(tmp_path, kamailio, backup, certificate, transport) -> None:
    extra = (
        {"tls_server_name": "sip.test", "tls_ca": str(certificate[0])}
        if (transport == "tls")
        else {}
    )
    _, rows = probe(
        tmp_path, {"chicago": sip(kamailio, transport, **extra), "virginia": sip(backup)}
    )
    assert rows["sip@chicago"]["ok"], rows["sip@chicago"]
    assert (
        rows["sip@chicago"]["probe"]
        == f"sip {transport} 127.0.0.1:{kamailio.tls_port if transport == 'tls' else kamailio.port}"
    )


def test_tls_with_an_untrusted_certificate_is_down(tmp_path, kamailio, backup) -> None:
    _, rows = probe(
        tmp_path,
        {"chicago": sip(kamailio, "tls", tls_server_name="sip.test"), "virginia": sip(backup)},
    )
    assert not rows["sip@chicago"]["ok"]
    within_deadline(rows["sip@chicago"])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_killed_softswitch(tmp_path, kamailio, backup, transport) -> None:
    kamailio.kill()
    code, rows = probe(tmp_path, {"chicago": sip(kamailio, transport), "virginia": sip(backup)})
    assert code == 1  # a primary is down
    row = rows["sip@chicago"]
    assert not row["ok"]
    if transport == "udp":
        # the kernel's ICMP port unreachable, which anyone could forge: named, not believed
        assert row["detail"] == "no reply; ICMP port unreachable seen"
        assert row["latency_ms"] >= TIMEOUT * 1000
        within_deadline(row)
    else:
        assert row["detail"] == "connection refused"
        assert row["latency_ms"] < 300  # refused at once: no waiting for the deadline
    assert rows["sip@virginia"]["ok"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_stopped_softswitch_times_out_at_the_deadline(
    tmp_path, kamailio, backup, transport
) -> None:
    kamailio.pause()
    try:
        _, rows = probe(tmp_path, {"chicago": sip(kamailio, transport), "virginia": sip(backup)})
    finally:
        kamailio.resume()
    row = rows["sip@chicago"]
    assert (row["ok"], row["detail"]) == (False, "timeout")
    assert row["latency_ms"] >= TIMEOUT * 1000
    within_deadline(row)


@pytest.mark.parametrize(
    ("code", "reason", "down_codes", "ok"),
    [
        (503, "Service Unavailable", None, False),
        (500, "Server Error", None, False),
        (404, "Not Found", None, True),
        (404, "Not Found", [404, 503], False),
    ],
)
def test_final_reply_verdicts(tmp_path, backup, code, reason, down_codes, ok) -> None:
    with Kamailio(tmp_path / "answers", free_udp_tcp_port(), code=code, reason=reason) as peer:
        monitor = {"sip_down_codes": down_codes} if down_codes else {}
        _, rows = probe(tmp_path, {"chicago": sip(peer), "virginia": sip(backup)}, **monitor)
    assert rows["sip@chicago"]["ok"] is ok
    assert rows["sip@chicago"]["detail"] == f"{code} {reason}"


def test_stun_killed_and_stopped(tmp_path, coturn, backup) -> None:
    sites = {
        "chicago": {**sip(backup), "stun": {"host": "127.0.0.1", "port": coturn.port}},
        "virginia": {**sip(backup), "stun": {"host": "127.0.0.1", "port": coturn.port}},
    }
    coturn.pause()
    try:
        _, rows = probe(tmp_path, sites)
    finally:
        coturn.resume()
    assert (rows["stun@chicago"]["ok"], rows["stun@chicago"]["detail"]) == (False, "timeout")
    within_deadline(rows["stun@chicago"])
    coturn.kill()
    _, rows = probe(tmp_path, sites)
    assert (rows["stun@chicago"]["ok"], rows["stun@chicago"]["detail"]) == (
        False,
        "no reply; ICMP port unreachable seen",
    )
    assert rows["stun@chicago"]["latency_ms"] >= TIMEOUT * 1000
    within_deadline(rows["stun@chicago"])


def test_database_verdicts(tmp_path, backup, mariadb) -> None:
    base = sip(backup)
    with SilentListener() as silent:
        _, rows = probe(
            tmp_path,
            {
                "chicago": {**base, **db(mariadb, password="wrong-Secret-1")},
                "virginia": {
                    **base,
                    "db": {
                        "host": silent.host,
                        "port": silent.port,
                        "database": "x",
                        "user": "x",
                        "password": "xxxx",
                    },
                },
            },
        )
    denied = rows["db@chicago"]
    assert not denied["ok"] and "Access denied" in denied["detail"]
    assert "wrong-Secret-1" not in json.dumps(rows)
    hung = rows["db@virginia"]
    assert (hung["ok"], hung["detail"]) == (False, "timeout")
    within_deadline(hung)

    _, rows = probe(
        tmp_path,
        {
            "chicago": {**base, **db(mariadb, expect_read_only=True)},
            "virginia": {**base, **db(mariadb, expect_read_only=False)},
        },
    )
    assert rows["db@chicago"] == {
        **rows["db@chicago"],
        "ok": False,
        "detail": "read_only is 0, expected 1",
    }
    assert rows["db@virginia"]["ok"]


def test_database_stopped_then_killed(tmp_path, backup, mariadb) -> None:
    sites = {"chicago": {**sip(backup), **db(mariadb)}, "virginia": {**sip(backup), **db(mariadb)}}
    mariadb.pause()
    try:
        _, rows = probe(tmp_path, sites)
    finally:
        mariadb.resume()
    assert (rows["db@chicago"]["ok"], rows["db@chicago"]["detail"]) == (False, "timeout")
    within_deadline(rows["db@chicago"])
    mariadb.kill()
    try:
        _, rows = probe(tmp_path, sites)
        assert not rows["db@chicago"]["ok"] and "Connection refused" in rows["db@chicago"]["detail"]
        assert rows["db@chicago"]["latency_ms"] < 300
    finally:
        mariadb.start()  # the session's other tests need it
    _, rows = probe(tmp_path, sites)
    assert rows["db@chicago"]["ok"]


def test_database_probe_keeps_its_connection(tmp_path, mariadb) -> None:
    from tests.inventory_db import db_service
    from xprov.monitor.mysql import DatabaseProbe

    probe = DatabaseProbe(db_service(mariadb), TIMEOUT, fresh_every=4)
    assert probe.check() == (True, "SELECT 1 ok, read_only=0 (new connection)")
    kept = probe.connection
    assert probe.check() == (True, "SELECT 1 ok, read_only=0")
    assert probe.check() == (True, "SELECT 1 ok, read_only=0")
    assert probe.connection is kept
    assert probe.check()[1].endswith("(new connection)")  # every fresh_every-th round
    assert probe.connection is not kept
    mariadb.pause()
    try:
        ok, detail = probe.check()  # the kept connection times out
    finally:
        mariadb.resume()
    assert not ok and "timed out" in detail and probe.connection is None
    assert probe.check()[1].endswith("(new connection)")
    mariadb.kill()
    try:
        ok, detail = probe.check()
        assert not ok and probe.connection is None
        ok, detail = probe.check()
        assert not ok and "Connection refused" in detail
    finally:
        mariadb.start()
    assert probe.check()[0]
    probe.close()


# Forged ICMP errors. Anyone who sees a UDP probe's request can send an ICMP error quoting it,
# from any address (the kernel checks only the quoted addresses and ports, RFC 5927 4.1):
# three of them used to fail three rounds and switch a healthy service.

FORGER_ADDRESS = "127.0.0.99"  # not the target's: no spoofing needed
FORGER_SECONDS = 10.0  # the forger's whole life, far beyond one probe's deadline
FORGER_FRAMES = 1_000_000  # frames looked at, at most (other sessions share loopback)
ETH_P_IP = 0x0800
ICMP_UNREACHABLE = 3
ICMP_PORT_UNREACHABLE, ICMP_FILTERED = 3, 13  # ECONNREFUSED, EHOSTUNREACH for the socket


def _checksum(data: bytes) -> int:
    data += b"\x00" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_unreachable(code: int, ip_packet: bytes) -> bytes:
    """An ICMP destination unreachable (RFC 792) quoting `ip_packet`'s IP header and the
    first 8 bytes of its payload (the UDP header)."""
    quoted = ip_packet[: (ip_packet[0] & 0x0F) * 4 + 8]
    message = struct.pack("!BBHI", ICMP_UNREACHABLE, code, 0, 0) + quoted
    return message[:2] + struct.pack("!H", _checksum(message)) + message[4:]


class IcmpForger(threading.Thread):
    """Answers the first UDP datagram seen on loopback for `host`:`port` with a forged ICMP
    unreachable of `code`, sent from FORGER_ADDRESS; calls `then` on the next datagram from
    the same source (the probe's retransmission: by then the prober has long read the error
    alone) or at its end."""

    def __init__(self, host: str, port: int, code: int, then: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.target = (socket.inet_aton(host), port)
        self.code, self.then = code, then
        self.forged = self.seen = 0  # datagrams seen from the first source
        self.source: bytes | None = None  # the first one's IP address and UDP port
        self.stopping = threading.Event()
        self.sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sniffer.bind(("lo", 0))
        self.sniffer.settimeout(0.2)
        self.sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        self.sender.bind((FORGER_ADDRESS, 0))

    def run(self) -> None:
        deadline = time.monotonic() + FORGER_SECONDS
        try:
            for _ in range(FORGER_FRAMES):
                if self.seen > 1 or self.stopping.is_set() or time.monotonic() > deadline:
                    return
                with contextlib.suppress(TimeoutError):
                    frame, (_, _, kind, _, _) = self.sniffer.recvfrom(65535)
                    if kind != socket.PACKET_OUTGOING:  # loopback shows each packet twice
                        self._look_at(frame[14:])
        finally:
            self.then()

    def _look_at(self, ip_packet: bytes) -> None:
        header = (ip_packet[0] & 0x0F) * 4
        if ip_packet[9] != socket.IPPROTO_UDP or len(ip_packet) < header + 8:
            return
        port = struct.unpack_from("!H", ip_packet, header + 2)[0]
        source = ip_packet[12:16] + ip_packet[header : header + 2]
        if (ip_packet[16:20], port) != self.target or self.source not in (None, source):
            return
        self.source = source
        self.seen += 1
        if self.seen == 1:
            prober = socket.inet_ntoa(ip_packet[12:16])
            self.sender.sendto(icmp_unreachable(self.code, ip_packet), (prober, 0))
            self.forged += 1

    def close(self) -> None:
        self.stopping.set()
        self.join(FORGER_SECONDS)
        self.sniffer.close()
        self.sender.close()


@contextlib.contextmanager
def forging(host: str, port: int, code: int, then: Callable[[], None]) -> Iterator[IcmpForger]:
    try:
        forger = IcmpForger(host, port, code, then)
    except PermissionError:
        pytest.skip("raw sockets need CAP_NET_RAW")
    forger.start()
    try:
        yield forger
    finally:
        forger.close()


@pytest.mark.parametrize("code", [ICMP_PORT_UNREACHABLE, ICMP_FILTERED], ids=["port", "filtered"])
def test_forged_icmp_does_not_fail_a_healthy_softswitch(tmp_path, kamailio, backup, code) -> None:
    # Kamailio is stopped until the retransmission, so the forged error comes first and
    # alone, as it can from anyone closer to xprov than the softswitch.
    kamailio.pause()
    try:
        with forging(kamailio.host, kamailio.port, code, kamailio.resume) as forger:
            _, rows = probe(tmp_path, {"chicago": sip(kamailio), "virginia": sip(backup)})
    finally:
        kamailio.resume()
    assert (forger.forged, forger.seen) == (1, 2)
    row = rows["sip@chicago"]
    assert (row["ok"], row["detail"]) == (True, "200 OK"), row
    within_deadline(row)


def test_forged_icmp_does_not_fail_a_healthy_stun_server(tmp_path, coturn, backup) -> None:
    stun_site = {**sip(backup), "stun": {"host": coturn.host, "port": coturn.port}}
    coturn.pause()
    try:
        with forging(coturn.host, coturn.port, ICMP_PORT_UNREACHABLE, coturn.resume) as forger:
            _, rows = probe(tmp_path, {"chicago": stun_site, "virginia": stun_site})
    finally:
        coturn.resume()
    assert (forger.forged, forger.seen) == (1, 2)
    for row in (rows["stun@chicago"], rows["stun@virginia"]):  # either got the forged error
        assert row["ok"] and row["detail"].startswith("mapped 127.0.0.1:"), row
        within_deadline(row)


# The port under the probe, with the kernel's real ICMP errors, on each of Twisted's reactors
# for Linux, driven by hand (no timers run: the test resends).

DRIVE_SECONDS = 5.0
DRIVE_STEPS = 1000


def drive(reactor, condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + DRIVE_SECONDS
    for _ in range(DRIVE_STEPS):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        reactor.doIteration(0.01)
    raise AssertionError(f"no {what} within {DRIVE_SECONDS} s")


def error_pending(descriptor: int) -> None:
    """Wait until the kernel has an ICMP error pending on `descriptor` (without reading it)."""
    poller = select.poll()
    poller.register(descriptor, select.POLLERR)
    deadline = time.monotonic() + DRIVE_SECONDS
    while not poller.poll(50):
        assert time.monotonic() < deadline, "no ICMP error from the kernel"


def binding_success(request: bytes, port: int) -> bytes:
    transaction = request[8:20]
    key = struct.pack("!I", stun.MAGIC_COOKIE) + transaction
    address = bytes(a ^ b for a, b in zip(socket.inet_aton("127.0.0.1"), key, strict=False))
    value = struct.pack("!BBH", 0, 1, port ^ (stun.MAGIC_COOKIE >> 16)) + address
    attribute = struct.pack("!HH", stun.XOR_MAPPED_ADDRESS, len(value)) + value
    head = struct.pack("!HHI", stun.BINDING_SUCCESS, len(attribute), stun.MAGIC_COOKIE)
    return head + transaction + attribute


@pytest.fixture(params=[EPollReactor, PollReactor, SelectReactor], ids=["epoll", "poll", "select"])
def hand_reactor(request):
    reactor = request.param()
    yield reactor
    for reader in list(getattr(reactor, "_internalReaders", ())):
        reactor.removeReader(reader)
        reader.connectionLost(None)
    reactor.disconnectAll()
    for call in reactor.getDelayedCalls():
        call.cancel()
    poller = getattr(reactor, "_poller", None)
    if hasattr(poller, "close"):
        poller.close()


@pytest.fixture
def opened(monkeypatch) -> list:
    """The (exchange, port) of every UDP probe started."""
    ports: list = []
    listen = probing.listen_udp

    def recording(protocol, interface, reactor):
        port = listen(protocol, interface, reactor)
        ports.append((protocol, port))
        return port

    monkeypatch.setattr(probing, "listen_udp", recording)
    return ports


@pytest.mark.parametrize("moment", ["error read first", "answer with the error", "resend"])
def test_the_port_outlives_a_real_icmp_error(hand_reactor, opened, moment) -> None:
    """A connected UDP socket reports an ICMP error once; the answer after it still counts,
    whether the reactor reads the error alone, with the answer, or a resend finds it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    address = server.getsockname()
    probing_now = stun.probe_binding(StunService(*address), 60.0, hand_reactor)
    ((exchange, port),) = opened
    request = server.recv(2048)
    server.close()
    exchange._resend()  # to a closed port: the kernel answers ICMP port unreachable
    error_pending(port.fileno())
    if moment == "error read first":
        drive(hand_reactor, lambda: exchange.icmp, "ICMP error read")
    ours = port.getHost().port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.settimeout(DRIVE_SECONDS)
        server.bind(address)  # the server is back
        if moment == "resend":
            exchange._resend()  # the send that finds the error is made again
            assert server.recv(2048) == request
        server.sendto(binding_success(request, ours), ("127.0.0.1", ours))
        drive(hand_reactor, lambda: probing_now.called, "verdict")
    results: list = []
    probing_now.addCallback(results.append)
    assert (results[0].ok, results[0].detail) == (True, f"mapped 127.0.0.1:{ours}")
    assert exchange.icmp == "ICMP port unreachable"
    hand_reactor.runUntilCurrent()  # the port's close, scheduled by the probe's end
    assert not port.connected
