"""The simulated phones' SIP side on a clock (issue 18): probes that move to the second server
after the firmware's Timer F, and a phone's NOTIFY port answering hand-made NOTIFYs. No
socket: UDP ports of a memory reactor, datagrams written by hand."""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import FakeDatagramTransport, MemoryReactorClock

from xprov.drill import sipmsg
from xprov.drill.phones import SimPhone, SipServer, SipServers
from xprov.drill.sipside import (
    MAX_ANSWERED,
    NotifyPort,
    NotifyPorts,
    NotifySeen,
    Probes,
    SipEvent,
)

CHICAGO = SipServer("127.0.0.1", 5060, "chicago")
VIRGINIA = SipServer("127.0.0.2", 5070, "virginia")


class Port:
    def __init__(self, host: str, number: int) -> None:
        self.host, self.number, self.open = host, number, True

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.host, self.number)

    def stopListening(self) -> None:
        self.open = False


class Udp(MemoryReactorClock):
    """A clock whose UDP ports are fake transports: what a protocol writes is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers = itertools.count(40000)
        self.bound: list[tuple[object, FakeDatagramTransport, Port]] = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        transport = FakeDatagramTransport()
        protocol.makeConnection(transport)
        bound = Port(interface, next(self.numbers))
        self.bound.append((protocol, transport, bound))
        return bound


def phone(vendor: str = "yealink", i: int = 1, user: str = "0000011") -> SimPhone:
    return SimPhone(
        f"0015650000{i:02x}",
        vendor,
        "http",
        None,
        ("f",),
        0.0,
        vendor == "linksys",
        user,
        ("auth" + user, "pw-Secret") if user else None,
    )


def sent(transport: FakeDatagramTransport) -> list[tuple[sipmsg.Message, tuple[str, int]]]:
    out = []
    for datagram, addr in transport.written:
        message = sipmsg.parse(datagram)
        assert message is not None
        out.append((message, addr))
    return out


def ok(request: sipmsg.Message) -> bytes:
    return sipmsg.response(request, 200, "OK", "k")


@pytest.fixture
def reactor() -> Udp:
    return Udp()


def probes(reactor: Udp, phones: list[SimPhone]) -> tuple[Probes, FakeDatagramTransport]:
    record: dict[str, list[SipEvent]] = {}
    running = Probes(reactor, phones, record, keepalive=1.0)
    running.start()
    (_, transport, _) = reactor.bound[-1]
    return running, transport


def test_a_phone_moves_to_its_second_server_after_timer_f(reactor: Udp) -> None:
    yealink = phone()
    running, transport = probes(reactor, [yealink])
    running.configure(yealink.mac, SipServers((CHICAGO, VIRGINIA), concurrent=True))
    reactor.advance(0)
    ((request, addr),) = sent(transport)
    assert request.method == "OPTIONS" and addr == ("127.0.0.1", 5060)
    assert request.start == "OPTIONS sip:127.0.0.1:5060 SIP/2.0"
    running.datagramReceived(ok(request), addr)
    for _ in range(3):  # answered every second: one event, not one a second
        reactor.advance(1.0)
        running.datagramReceived(ok(sent(transport)[-1][0]), addr)
    assert running.record[yealink.mac] == [SipEvent(0.0, "answered", str(CHICAGO), "chicago", 0.0)]
    # chicago dies: the next request is sent again on Timer E and given up at Timer F
    transport.written.clear()
    reactor.advance(1.0)  # t = 4
    for _ in range(int(32 / 0.5) - 1):
        reactor.advance(0.5)
    assert [addr for _, addr in sent(transport)] == [("127.0.0.1", 5060)] * 11
    assert len({m.branch for m, _ in sent(transport)}) == 1  # one transaction
    assert running.record[yealink.mac][1:] == []
    reactor.advance(0.5)  # t = 36: Timer F
    timeout = SipEvent(36.0, "timeout", str(CHICAGO), "chicago", 4.0)
    assert running.record[yealink.mac][1:] == [timeout]
    request, addr = sent(transport)[-1]
    assert addr == ("127.0.0.2", 5070)  # the same request, on to server 2 at once
    reactor.advance(0.01)
    running.datagramReceived(ok(request), addr)
    # the wait of a request sent at 4: 32 s and a bit (Timer F, then server 2's answer)
    assert running.record[yealink.mac][2:] == [
        SipEvent(36.01, "answered", str(VIRGINIA), "virginia", 4.0, moved=True)
    ]
    transport.written.clear()
    reactor.advance(1.0)
    assert [addr for _, addr in sent(transport)] == [("127.0.0.2", 5070)]  # stays there
    running.stop()
    assert reactor.getDelayedCalls() == [] and not reactor.bound[-1][2].open


def test_an_spa_gives_up_after_16_s_and_one_server_is_tried_again(reactor: Udp) -> None:
    spa, alone = phone("linksys", 1), phone("yealink", 2)
    running, transport = probes(reactor, [spa, alone])
    running.configure(spa.mac, SipServers((CHICAGO, VIRGINIA)))
    running.configure(alone.mac, SipServers((CHICAGO,)))
    reactor.advance(0)  # both sent their first request when they got their file
    for _ in range(32):
        reactor.advance(0.5)
    assert running.record[spa.mac] == [SipEvent(16.0, "timeout", str(CHICAGO), "chicago", 0.0)]
    (to_virginia, addr), *_ = [(m, a) for m, a in sent(transport) if a == ("127.0.0.2", 5070)]
    running.datagramReceived(ok(to_virginia), addr)
    assert running.record[spa.mac][1:] == [
        SipEvent(16.0, "answered", str(VIRGINIA), "virginia", 0.0, moved=True)
    ]
    for _ in range(33):
        reactor.advance(0.5)
    assert running.record[alone.mac] == [SipEvent(32.0, "timeout", str(CHICAGO), "chicago", 0.0)]
    reactor.advance(1.0)  # the lone phone has no next server: its next request, to chicago
    assert sent(transport)[-1][1] == ("127.0.0.1", 5060)
    running.stop()


def test_what_is_not_a_final_answer_to_a_pending_request_is_ignored(reactor: Udp) -> None:
    yealink = phone()
    running, transport = probes(reactor, [yealink])
    running.configure(yealink.mac, SipServers((CHICAGO, VIRGINIA)))
    reactor.advance(0)
    ((request, addr),) = sent(transport)
    trying = sipmsg.response(request, 100, "Trying", "k")
    other = ok(request).replace(request.branch.encode(), b"z9hG4bKsomeoneelse")  # type: ignore[union-attr]
    for datagram in (trying, other, b"garbage", b"SIP/2.0 200 OK\r\n\r\n"):
        running.datagramReceived(datagram, addr)
    assert yealink.mac not in running.record and running.pending
    running.stop()


def test_a_new_file_moves_the_requests_to_its_first_server_at_once(reactor: Udp) -> None:
    yealink = phone()
    running, transport = probes(reactor, [yealink])
    reactor.advance(0)
    assert sent(transport) == []  # no file yet: nothing to probe
    running.configure(yealink.mac, SipServers((CHICAGO, VIRGINIA)))
    reactor.advance(5.0)  # chicago does not answer
    running.configure(yealink.mac, SipServers((CHICAGO, VIRGINIA)))  # the same: nothing new
    assert {addr for _, addr in sent(transport)} == {("127.0.0.1", 5060)}
    transport.written.clear()
    running.configure(yealink.mac, SipServers((VIRGINIA, CHICAGO)))  # after the switch
    ((request, addr),) = sent(transport)  # at once, chicago's request dropped
    assert addr == ("127.0.0.2", 5070) and len(running.pending) == 1
    running.datagramReceived(ok(request), addr)
    assert running.record[yealink.mac] == [
        SipEvent(5.0, "answered", str(VIRGINIA), "virginia", 5.0)  # not a failover
    ]
    reactor.advance(40.0)  # chicago's Timer F would have been at 32 s: long dropped
    assert all(e.outcome == "answered" for e in running.record[yealink.mac])
    running.stop()


# -- a phone's NOTIFY port -----------------------------------------------------------------


def notify(event: str, branch: str, cseq: int = 1, auth: str = "") -> bytes:
    return (
        "NOTIFY sip:0000011@127.0.0.1:40000 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{branch};rport\r\n"
        "From: <sip:xprov@127.0.0.1>;tag=abc\r\nTo: <sip:0000011@127.0.0.1>\r\n"
        f"Call-ID: c1@xprov\r\nCSeq: {cseq} NOTIFY\r\nEvent: {event}\r\n"
        "Subscription-State: terminated\r\n"
        + (f"Authorization: {auth}\r\n" if auth else "")
        + "Content-Length: 0\r\n\r\n"
    ).encode()


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def listening(reactor: Udp, who: SimPhone) -> tuple[NotifyPort, FakeDatagramTransport, list]:
    resyncs: list[SimPhone] = []
    seen: list[NotifySeen] = []
    port = NotifyPort(who, reactor, resyncs.append, seen)
    transport = FakeDatagramTransport()
    port.makeConnection(transport)
    return port, transport, resyncs


def test_an_spa_answers_401_then_fetches_on_the_authenticated_retry(reactor: Udp) -> None:
    spa = phone("linksys")
    port, transport, resyncs = listening(reactor, spa)
    xprov = ("127.0.0.1", 5099)
    port.datagramReceived(notify("resync", "1"), xprov)
    port.datagramReceived(notify("resync", "1"), xprov)  # retransmitted: the same answer
    assert transport.written[0] == transport.written[1] and transport.written[0][1] == xprov
    challenge, _ = sent(transport)[0]
    assert challenge.status == 401 and resyncs == []
    nonce = re.search(r'nonce="([^"]+)"', challenge.header("www-authenticate") or "")
    assert nonce is not None
    user, password = spa.credentials  # type: ignore[misc]
    ha1 = md5(f"{user}:{sipmsg.REALM}:{password}")
    ha2 = md5("NOTIFY:sip:0000011@127.0.0.1:40000")
    response = md5(f"{ha1}:{nonce[1]}:00000001:cafe:auth:{ha2}")
    auth = (
        f'Digest username="{user}", realm="{sipmsg.REALM}", nonce="{nonce[1]}", '
        f'uri="sip:0000011@127.0.0.1:40000", response="{response}", qop=auth, '
        'nc=00000001, cnonce="cafe"'
    )
    port.datagramReceived(notify("resync", "2", 2, auth), xprov)
    port.datagramReceived(notify("resync", "2", 2, auth), xprov)  # retransmitted
    assert [m.status for m, _ in sent(transport)] == [401, 401, 200, 200]
    assert resyncs == [spa]  # once, not once per retransmission
    assert [(s.event, s.code) for s in port.seen] == [("resync", 401), ("resync", 200)]


def test_a_yealink_fetches_on_check_sync_and_ignores_what_is_not_a_request(reactor: Udp) -> None:
    yealink = phone()
    port, transport, resyncs = listening(reactor, yealink)
    for noise in (
        b"garbage",
        b"SIP/2.0 200 OK\r\n\r\n",
        notify("x", "a").replace(b"NOTIFY", b"ACK", 1),
    ):
        port.datagramReceived(noise, ("127.0.0.1", 5099))
    assert transport.written == [] and resyncs == []
    port.datagramReceived(notify("check-sync;reboot=false", "1"), ("127.0.0.1", 5099))
    port.datagramReceived(notify("resync", "2"), ("127.0.0.1", 5099))  # not its event
    assert [m.status for m, _ in sent(transport)] == [200, 489] and resyncs == [yealink]


def test_the_answers_kept_for_retransmissions_are_bounded(reactor: Udp) -> None:
    port, _, resyncs = listening(reactor, phone())
    for i in range(MAX_ANSWERED + 5):
        port.datagramReceived(notify("check-sync", str(i)), ("127.0.0.1", 5099))
    assert len(port.answered) == MAX_ANSWERED and len(resyncs) == MAX_ANSWERED + 5
    port.datagramReceived(notify("check-sync", "0"), ("127.0.0.1", 5099))  # long forgotten
    assert len(resyncs) == MAX_ANSWERED + 6


def test_a_port_per_phone_with_a_line(reactor: Udp) -> None:
    phones = [phone("yealink", 1), phone("linksys", 2), phone("linksys", 3, user="")]
    record: dict[str, list[NotifySeen]] = {}
    ports = NotifyPorts(reactor, phones, lambda p: None, record)
    bound = ports.start()
    assert bound == {phones[0].mac: 40000, phones[1].mac: 40001}
    assert [b[2].host for b in reactor.bound] == ["127.0.0.1", "127.0.0.1"]
    ports.stop()
    assert not any(b[2].open for b in reactor.bound)
