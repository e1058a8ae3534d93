"""The TFTP transport without sockets: a fake reactor records every datagram sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from tests.fuzzing import TFTP_OPCODES, mutations_of
from tests.helpers import SPA942, YEALINK_T46G, copy_templates, sample_config
from xprov.guard import Gate, Policy
from xprov.provisioning import Provisioner, Served
from xprov.selection import ActiveSites
from xprov.servers.tftp import TftpServer, netascii
from xprov.service import load
from xprov.tftp import codec
from xprov.tftp.options import Limits

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)


class FakePort:
    def __init__(self, reactor: FakeReactor, number: int, protocol, interface: str) -> None:
        self.reactor, self.number, self.protocol = reactor, number, protocol
        self.interface, self.closed = interface, False
        protocol.makeConnection(self)

    def write(self, datagram: bytes, addr) -> None:
        assert not self.closed
        self.reactor.sent.append((self.number, addr, codec.decode(datagram)))

    def stopListening(self) -> None:
        """Closed at once (Twisted closes a UDP port one reactor turn later: LatePort)."""
        self.close()

    def close(self) -> None:
        self.closed = True
        self.protocol.doStop()

    def deliver(self, datagram: bytes, addr) -> None:
        self.protocol.datagramReceived(datagram, addr)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []
        self.sent: list[tuple[int, tuple, codec.Packet]] = []

    def listenUDP(self, port: int, protocol, interface: str = "", maxPacketSize: int = 8192):
        fake = FakePort(self, port or 50000 + len(self.ports), protocol, interface)
        self.ports.append(fake)
        return fake

    def take(self) -> list[tuple[int, tuple, codec.Packet]]:
        sent, self.sent = self.sent, []
        return sent


@pytest.fixture
def server(provisioner: Provisioner):
    return make_server(provisioner)


def make_server(provisioner: Provisioner, max_transfers: int = 10):
    reactor = FakeReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(retries=2), max_transfers, reactor)
    listener = tftp.listen(_listen())
    return tftp, reactor, listener


def _listen():
    from xprov.config import Listen

    return Listen("127.0.0.1", 69)


def body_of(provisioner: Provisioner, name: str) -> bytes:
    outcome = provisioner.provide(name)
    assert isinstance(outcome, Served)
    return outcome.body


def fetch(reactor: FakeReactor, listener: FakePort, name: str, options=None, peer=CLIENT):
    """A well-behaved client: RRQ, then ACK everything from the transfer's port."""
    listener.deliver(codec.rrq(name, options), peer)
    data = b""
    while True:
        sent = reactor.take()
        if not sent:
            return data
        number, addr, packet = sent[-1]
        assert addr == peer
        port = next(p for p in reactor.ports if p.number == number)
        if isinstance(packet, codec.Error):
            return packet
        if isinstance(packet, codec.Oack):
            port.deliver(codec.ack(0), peer)
            continue
        for _, _, p in sent:
            data += p.payload
        port.deliver(codec.ack(packet.block), peer)


def test_read_request_gets_the_http_bytes_from_a_new_port(server, provisioner) -> None:
    tftp, reactor, listener = server
    name = f"{YEALINK_T46G}.cfg"
    assert fetch(reactor, listener, name) == body_of(provisioner, name)
    transfer_port = reactor.ports[1]
    assert transfer_port.number != listener.number and transfer_port.interface == "127.0.0.1"
    assert transfer_port.closed and tftp.active == 0
    assert tftp.stats.ok == 1 and tftp.stats.bytes == len(body_of(provisioner, name))


@pytest.mark.parametrize("options", [{"blksize": "1468", "tsize": "0"}, {"windowsize": "8"}])
def test_options_through_the_server(server, provisioner, options) -> None:
    _, reactor, listener = server
    assert fetch(reactor, listener, f"{SPA942}.xml", options) == body_of(
        provisioner, f"{SPA942}.xml"
    )


