"""The TFTP transport without sockets: a fake reactor records every datagram sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from tests.fuzzing import TFTP_OPCODES, mutations_of
from tests.helpers import SPA942, YEALINK_T46G, copy_templates, sample_config
from xprov.build import load
from xprov.descriptors import TFTP_CLOSING
from xprov.guard import Gate, Policy
from xprov.provisioning import Provisioner, Served
from xprov.selection import ActiveSites
from xprov.servers.tftp import UNKNOWN_TID_ANSWERS, TftpServer, netascii
from xprov.tftp import codec
from xprov.tftp.admission import Admission, admit
from xprov.tftp.options import Limits

CLIENT = ("127.0.0.1", 40000)
OTHER = ("127.0.0.1", 40001)
BUSY = "Server busy, try later"


class FakePort:
    """A UDP port as Twisted's: a datagram is read at most `size` bytes (recvfrom)."""

    def __init__(self, reactor: FakeReactor, number: int, protocol, interface: str, size: int):
        self.reactor, self.number, self.protocol = reactor, number, protocol
        self.interface, self.size, self.closed = interface, size, False
        protocol.makeConnection(self)

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.interface, self.number)

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
        self.protocol.datagramReceived(datagram[: self.size], addr)


class FakeReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []
        self.sent: list[tuple[int, tuple, codec.Packet]] = []

    def listenUDP(self, port: int, protocol, interface: str = "", maxPacketSize: int = 8192):
        number = port or 50000 + len(self.ports)
        fake = FakePort(self, number, protocol, interface, maxPacketSize)
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


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (b"", "Unsupported mode"),
        (b"mail", "Unsupported mode"),
        (b"Binary", "Unsupported mode"),
        (b"oct\xe9t", "Malformed request"),
    ],
)
def test_a_bad_mode_is_error_4(server, mode: bytes, message: str) -> None:
    """RFC 1350 names netascii, octet and mail: the codec reads any ASCII mode (a request
    needs one), the server serves two and refuses the rest."""
    _, reactor, listener = server
    listener.deliver(
        b"\x00\x01" + f"{YEALINK_T46G}.cfg".encode() + b"\x00" + mode + b"\x00", CLIENT
    )
    assert reactor.take() == [(listener.number, CLIENT, codec.Error(4, message))]
    assert len(reactor.ports) == 1


def oversized_request(name: str, size: int = 65500) -> bytes:
    """A `size`-byte RRQ whose first 8,192 bytes (what Twisted reads by default) are a
    valid request on their own: read cut short, it used to be served."""
    head = codec.rrq(name, {"pad": ""})
    head = codec.rrq(name, {"pad": "p" * (8192 - len(head))})
    assert len(head) == 8192
    return head + b"o\x00v\x00" * ((size - 8192) // 4) + b"o\x00" * (size % 4 // 2)


def test_oversized_request_is_judged_whole_and_gets_error_4(server) -> None:
    tftp, reactor, listener = server
    datagram = oversized_request(f"{YEALINK_T46G}.cfg")
    assert len(datagram) == 65500 > codec.MAX_DATAGRAM
    listener.deliver(datagram, CLIENT)
    assert reactor.take() == [(listener.number, CLIENT, codec.Error(4, "Malformed request"))]
    assert len(reactor.ports) == 1 and tftp.active == 0
    listener.deliver(datagram[: codec.MAX_DATAGRAM], CLIENT)  # at the bound: served
    assert isinstance(reactor.take()[0][2], codec.Data)


def test_every_socket_reads_the_largest_datagram(server) -> None:
    _, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    assert [port.size for port in reactor.ports] == [65535, 65535]
    assert codec.READ_SIZE >= 65507  # the largest UDP payload over IPv4


def test_option_flood_is_served_like_a_normal_request(server, provisioner) -> None:
    _, reactor, listener = server
    name = f"{SPA942}.xml"
    flood = codec.rrq(name, {"blksize": "1024"}) + b"a\x00b\x00" * 16000
    assert len(flood) < codec.MAX_DATAGRAM
    listener.deliver(flood, CLIENT)
    ((_, _, oack),) = reactor.take()
    assert oack == codec.Oack({"blksize": "1024"})
    reactor.ports[1].deliver(codec.ack(0), CLIENT)
    ((_, _, data),) = reactor.take()
    assert data.payload == body_of(provisioner, name)[:1024]


@pytest.mark.parametrize("datagram", [codec.error(0, "x"), b"\x00\x05\x00\x01"])
def test_errors_are_never_answered(server, datagram: bytes) -> None:
    _, reactor, listener = server
    listener.deliver(datagram, CLIENT)
    assert reactor.take() == []


def test_source_port_zero_is_dropped(server) -> None:
    _, reactor, listener = server
    listener.deliver(codec.rrq("x"), ("127.0.0.1", 0))
    assert reactor.take() == []


def test_stranger_gets_error_5_once_and_changes_nothing(server) -> None:
    """RFC 1350 section 4: a stranger gets ERROR 5, one per stranger address and at most
    UNKNOWN_TID_ANSWERS per transfer port; an ERROR from a stranger gets nothing."""
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "512"}), CLIENT)
    ((_, _, oack),) = reactor.take()
    assert isinstance(oack, codec.Oack)
    port = reactor.ports[1]
    port.deliver(codec.ack(0), OTHER)
    port.deliver(b"garbage", OTHER)  # the same stranger again: answered already
    assert [(addr, p) for _, addr, p in reactor.take()] == [
        (OTHER, codec.Error(codec.UNKNOWN_TID, "Unknown transfer ID"))
    ]
    strangers = [("127.0.0.1", 41000 + i) for i in range(UNKNOWN_TID_ANSWERS + 3)]
    for stranger in strangers:
        port.deliver(codec.error(0, "x"), stranger)  # an ERROR: never answered
        port.deliver(b"\x00\x05", stranger)  # nor a malformed one
    assert reactor.take() == []
    for stranger in strangers:
        port.deliver(codec.ack(0), stranger)
    assert [addr for _, addr, _ in reactor.take()] == strangers[: UNKNOWN_TID_ANSWERS - 1]
    port.deliver(codec.ack(0), CLIENT)
    ((_, addr, data),) = reactor.take()
    assert addr == CLIENT and isinstance(data, codec.Data) and data.block == 1
    assert tftp.active == 1


