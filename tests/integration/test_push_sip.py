"""The push's NOTIFY (xprov/push/transaction.py) against a real SIP endpoint: SIPp (Debian
sip-tester) as the phone, a UAS on loopback playing a scenario of tests/data/sipp/, with its
own checks (regexps on the headers, <verifyauth> on the digest). Our sender runs on a real
socket and a reactor of its own, driven here until its result comes (bounded in steps and
time). Per event: check-sync for a Yealink and a phone not in the inventory, resync (with
its challenge) for an SPA."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.epollreactor import EPollReactor

from tests.helpers import wait_for
from tests.peers import Sipp, free_udp_tcp_port
from tests.unit.test_push_notify import digest_params, md5, param, parse_request
from xprov.push.model import Contact, PushResult
from xprov.push.transaction import NotifySender

pytestmark = pytest.mark.peers

HOST = "127.0.0.1"
DEADLINE = 30.0  # s for one exchange on a loaded 2-core machine (most take milliseconds)
STEPS = 10_000  # reactor iterations at most (each waits 10 ms at most for a datagram)
USER, PASSWORD = "2002", "s3cret-pw"


@pytest.fixture
def reactor() -> Iterator[EPollReactor]:
    reactor = EPollReactor()
    yield reactor
    reactor.runUntilCurrent()  # the port's close, scheduled by close()
    for reader in list(reactor.getReaders()):
        reactor.removeReader(reader)
    for call in reactor.getDelayedCalls():
        call.cancel()
    reactor._poller.close()


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[list[Sipp]]:
    """Start SIPp with `start(scenario, **keys)`; stopped at the end whatever happened."""
    started: list[Sipp] = []
    yield started
    for peer in started:
        peer.stop()


def start(started: list[Sipp], directory: Path, scenario: str, **keys: str) -> Sipp:
    peer = Sipp(directory / "sipp", scenario, free_udp_tcp_port(HOST), HOST, keys=keys)
    started.append(peer)
    peer.start()
    return peer


def spied(sender: NotifySender) -> list[bytes]:
    """Every datagram our sender writes, in order (its transport's write, wrapped)."""
    written: list[bytes] = []
    transport = sender.protocol.transport
    write = transport.write

    def recording(datagram: bytes, addr: tuple[str, int]) -> None:
        written.append(datagram)
        write(datagram, addr)

    transport.write = recording  # type: ignore[method-assign]
    return written


def result_of(reactor: EPollReactor, deferred: Deferred[PushResult]) -> PushResult:
    got: list[PushResult] = []
    deferred.addCallback(got.append)
    deadline = time.monotonic() + DEADLINE
    for _ in range(STEPS):
        if got or time.monotonic() > deadline:
            break
        reactor.runUntilCurrent()
        reactor.doIteration(0.01)
    assert got, f"no result within {DEADLINE} s"
    return got[0]


def headers_of(message: str) -> tuple[str, dict[str, str]]:
    """The request line and headers of a request as SIPp received it (each header once)."""
    return parse_request(message.encode())


@pytest.mark.parametrize(
    ("vendor", "event"), [("yealink", "check-sync;reboot=false"), (None, "check-sync")]
)
def test_check_sync_is_taken_and_answered_200(
    reactor, sipp, tmp_path: Path, vendor: str | None, event: str
) -> None:
    peer = start(sipp, tmp_path, "notify_answer.xml")
    sender = NotifySender(reactor, HOST)
    written = spied(sender)
    uri = f"sip:1001@{HOST}:{peer.port}"
    result = result_of(reactor, sender.send(Contact("1001", uri, vendor)))
    assert result == PushResult("ok", 200, "200 OK", 1)
    assert peer.wait() == 0, peer.errors()  # every regexp of the scenario matched
    received = peer.messages()
    # what SIPp got is what we sent, byte for byte (a retransmission if SIPp was slow)
    assert [m.encode() for m in received] == written and len(set(written)) == 1
    line, headers = headers_of(received[0])
    assert line == f"NOTIFY {uri} SIP/2.0"
    assert headers["Event"] == event and headers["Subscription-State"] == "terminated"
    assert headers["To"] == f"<sip:1001@{HOST}>" and headers["CSeq"] == "1 NOTIFY"
    assert headers["Via"].startswith(f"SIP/2.0/UDP {HOST}:")
    assert f"event= {event}|state= terminated|cseq= 1 NOTIFY" in peer.actions()
    assert sender.in_flight == 0
    sender.close()


def test_an_error_answer_keeps_its_code(reactor, sipp, tmp_path: Path) -> None:
    peer = start(sipp, tmp_path, "notify_bad_event.xml")
    sender = NotifySender(reactor, HOST)
    contact = Contact("1001", f"sip:1001@{HOST}:{peer.port}", "yealink")
    assert result_of(reactor, sender.send(contact)) == PushResult("error", 489, "489 Bad Event", 1)
    assert peer.wait() == 0, peer.errors()
    sender.close()


def test_resync_is_challenged_and_answered_with_the_lines_digest(
    reactor, sipp, tmp_path: Path
) -> None:
    peer = start(sipp, tmp_path, "notify_challenge.xml", user=USER, password=PASSWORD)
    sender = NotifySender(reactor, HOST)
    uri = f"sip:{USER}@{HOST}:{peer.port}"
    spa = Contact(USER, uri, "linksys", "000e08000002", (USER, PASSWORD))
    assert result_of(reactor, sender.send(spa)) == PushResult("ok", 200, "200 OK", 2)
    assert peer.wait() == 0, peer.errors()  # SIPp's <verifyauth> accepted the digest
    assert "verified=true" in peer.actions()
    received = [headers_of(m) for m in peer.messages()]
    (first_line, first), (retry_line, retry) = received[0], received[-1]
    assert first_line == retry_line == f"NOTIFY {uri} SIP/2.0"
    assert first["Event"] == retry["Event"] == "resync" and "Authorization" not in first
    assert (first["CSeq"], retry["CSeq"]) == ("1 NOTIFY", "2 NOTIFY")
    assert first["Call-ID"] == retry["Call-ID"] and first["From"] == retry["From"]
    assert param(first["Via"], "branch") != param(retry["Via"], "branch")
    answer = digest_params(retry["Authorization"])
    assert (answer["username"], answer["realm"], answer["uri"]) == (USER, "spa.test", uri)
    assert (answer["nonce"], answer["opaque"], answer["qop"]) == (
        "b8f1ad21c7c0d9e5",
        "0p4que",
        "auth",
    )
    ha1, ha2 = md5(f"{USER}:spa.test:{PASSWORD}"), md5(f"NOTIFY:{uri}")
    expected = md5(f"{ha1}:b8f1ad21c7c0d9e5:{answer['nc']}:{answer['cnonce']}:auth:{ha2}")
    assert answer["response"] == expected and answer["nc"] == "00000001"
    sender.close()


def test_a_wrong_password_fails_the_phones_digest_check(reactor, sipp, tmp_path: Path) -> None:
    """The check above is a real one: SIPp refuses the digest of another password."""
    peer = start(sipp, tmp_path, "notify_challenge.xml", user=USER, password=PASSWORD)
    sender = NotifySender(reactor, HOST)
    spa = Contact(USER, f"sip:{USER}@{HOST}:{peer.port}", "linksys", None, (USER, "guessed"))
    assert result_of(reactor, sender.send(spa)) == PushResult("error", 403, "403 Forbidden", 2)
    assert peer.wait() != 0 and "the digest did not verify" in peer.errors()
    assert "verified=false" in peer.actions()
    sender.close()


def test_a_silent_phone_gets_every_retransmission_then_the_timeout(
    reactor, sipp, tmp_path: Path
) -> None:
    """RFC 3261 section 17.1.2.2 on a real socket, on a clock ten times faster than the
    defaults (T1 0.05 s, T2 0.4 s, Timer F 3.2 s: the same code; the default timers are
    checked on task.Clock in tests/unit/test_push_notify.py): the request and its 10
    retransmissions reach SIPp, then the send ends as a timeout."""
    peer = start(sipp, tmp_path, "notify_silent.xml")
    sender = NotifySender(reactor, HOST, t1=0.05, t2=0.4)
    written = spied(sender)
    contact = Contact("1001", f"sip:1001@{HOST}:{peer.port}", "yealink")
    result = result_of(reactor, sender.send(contact))
    assert result == PushResult("timeout", None, "no final response in 3.2 s", 1)
    assert len(written) == 11 and len(set(written)) == 1  # the same bytes each time
    wait_for(lambda: len(peer.messages()) >= 11, DEADLINE, "11 NOTIFYs at SIPp")
    assert [m.encode() for m in peer.messages()] == written
    assert peer.messages("sent") == []
    sender.close()