@pytest.mark.parametrize(
    ("datagram", "code"),
    [
        (codec.rrq("ffffffffffff.cfg"), codec.FILE_NOT_FOUND),
        (codec.rrq(f"{YEALINK_T46G}-local.cfg"), codec.FILE_NOT_FOUND),
        (b"\x00\x02" + f"{YEALINK_T46G}.cfg".encode() + b"\x00octet\x00", codec.ACCESS_VIOLATION),
        (b"\x00\x01abc", codec.ILLEGAL_OPERATION),  # no terminators
        (b"\x00\x01\x00octet\x00", codec.ILLEGAL_OPERATION),  # empty name
        (b"\x00\x09whatever", codec.ILLEGAL_OPERATION),  # unknown opcode
        (codec.ack(1), codec.ILLEGAL_OPERATION),  # not a request
        (codec.rrq(f"{YEALINK_T46G}.cfg", mode="mail"), codec.ILLEGAL_OPERATION),
        (b"\x00\x01\xff\xfe.cfg\x00octet\x00", codec.ILLEGAL_OPERATION),  # not ASCII
        (b"\x00\x01", codec.ILLEGAL_OPERATION),  # too short
    ],
)
def test_refusals_answer_from_the_listener(server, datagram: bytes, code: int) -> None:
    tftp, reactor, listener = server
    listener.deliver(datagram, CLIENT)
    ((number, addr, packet),) = reactor.take()
    assert (number, addr) == (listener.number, CLIENT)
    assert isinstance(packet, codec.Error) and packet.code == code
    assert len(reactor.ports) == 1 and tftp.active == 0


@pytest.mark.parametrize("datagram", [codec.error(0, "x"), b"\x00\x05\x00\x01"])
def test_errors_are_never_answered(server, datagram: bytes) -> None:
    _, reactor, listener = server
    listener.deliver(datagram, CLIENT)
    assert reactor.take() == []


def test_source_port_zero_is_dropped(server) -> None:
    _, reactor, listener = server
    listener.deliver(codec.rrq("x"), ("127.0.0.1", 0))
    assert reactor.take() == []


def test_stranger_gets_error_5_and_changes_nothing(server, provisioner) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "512"}), CLIENT)
    ((_, _, oack),) = reactor.take()
    assert isinstance(oack, codec.Oack)
    port = reactor.ports[1]
    port.deliver(codec.ack(0), OTHER)
    port.deliver(b"garbage", OTHER)
    assert [(addr, p.code) for _, addr, p in reactor.take()] == [
        (OTHER, codec.UNKNOWN_TID),
        (OTHER, codec.UNKNOWN_TID),
    ]
    port.deliver(codec.ack(0), CLIENT)
    ((_, addr, data),) = reactor.take()
    assert addr == CLIENT and isinstance(data, codec.Data) and data.block == 1
    assert tftp.active == 1


def test_malformed_datagram_from_the_peer_is_ignored(server) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    reactor.take()
    reactor.ports[1].deliver(b"\x00", CLIENT)
    assert reactor.take() == [] and tftp.active == 1


def test_busy_beyond_max_transfers(provisioner) -> None:
    tftp, reactor, listener = make_server(provisioner, max_transfers=2)
    for port in (1, 2):
        listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", port))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", 3))
    last = reactor.take()[-1]
    assert last[0] == listener.number and last[2] == codec.Error(0, "Server busy, try later")
    assert tftp.active == 2 and tftp.stats.busy == 1


class LatePort(FakePort):
    """Closed as Twisted closes a UDP port: one reactor turn after stopListening."""

    def stopListening(self) -> None:
        self.reactor.callLater(0, self.close)


class LateReactor(FakeReactor):
    def listenUDP(self, port: int, protocol, interface: str = "", maxPacketSize: int = 8192):
        late = LatePort(self, port or 50000 + len(self.ports), protocol, interface)
        self.ports.append(late)
        return late