def test_no_answer_to_our_own_sockets(server) -> None:
    """A datagram from one of our listeners or transfer ports is never answered: one forged
    datagram once started an endless ERROR 5 ping-pong between two transfer ports."""
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "8"}), CLIENT)
    listener.deliver(codec.rrq(f"{SPA942}.xml", {"blksize": "8"}), OTHER)
    first, second = reactor.ports[1:]
    reactor.take()
    for datagram in (codec.ack(0), codec.data(1, b"x"), b"garbage"):
        first.deliver(datagram, ("127.0.0.1", second.number))
        first.deliver(datagram, ("127.0.0.1", listener.number))
    listener.deliver(codec.rrq("spa942.cfg"), ("127.0.0.1", first.number))
    listener.deliver(codec.ack(1), ("127.0.0.1", listener.number))
    assert reactor.take() == [] and len(reactor.ports) == 3 and tftp.active == 2
    # the same ports at other hosts are strangers
    first.deliver(codec.ack(0), ("127.0.0.2", second.number))
    listener.deliver(codec.ack(1), ("127.0.0.2", first.number))
    assert [(n, p.code) for n, _, p in reactor.take()] == [
        (first.number, codec.UNKNOWN_TID),
        (listener.number, codec.ILLEGAL_OPERATION),
    ]


def route(reactor: FakeReactor, start: tuple[FakePort, bytes, tuple], hops: int = 100) -> int:
    """Deliver `start` and then every datagram our ports send to our own ports, as the
    network would, for at most `hops` datagrams; how many were delivered."""
    queue = [start]
    delivered = 0
    while queue and delivered < hops:
        port, datagram, source = queue.pop(0)
        port.deliver(datagram, source)
        delivered += 1
        for number, addr, packet in reactor.take():
            target = [p for p in reactor.ports if (p.interface, p.number) == addr]
            if target and not target[0].closed:
                queue.append((target[0], encode(packet), (target[0].interface, number)))
    return delivered


def encode(packet: codec.Packet) -> bytes:
    match packet:
        case codec.Error(code, message):
            return codec.error(code, message)
        case codec.Data(block, payload):
            return codec.data(block, payload)
        case codec.Oack(options):
            return codec.oack(options)
    raise AssertionError(packet)