def test_a_transfer_port_counts_until_its_socket_is_closed(provisioner) -> None:
    """max_transfers bounds descriptors: a port whose transfer was replaced still holds one
    until Twisted closes it, a turn later, and no new port opens meanwhile."""
    reactor = LateReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 1, reactor)
    listener = tftp.listen(_listen())
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    assert (tftp.active, tftp.ports_open) == (1, 1)
    reactor.take()
    listener.deliver(codec.rrq(f"{SPA942}.xml"), CLIENT)  # a new request replaces the transfer
    assert (tftp.active, tftp.ports_open) == (0, 1)
    assert reactor.take() == [(listener.number, CLIENT, codec.Error(0, "Server busy, try later"))]
    assert len(reactor.ports) == 2 and tftp.stats.busy == 1  # the listener and the old port
    reactor.advance(0)  # the old port's socket is closed
    assert tftp.ports_open == 0
    listener.deliver(codec.rrq(f"{SPA942}.xml"), CLIENT)
    assert (tftp.active, tftp.ports_open, len(reactor.ports)) == (1, 1, 3)
    assert isinstance(reactor.take()[-1][2], codec.Data)


def test_per_source_cap_and_allow_list(provisioner) -> None:
    import ipaddress

    reactor = FakeReactor()
    tftp = TftpServer(
        Gate(provisioner, Policy()),
        Limits(),
        100,
        reactor,
        per_source=2,
        allow=[ipaddress.ip_network("127.0.0.0/30")],
    )
    listener = tftp.listen(_listen())
    for port in (1, 2, 3):
        listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", port))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.2", 9))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.9", 9))  # not allowed: silence
    sent = reactor.take()
    assert [p for _, addr, p in sent if addr == ("127.0.0.1", 3)] == [
        codec.Error(0, "Server busy, try later")
    ]
    assert not [p for _, addr, p in sent if addr[0] == "127.0.0.9"]
    assert tftp.active == 3


def test_blocked_source_gets_no_answer_for_device_files(provisioner) -> None:
    """Out of its budget, a source is told nothing about devices; shared files, which name
    none, are still served."""
    reactor = FakeReactor()
    tftp = TftpServer(Gate(provisioner, Policy(burst=2, rate=0.001)), Limits(), 100, reactor)
    listener = tftp.listen(_listen())
    for i in range(5):
        listener.deliver(codec.rrq(f"0015650000{i:02x}.cfg"), CLIENT)
    answers = [p for _, _, p in reactor.take()]
    assert answers == [codec.Error(1, "File not found")] * 2  # then silence
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    assert reactor.take() == [] and tftp.stats.rejected["rate_limited"] == 4
    listener.deliver(codec.rrq("y000000000028.cfg"), CLIENT)
    [(_, _, first)] = reactor.take()
    assert isinstance(first, codec.Data) and first.block == 1


def test_device_files_refused_when_auth_requires_credentials(provisioner) -> None:
    """TFTP carries no credentials: with Digest on, a per-device file gets ERROR 2 and not a
    byte of it leaves; shared files are served; a trusted network gets its files."""
    import ipaddress

    reactor = FakeReactor()
    trusted = (ipaddress.ip_network("127.0.0.2/32"),)
    gate = Gate(provisioner, Policy(digest=True, tftp_per_device_from=trusted))
    tftp = TftpServer(gate, Limits(), 100, reactor)
    listener = tftp.listen(_listen())
    for name in (
        f"{YEALINK_T46G}.cfg",
        f"{YEALINK_T46G}.boot",
        f"{SPA942}.xml",
        "0015650000ff.cfg",
    ):
        listener.deliver(codec.rrq(name), CLIENT)
        assert reactor.take() == [(listener.number, CLIENT, codec.Error(2, "Access violation"))]
    assert len(reactor.ports) == 1 and provisioner.renders == 0  # no transfer port, no render
    listener.deliver(codec.rrq("spa942.cfg"), CLIENT)
    assert isinstance(reactor.take()[0][2], codec.Data)
    trusted_peer = ("127.0.0.2", 8)
    assert fetch(reactor, listener, f"{SPA942}.xml", peer=trusted_peer) == body_of(
        provisioner, f"{SPA942}.xml"
    )