@pytest.mark.parametrize(
    "forged",
    [codec.ack(0), codec.error(0, "forged"), b"junk", codec.rrq("spa942.cfg")],
    ids=["ack", "error", "junk", "rrq"],
)
def test_one_forged_datagram_ends_at_once(server, forged: bytes) -> None:
    """A datagram forged from one transfer port's address to another, or to the listener,
    is followed by nothing: before, two ports answered each other's ERROR 5 for ever."""
    _, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "8"}), CLIENT)
    listener.deliver(codec.rrq(f"{SPA942}.xml", {"blksize": "8"}), OTHER)
    first, second = reactor.ports[1:]
    reactor.take()
    assert route(reactor, (second, forged, ("127.0.0.1", first.number))) == 1
    assert route(reactor, (listener, forged, ("127.0.0.1", first.number))) == 1
    assert len(reactor.ports) == 3


def test_wildcard_listener_knows_its_loopback_ports(provisioner) -> None:
    """Bound to any address, our port numbers are ours at loopback addresses only."""
    from xprov.config import Listen

    reactor = FakeReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 10, reactor)
    listener = tftp.listen(Listen("0.0.0.0", 69))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "8"}), CLIENT)
    port = reactor.ports[1]
    reactor.take()
    port.deliver(codec.ack(0), ("127.0.0.5", 69))
    port.deliver(codec.ack(0), ("::1", port.number))
    assert reactor.take() == []
    port.deliver(codec.ack(0), ("192.0.2.7", 69))
    assert [addr for _, addr, _ in reactor.take()] == [("192.0.2.7", 69)]
    assert tftp.ours(("127.0.0.1", port.number)) and not tftp.ours(("192.0.2.7", port.number))
    port.deliver(codec.error(0, "bye"), CLIENT)
    assert not tftp.ours(("127.0.0.1", port.number))  # closed: no longer ours


def test_malformed_datagram_from_the_peer_is_ignored(server) -> None:
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), CLIENT)
    reactor.take()
    reactor.ports[1].deliver(b"\x00", CLIENT)
    assert reactor.take() == [] and tftp.active == 1


def start_answered(reactor: FakeReactor, listener: FakePort, peer: tuple) -> FakePort:
    """A transfer whose peer acknowledged our OACK, and DATA 1 outstanding."""
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "8"}), peer)
    port = reactor.ports[-1]
    port.deliver(codec.ack(0), peer)
    assert [p for _, _, p in reactor.take()][-1] == codec.Data(1, ANY_PAYLOAD)
    return port


class _Any:
    def __eq__(self, other: object) -> bool:
        return True


ANY_PAYLOAD: bytes = _Any()  # type: ignore[assignment]


def test_busy_beyond_max_transfers_whose_peers_answered(provisioner) -> None:
    tftp, reactor, listener = make_server(provisioner, max_transfers=2)
    for port in (1, 2):
        start_answered(reactor, listener, ("127.0.0.1", port))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", 3))
    assert reactor.take() == [(listener.number, ("127.0.0.1", 3), codec.Error(0, BUSY))]
    assert tftp.active == 2 and tftp.stats.busy == 1 and len(reactor.ports) == 3


def test_full_server_evicts_the_oldest_transfer_whose_peer_never_answered(provisioner) -> None:
    """Never-acknowledged requests (forged, or asking timeout 255) hold slots only until a
    new request needs one; a transfer whose peer answered keeps its slot."""
    tftp, reactor, listener = make_server(provisioner, max_transfers=3)
    answered = start_answered(reactor, listener, ("127.0.0.1", 1))
    for port in (2, 3):
        listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"timeout": "255"}), ("127.0.0.2", port))
    oldest, younger = reactor.ports[2:]
    reactor.take()
    listener.deliver(codec.rrq("ffffffffffff.cfg"), CLIENT)  # refused: evicts nobody
    assert [p for _, _, p in reactor.take()] == [codec.Error(1, "File not found")]
    assert tftp.active == 3 and not oldest.closed
    assert fetch(reactor, listener, f"{SPA942}.xml") == body_of(provisioner, f"{SPA942}.xml")
    assert oldest.closed and not younger.closed and not answered.closed
    assert tftp.stats.evicted == 1 and tftp.stats.busy == 0
    assert tftp.stats.failed == 1 and tftp.stats.ok == 1 and tftp.active == 2
    # a transfer that answered late is no longer evictable: the next evicts nobody else
    younger.deliver(codec.ack(0), ("127.0.0.2", 3))
    reactor.take()
    start_answered(reactor, listener, OTHER)  # the free slot
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.3", 9))
    assert reactor.take()[-1] == (listener.number, ("127.0.0.3", 9), codec.Error(0, BUSY))
    assert tftp.stats.evicted == 1 and not younger.closed


def test_evicted_peer_is_told_nothing(provisioner) -> None:
    _, reactor, listener = make_server(provisioner, max_transfers=1)
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"timeout": "255"}), OTHER)
    reactor.take()
    listener.deliver(codec.rrq(f"{SPA942}.xml"), CLIENT)
    assert [addr for _, addr, _ in reactor.take()] == [CLIENT]
    assert reactor.ports[1].closed


@pytest.mark.parametrize(
    ("running", "from_source", "evictable", "evictable_from_source", "admission"),
    [
        (0, 0, False, False, Admission.START),
        (2, 1, False, False, Admission.START),  # one slot left
        (2, 1, True, True, Admission.START),  # a free slot: nobody is evicted
        (3, 0, False, False, Admission.BUSY),  # every slot held by a peer that answered
        (3, 0, True, False, Admission.EVICT),
        (3, 1, True, True, Admission.EVICT),  # below its own cap: the global rule
        (4, 0, True, False, Admission.EVICT),  # over the bound after a reload lowered it
        (1, 2, False, False, Admission.BUSY_SOURCE),  # at its cap, all its peers answered
        (3, 2, True, False, Admission.BUSY_SOURCE),  # never another source's for its cap
        (2, 3, False, False, Admission.BUSY_SOURCE),
        (1, 2, True, True, Admission.EVICT_SOURCE),  # at its cap: its own never-answered
        (3, 2, True, True, Admission.EVICT_SOURCE),  # at both caps: its own frees both
        (2, 3, True, True, Admission.EVICT_SOURCE),  # over its cap after a reload
    ],
)
def test_admission_at_its_bounds(
    running: int,
    from_source: int,
    evictable: bool,
    evictable_from_source: bool,
    admission: Admission,
) -> None:
    """max_transfers = 3, per_source = 2."""
    assert admit(running, from_source, evictable, evictable_from_source, 3, 2) is admission


PHONE_HOST = "127.0.0.201"


def forge_unanswered(reactor: FakeReactor, listener: FakePort, ports: range) -> list[FakePort]:
    """Requests from PHONE_HOST at `ports`, never acknowledged (a UDP source is forged at
    no cost); their transfer ports, oldest first."""
    for number in ports:
        listener.deliver(codec.rrq("y000000000000.boot"), (PHONE_HOST, number))
    reactor.take()
    return reactor.ports[-len(ports) :]


def test_a_source_at_its_cap_evicts_its_own_oldest_never_answered_transfer(provisioner) -> None:
    """Requests forged from a phone's own address fill that address's max_tftp_per_source
    slots; the phone's request evicts the oldest of them that never answered, not one that
    answered, nor another source's (older) one, and the evicted peer is told nothing."""
    reactor = FakeReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 100, reactor, per_source=8)
    listener = tftp.listen(_listen())
    listener.deliver(codec.rrq("y000000000000.boot"), OTHER)  # older, never answered
    elsewhere = reactor.ports[-1]
    answered = start_answered(reactor, listener, (PHONE_HOST, 1))
    forged = forge_unanswered(reactor, listener, range(2, 9))
    assert tftp.active == 9
    name = f"{YEALINK_T46G}.cfg"
    phone = (PHONE_HOST, 9)
    listener.deliver(codec.rrq(name), phone)
    assert [to for _, to, _ in reactor.sent] == [phone]  # nothing to the evicted peer
    assert forged[0].closed and not any(p.closed for p in forged[1:])
    assert not answered.closed and not elsewhere.closed
    reactor.take()
    assert fetch(reactor, listener, name, peer=(PHONE_HOST, 10)) == body_of(provisioner, name)
    assert forged[1].closed and not any(p.closed for p in forged[2:])  # the next oldest
    assert tftp.stats.evicted == 2 and tftp.stats.busy == 0 and tftp.stats.ok == 1
    assert tftp.active == 8  # the second fetch ended; the first phone's transfer runs on