def test_repeated_request_does_not_start_a_second_transfer(server) -> None:
    tftp, reactor, listener = server
    request = codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "1024"})
    listener.deliver(request, CLIENT)
    listener.deliver(request, CLIENT)
    assert len(reactor.take()) == 1 and len(reactor.ports) == 2 and tftp.active == 1


def test_client_that_never_acks_the_oack_falls_back_to_plain_tftp(server, provisioner) -> None:
    """It asked with options, ignored our OACK and asked again without: it gets RFC 1350."""
    tftp, reactor, listener = server
    name = f"{YEALINK_T46G}.cfg"
    listener.deliver(codec.rrq(name, {"blksize": "1468", "tsize": "0"}), CLIENT)
    assert isinstance(reactor.take()[0][2], codec.Oack)
    oack_port = reactor.ports[1]
    assert fetch(reactor, listener, name) == body_of(provisioner, name)  # plain, 512 blocks
    assert oack_port.closed and tftp.active == 0


def test_silent_client_times_out_and_the_port_is_closed(server) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    for _ in range(5):
        reactor.advance(1.0)
    sent = reactor.take()
    assert [p.block for _, _, p in sent] == [1, 1, 1]  # first send and two retries
    assert reactor.ports[1].closed and tftp.active == 0
    assert tftp.stats.failed == 1 and tftp.stats.retransmits == 2


def test_client_error_closes_the_port(server) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    reactor.ports[1].deliver(codec.error(0, "bye"), CLIENT)
    assert reactor.ports[1].closed and tftp.active == 0 and tftp.stats.failed == 1


def test_render_failure_is_error_0_without_data(tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    (templates / "yealink" / "device.cfg").write_text("#!version:1.0.0.1\n{{ nope }}\n")
    inputs = load(sample_config(tmp_path, templates=templates))
    provisioner = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    _, reactor, listener = make_server(provisioner)
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    assert [p for _, _, p in reactor.take()] == [codec.Error(0, "Internal error")]


def test_netascii_mode(server, provisioner) -> None:
    _, reactor, listener = server
    name = f"{SPA942}.xml"
    listener.deliver(codec.rrq(name, mode="netascii"), CLIENT)
    ((_, _, first),) = reactor.take()
    assert first.payload.startswith(netascii(body_of(provisioner, name))[:512][:40])
    assert b"\r\n" in first.payload
    assert netascii(b"a\nb\rc") == b"a\r\nb\r\0c"


def test_stop_cancels_every_transfer(server) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    listener.deliver(codec.rrq(f"{SPA942}.xml"), OTHER)
    tftp.stop()
    assert tftp.active == 0 and all(p.closed for p in reactor.ports[1:])
    assert reactor.getDelayedCalls() == []


VALID = codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "1024", "tsize": "0", "windowsize": "4"})


def mutations():
    return mutations_of(VALID, TFTP_OPCODES, 600)


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.fuzz
@given(datagram=mutations(), port=st.integers(0, 65535))
def test_no_datagram_escapes_the_listener(provisioner, datagram: bytes, port: int) -> None:
    tftp, reactor, listener = make_server(provisioner)
    listener.deliver(datagram, ("127.0.0.1", port))
    for transfer_port in reactor.ports[1:]:
        transfer_port.deliver(datagram, ("127.0.0.1", port))
    tftp.stop()


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@pytest.mark.fuzz
@given(datagrams=st.lists(mutations(), min_size=1, max_size=5))
def test_no_datagram_escapes_a_transfer_port(provisioner, datagrams: list[bytes]) -> None:
    tftp, reactor, listener = make_server(provisioner)
    listener.deliver(codec.rrq(f"{SPA942}.xml", {"blksize": "8"}), CLIENT)
    port = reactor.ports[1]
    for datagram in datagrams:
        port.deliver(datagram, CLIENT)
        port.deliver(datagram, OTHER)
        reactor.advance(0.5)
    tftp.stop()
    reactor.take()
    assert fetch(reactor, listener, f"{SPA942}.xml") == body_of(provisioner, f"{SPA942}.xml")