def test_a_source_at_its_cap_whose_peers_all_answered_is_busy(provisioner) -> None:
    """Eight transfers from one address whose peers answered keep their slots: a ninth
    request from that address is busy, even while another source's transfer could be
    evicted; once one of the eight ends, the address has a slot again."""
    reactor = FakeReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 100, reactor, per_source=8)
    listener = tftp.listen(_listen())
    listener.deliver(codec.rrq("y000000000000.boot"), OTHER)  # never answered
    elsewhere = reactor.ports[-1]
    reactor.take()
    answered = [start_answered(reactor, listener, (PHONE_HOST, n)) for n in range(1, 9)]
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), (PHONE_HOST, 9))
    assert reactor.take() == [(listener.number, (PHONE_HOST, 9), codec.Error(0, BUSY))]
    assert not any(p.closed for p in (*answered, elsewhere))
    assert tftp.stats.busy == 1 and tftp.stats.evicted == 0 and tftp.active == 9
    answered[3].deliver(codec.error(0, "bye"), (PHONE_HOST, 4))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), (PHONE_HOST, 9))
    assert [type(p) for _, _, p in reactor.take()] == [codec.Data]
    tftp.stop()
    assert tftp._sources == {} and tftp._unanswered_from == {}  # nothing kept per address


def test_a_per_source_eviction_opens_its_port_before_the_victims_closes(provisioner) -> None:
    """As for the global cap: with every port open, a request that evicts one of its own
    source's transfers is served within the reserve's TFTP_CLOSING, not told "busy"."""
    reactor = LateReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 3, reactor, per_source=2)
    listener = tftp.listen(_listen())
    start_answered(reactor, listener, OTHER)
    forged = forge_unanswered(reactor, listener, range(1, 3))
    assert (tftp.active, tftp.ports_open) == (3, 3)
    phone = (PHONE_HOST, 3)
    listener.deliver(codec.rrq("y000000000028.cfg"), phone)
    assert [(to, type(p)) for _, to, p in reactor.take()] == [(phone, codec.Data)]
    assert (tftp.active, tftp.ports_open, tftp.stats.evicted) == (3, 4, 1)
    reactor.advance(0)  # the victim's socket is closed
    assert forged[0].closed and (tftp.active, tftp.ports_open) == (3, 3)


def test_a_transfer_asking_timeout_255_ends_after_the_servers_own_bound(server) -> None:
    """Limits(timeout=1, retries=2): no progress for 3 s ends any transfer; it used to
    hold its slot for 255 s x 3."""
    tftp, reactor, listener = server
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg", {"timeout": "255"}), CLIENT)
    assert [p for _, _, p in reactor.take()] == [codec.Oack({"timeout": "255"})]
    reactor.advance(2.9)
    assert tftp.active == 1
    reactor.advance(0.1)
    assert reactor.take() == [] and reactor.ports[1].closed and tftp.active == 0
    assert tftp.stats.failed == 1 and reactor.getDelayedCalls() == []


class LatePort(FakePort):
    """Closed as Twisted closes a UDP port: one reactor turn after stopListening."""

    def stopListening(self) -> None:
        self.reactor.callLater(0, self.close)


class LateReactor(FakeReactor):
    def listenUDP(self, port: int, protocol, interface: str = "", maxPacketSize: int = 8192):
        number = port or 50000 + len(self.ports)
        late = LatePort(self, number, protocol, interface, maxPacketSize)
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
    for port in (1, 2):  # peers that answered: not evicted for the source's next request
        start_answered(reactor, listener, ("127.0.0.1", port))
    listener.deliver(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", 3))
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


def test_an_evicting_request_opens_its_port_before_the_victims_closes(provisioner) -> None:
    """The evicted transfer's socket closes a reactor turn later; the request that evicted it
    is served now, within the reserve's TFTP_CLOSING (a phone is never told "busy" because
    a stranger's port is still closing), and no further."""
    reactor = LateReactor()
    tftp = TftpServer(Gate(provisioner, Policy()), Limits(), 1, reactor)
    listener = tftp.listen(_listen())
    listener.deliver(codec.rrq("y000000000028.cfg"), ("127.0.0.9", 4000))  # never answers
    reactor.take()
    phone = ("127.0.0.10", 5000)
    listener.deliver(codec.rrq("y000000000028.cfg"), phone)
    assert (tftp.active, tftp.ports_open, tftp.stats.evicted) == (1, 2, 1)
    assert [(to, type(p)) for _, to, p in reactor.take()] == [(phone, codec.Data)]
    reactor.advance(0)  # the victim's socket is closed
    assert (tftp.active, tftp.ports_open) == (1, 1)
    # Beyond the slack a request is busy even when it could evict.
    tftp.max_transfers = 1
    tftp.ports_open = 1 + TFTP_CLOSING
    listener.deliver(codec.rrq("y000000000028.cfg"), ("127.0.0.11", 6000))
    assert reactor.take()[-1][2] == codec.Error(0, "Server busy, try later")
