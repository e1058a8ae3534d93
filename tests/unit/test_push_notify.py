"""The push's NOTIFY (xprov/push/notify.py) and its UDP transactions (xprov/push/transaction.py)
on task.Clock with a fake UDP port: the request, RFC 3261 section 17.1.2.2's timers, the
Digest answer to a challenge, and what is ignored."""

from __future__ import annotations

import bisect
import errno
import hashlib
import json
import socket

import pytest
from twisted.internet import task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.base import DelayedCall
from twisted.internet.defer import CancelledError, Deferred

from xprov import __version__
from xprov.auth import digest_response
from xprov.push import notify
from xprov.push.model import Contact, PushResult
from xprov.push.notify import Challenge, Refusal, Target, answer, build_notify, target_of
from xprov.push.transaction import MAX_IN_FLIGHT, NotifySender
from xprov.sipmessage import MAX_HEADERS, MAX_MESSAGE, Request, parse_response

YEALINK = Contact("1001", "sip:1001@192.0.2.10:5062", "yealink", "001565000001")
SPA = Contact("2002", "sip:2002@192.0.2.20:5061", "linksys", "000e08000002", ("2002", "s3cret-pw"))
# Timer E from T1 = 0.5 s doubling to T2 = 4 s, until Timer F at 64 * T1 = 32 s
RETRANSMITTED_AT = [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]


class FakeUdp:
    """The UDP port listenUDP gives the sender: what it writes, with the clock's time."""

    def __init__(self, clock: task.Clock, protocol, host: str) -> None:
        self.clock, self.protocol, self.host = clock, protocol, host
        self.sent: list[tuple[float, bytes, tuple[str, int]]] = []
        self.errors: list[OSError] = []  # raised by the next writes, in order
        self.stopped = False

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((self.clock.seconds(), datagram, addr))

    def getHost(self):
        kind = IPv6Address if ":" in self.host else IPv4Address
        return kind("UDP", self.host, 40000)

    def stopListening(self) -> None:
        self.stopped = True
        self.protocol.doStop()

    def answer(self, data: bytes) -> None:
        """A datagram arrives for the sender."""
        self.protocol.datagramReceived(data, ("192.0.2.10", 5062))


class FakeReactor(task.Clock):
    def __init__(self, local: str = "10.0.0.5") -> None:
        super().__init__()
        self.local = local

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        assert port == 0 and maxPacketSize == MAX_MESSAGE
        self.interface = interface
        self.udp = FakeUdp(self, protocol, self.local)
        protocol.makeConnection(self.udp)
        return self.udp


def sender(local: str = "10.0.0.5", bind: str = "10.0.0.5", **kwargs) -> NotifySender:
    return NotifySender(FakeReactor(local), bind, **kwargs)


def udp(s: NotifySender) -> FakeUdp:
    return s.clock.udp  # type: ignore[attr-defined]


def parse_request(data: bytes) -> tuple[str, dict[str, str]]:
    """The request line and the headers of a request we sent (each header once)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep and body == b""
    lines = head.decode("ascii").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(": ")
        assert name not in headers
        headers[name] = value
    return lines[0], headers


def param(header: str, name: str) -> str:
    for part in header.split(";")[1:]:
        key, _, value = part.partition("=")
        if key == name:
            return value
    raise AssertionError(f"no {name} in {header}")


def reply(request: bytes, status: str = "200 OK", extra: tuple[str, ...] = (), **changes) -> bytes:
    """What a UAS answers to `request`: its Via, From, To (with a tag), Call-ID, CSeq."""
    _, headers = parse_request(request)
    echoed = {
        "Via": headers["Via"] + ";received=192.0.2.99;rport=40000",
        "From": headers["From"],
        "To": headers["To"] + ";tag=phone",
        "Call-ID": headers["Call-ID"],
        "CSeq": headers["CSeq"],
    }
    echoed.update(changes)
    lines = [f"SIP/2.0 {status}"] + [f"{k}: {v}" for k, v in echoed.items() if v is not None]
    return ("\r\n".join([*lines, *extra, "Content-Length: 0"]) + "\r\n\r\n").encode()


def results(deferred: Deferred) -> list:
    got: list = []
    deferred.addBoth(got.append)
    return got


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


# -- the request


def test_the_notify_request_is_exactly_what_rfc_3261_and_6665_ask() -> None:
    request = Request("z9hG4bK0123456789abcdef", "0123456789abcdef01234567@xprov", "89abcdef")
    target = target_of(YEALINK)
    assert isinstance(target, Target)
    data = build_notify(target, "check-sync;reboot=false", ("10.0.0.5", 40000), request)
    assert data == (
        b"NOTIFY sip:1001@192.0.2.10:5062 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.5:40000;branch=z9hG4bK0123456789abcdef;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:xprov@10.0.0.5>;tag=89abcdef\r\n"
        b"To: <sip:1001@192.0.2.10>\r\n"
        b"Call-ID: 0123456789abcdef01234567@xprov\r\n"
        b"CSeq: 1 NOTIFY\r\n"
        b"Event: check-sync;reboot=false\r\n"
        b"Subscription-State: terminated\r\n"
        b"User-Agent: xprov/" + __version__.encode() + b"\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    )


@pytest.mark.parametrize(
    ("vendor", "event"),
    [
        ("yealink", "check-sync;reboot=false"),
        ("linksys", "resync"),
        (None, "check-sync"),
        ("polycom", "check-sync"),
    ],
)
def test_what_the_sender_sends_parsed_back(vendor: str | None, event: str) -> None:
    s = sender()
    s.send(Contact("1001", "sip:1001@192.0.2.10:5062;line=abc", vendor))
    [(at, data, addr)] = udp(s).sent
    line, headers = parse_request(data)
    assert (at, addr) == (0.0, ("192.0.2.10", 5062))
    assert line == "NOTIFY sip:1001@192.0.2.10:5062;line=abc SIP/2.0"
    assert list(headers) == [
        "Via",
        "Max-Forwards",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Event",
        "Subscription-State",
        "User-Agent",
        "Content-Length",
    ]
    via, branch = headers["Via"], param(headers["Via"], "branch")
    assert via.startswith("SIP/2.0/UDP 10.0.0.5:40000;") and via.endswith(";rport")
    assert branch.startswith("z9hG4bK") and len(branch) >= 7 + 16
    assert headers["From"].startswith("<sip:xprov@10.0.0.5>;tag=")
    assert len(param(headers["From"], "tag")) >= 8
    assert headers["To"] == "<sip:1001@192.0.2.10>"  # no tag: outside any dialog
    assert headers["Call-ID"].endswith("@xprov") and len(headers["Call-ID"]) > 20
    assert headers["CSeq"] == "1 NOTIFY"
    assert headers["Event"] == event
    assert headers["Subscription-State"] == "terminated"
    assert headers["Max-Forwards"] == "70"
    assert headers["User-Agent"] == f"xprov/{__version__}"
    assert headers["Content-Length"] == "0"
    assert udp(s).protocol.transport is udp(s) and s.clock.interface == "10.0.0.5"


def test_an_event_given_overrides_the_vendors_and_a_bad_one_is_refused() -> None:
    s = sender()
    s.send(YEALINK, "check-sync")
    assert parse_request(udp(s).sent[0][1])[1]["Event"] == "check-sync"
    for bad in ("resync\r\nX-Injected: 1", "", "check sync", "resync;"):
        with pytest.raises(ValueError):
            s.send(YEALINK, bad)
    assert len(udp(s).sent) == 1


def test_every_notify_has_fresh_identifiers() -> None:
    s = sender()
    s.send(YEALINK)
    s.send(YEALINK)
    (_, first, _), (_, second, _) = udp(s).sent
    a, b = parse_request(first)[1], parse_request(second)[1]
    assert param(a["Via"], "branch") != param(b["Via"], "branch")
    assert a["Call-ID"] != b["Call-ID"] and a["From"] != b["From"]
    assert s.in_flight == 2


def test_ipv6_contact_and_bind() -> None:
    s = sender("2001:db8::5", "::")  # bound to every IPv6 address; the fake port says where
    s.send(Contact("1001", "sip:1001@[2001:db8::10]:5062", "yealink"))
    [(_, data, addr)] = udp(s).sent
    line, headers = parse_request(data)
    assert addr == ("2001:db8::10", 5062)
    assert line == "NOTIFY sip:1001@[2001:db8::10]:5062 SIP/2.0"
    assert headers["To"] == "<sip:1001@[2001:db8::10]>"
    assert headers["Via"].startswith("SIP/2.0/UDP [2001:db8::5]:40000;")
    assert headers["From"].startswith("<sip:xprov@[2001:db8::5]>;tag=")


def test_bound_to_every_address_the_via_names_the_routes_source() -> None:
    """[push] bind = 0.0.0.0: the Via names the address the kernel's route leaves from
    (asked of a connected UDP socket, which sends nothing), not 0.0.0.0."""
    s = sender("0.0.0.0", "0.0.0.0")
    s.send(Contact("1001", "sip:1001@127.0.0.1:5062", "yealink"))
    headers = parse_request(udp(s).sent[0][1])[1]
    assert headers["Via"].startswith("SIP/2.0/UDP 127.0.0.1:40000;")
    assert headers["From"].startswith("<sip:xprov@127.0.0.1>;")


@pytest.mark.parametrize(
    ("uri", "user", "detail"),
    [
        ("sips:1001@192.0.2.10", "1001", "not a sip: URI"),
        ("tel:+15551234", "1001", "not a sip: URI"),
        ("sip:1001@phone.example.com:5060", "1001", "host is not an IP address"),
        ("sip:1001@localhost", "1001", "host is not an IP address"),
        ("sip:1001@", "1001", "no host"),
        ("sip:1001@192.0.2.10:0", "1001", "malformed port"),
        ("sip:1001@192.0.2.10:65536", "1001", "malformed port"),
        ("sip:1001@192.0.2.10:", "1001", "malformed port"),
        ("sip:1001@192.0.2.10:50x", "1001", "malformed port"),
        ("sip:1001@[2001:db8::1", "1001", "malformed IPv6 reference"),
        ("sip:1001@[192.0.2.10]", "1001", "malformed IPv6 reference"),
        ("sip:1001@[fe80::1%25eth0]", "1001", "malformed IPv6 reference"),
        ("sip:1001@192.0.2.10;transport=tcp", "1001", "transport=tcp"),
        ("sip:1001@192.0.2.10?Subject=x", "1001", "URI with headers"),
        ("sip:1001@192.0.2.10\r\nX-Injected: 1", "1001", "a space, a control"),
        ("sip:1001@192.0.2.10>", "1001", "a space, a control"),
        ("sip:1001@192.0.2.10;x=" + "a" * 500, "1001", "longer than 512"),
        ("sip:1001@224.0.0.1", "1001", "not a unicast address"),
        ("sip:1001@0.0.0.0", "1001", "not a unicast address"),
        ("sip:1001@192.0.2.10", "10 01", "not a SIP user"),
        ("sip:1001@192.0.2.10", "1001>\r\nX: 1", "not a SIP user"),
        ("sip:1001@[2001:db8::1]", "1001", "an IPv6 contact and an IPv4 bind"),
    ],
)
def test_a_contact_we_cannot_send_to_is_unreachable_at_once(
    uri: str, user: str, detail: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(*args, **kwargs):
        raise AssertionError("a name was resolved")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    s = sender()
    [result] = results(s.send(Contact(user, uri, "yealink")))
    assert result.outcome == "unreachable" and result.code is None and result.attempts == 0
    assert detail in result.detail
    assert udp(s).sent == [] and s.in_flight == 0 and s.clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    ("uri", "host", "port"),
    [
        ("sip:1001@192.0.2.10", "192.0.2.10", 5060),
        ("SIP:1001@192.0.2.10:5062;transport=UDP;ob", "192.0.2.10", 5062),
        ("sip:192.0.2.10:5070", "192.0.2.10", 5070),  # a `received` without a user
        ("sip:1001;npdi@192.0.2.10:5062", "192.0.2.10", 5062),
        ("sip:1001@[2001:DB8::0:1]:5062", "2001:db8::1", 5062),
    ],
)
def test_contacts_we_send_to(uri: str, host: str, port: int) -> None:
    target = target_of(Contact("1001", uri))
    assert isinstance(target, Target)
    assert (target.uri, target.host, target.port) == (uri, host, port)


# -- RFC 3261 section 17.1.2.2 timers


def test_retransmitted_at_timer_e_until_timer_f() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    while s.clock.seconds() < 40:
        s.clock.advance(0.25)
    sent = udp(s).sent
    assert [at for at, _, _ in sent] == [0.0, *RETRANSMITTED_AT]
    assert len({data for _, data, _ in sent}) == 1  # the same bytes each time
    assert got == [PushResult("timeout", None, "no final response in 32 s", 1)]
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []


def test_a_late_reactor_loses_no_retransmission() -> None:
    """Timer E is set from when it was due, not from when it ran: a reactor that runs its
    timers late (every 0.3 s here) still sends all ten retransmissions before Timer F."""
    s = sender()
    got = results(s.send(YEALINK))
    s.clock.pump([0.3] * 120)
    assert len(udp(s).sent) == 1 + len(RETRANSMITTED_AT)
    assert got == [PushResult("timeout", None, "no final response in 32 s", 1)]


def test_a_provisional_response_makes_every_later_interval_t2() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    s.clock.pump([0.25] * 4)
    udp(s).answer(reply(udp(s).sent[0][1], "100 Trying"))
    while s.clock.seconds() < 13.5:
        s.clock.advance(0.25)
    # Timer E set before the 1xx still fires at 1.5; every interval after it is T2
    assert [at for at, _, _ in udp(s).sent] == [0.0, 0.5, 1.5, 5.5, 9.5, 13.5]
    assert got == [] and s.in_flight == 1
    udp(s).answer(reply(udp(s).sent[0][1], "180 Ringing"))
    udp(s).answer(reply(udp(s).sent[0][1], "200 OK"))
    assert got == [PushResult("ok", 200, "200 OK", 1)]
    s.clock.advance(40)
    assert len(udp(s).sent) == 6 and s.clock.getDelayedCalls() == []


def test_provisional_responses_alone_still_end_at_timer_f() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    udp(s).answer(reply(udp(s).sent[0][1], "100 Trying"))
    s.clock.pump([0.25] * 160)
    assert [at for at, _, _ in udp(s).sent] == [0.0, 0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
    assert got == [PushResult("timeout", None, "no final response in 32 s", 1)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("200 OK", PushResult("ok", 200, "200 OK", 1)),
        ("202 Accepted", PushResult("ok", 202, "202 Accepted", 1)),
        ("500 Server Internal Error", PushResult("error", 500, "500 Server Internal Error", 1)),
        ("489 Bad Event", PushResult("error", 489, "489 Bad Event", 1)),
        ("302 Moved Temporarily", PushResult("error", 302, "302 Moved Temporarily", 1)),
        ("603 Decline\x1b[31m", PushResult("error", 603, "603 Decline?[31m", 1)),
    ],
)
def test_a_final_response_ends_it(status: str, expected: PushResult) -> None:
    s = sender()
    got = results(s.send(YEALINK))
    s.clock.advance(0.6)
    udp(s).answer(reply(udp(s).sent[0][1], status))
    assert got == [expected]
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []
    udp(s).answer(reply(udp(s).sent[0][1], status))  # its retransmission: nothing to end
    s.clock.advance(40)
    assert len(udp(s).sent) == 2 and got == [expected] and s.ignored == 1


# -- challenges (RFC 3261 section 22.2, RFC 2617)


def challenge_header(qop: bool = True, opaque: str | None = None, name: str = "WWW") -> str:
    value = f'{name}-Authenticate: Digest realm="spa", nonce="n0nce-1", algorithm=MD5'
    value += ', qop="auth,auth-int"' if qop else ""
    value += f', opaque="{opaque}"' if opaque else ""
    return value


def digest_params(header: str) -> dict[str, str]:
    assert header.startswith("Digest ")
    params = {}
    for part in header[7:].split(", "):
        key, _, value = part.partition("=")
        params[key] = value.strip('"')
    return params


@pytest.mark.parametrize("qop", [True, False])
def test_a_challenge_is_answered_once_with_the_lines_digest(qop: bool) -> None:
    s = sender()
    got = results(s.send(SPA))
    first = udp(s).sent[0][1]
    s.clock.advance(0.2)
    udp(s).answer(reply(first, "401 Unauthorized", (challenge_header(qop, "op\\\\aque"),)))
    assert len(udp(s).sent) == 2 and s.in_flight == 1
    line, retry = parse_request(udp(s).sent[1][1])
    _, original = parse_request(first)
    assert line == "NOTIFY sip:2002@192.0.2.20:5061 SIP/2.0"
    assert param(retry["Via"], "branch") != param(original["Via"], "branch")
    assert retry["CSeq"] == "2 NOTIFY"
    assert retry["Call-ID"] == original["Call-ID"] and retry["From"] == original["From"]
    assert retry["To"] == original["To"] and retry["Event"] == "resync"
    params = digest_params(retry["Authorization"])
    assert params["username"] == "2002" and params["realm"] == "spa"
    assert params["nonce"] == "n0nce-1" and params["uri"] == "sip:2002@192.0.2.20:5061"
    assert params["algorithm"] == "MD5"
    assert params["opaque"] == "op\\\\aque"  # a quoted-pair for the backslash
    ha1, ha2 = md5("2002:spa:s3cret-pw"), md5("NOTIFY:sip:2002@192.0.2.20:5061")
    if qop:
        assert params["qop"] == "auth" and params["nc"] == "00000001"
        assert len(params["cnonce"]) >= 16
        text = f"{ha1}:n0nce-1:00000001:{params['cnonce']}:auth:{ha2}"
    else:
        assert "qop" not in params and "cnonce" not in params and "nc" not in params
        text = f"{ha1}:n0nce-1:{ha2}"
    assert params["response"] == md5(text)
    # the new transaction's own timers: retransmitted 0.5 s after the retry
    s.clock.advance(0.5)
    assert [at for at, _, _ in udp(s).sent] == [0.0, 0.2, 0.7]
    assert udp(s).sent[2][1] == udp(s).sent[1][1]
    udp(s).answer(reply(udp(s).sent[1][1], "200 OK"))
    assert got == [PushResult("ok", 200, "200 OK", 2)]
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []


def test_a_407_is_answered_with_proxy_authorization() -> None:
    s = sender()
    got = results(s.send(SPA))
    udp(s).answer(
        reply(
            udp(s).sent[0][1],
            "407 Proxy Authentication Required",
            (challenge_header(name="Proxy"),),
        )
    )
    _, retry = parse_request(udp(s).sent[1][1])
    assert "Authorization" not in retry
    assert digest_params(retry["Proxy-Authorization"])["realm"] == "spa"
    udp(s).answer(reply(udp(s).sent[1][1], "200 OK"))
    assert got == [PushResult("ok", 200, "200 OK", 2)]


def test_the_digest_of_rfc_2617_section_3_5() -> None:
    """The shared digest (xprov.auth) gives the RFC's own example answer."""
    assert (
        digest_response(
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            ("00000001", "0a4f113b"),
        )
        == "6629fae49393a05397450978507c4ef1"
    )


def test_the_answer_quotes_what_it_echoes() -> None:
    challenge = Challenge("Authorization", 'r"e', "n", True, None)
    value = answer(challenge, ('us"er', "pw"), "sip:1@192.0.2.1", "c0ffee").value  # type: ignore[union-attr]
    assert value.startswith('Digest username="us\\"er", realm="r\\"e", nonce="n", ')
    refused = answer(challenge, ("us\ner", "pw"), "sip:1@192.0.2.1", "c0ffee")
    assert isinstance(refused, Refusal) and "control character" in refused.detail


def test_a_second_challenge_is_unauthorized() -> None:
    s = sender()
    got = results(s.send(SPA))
    udp(s).answer(reply(udp(s).sent[0][1], "401 Unauthorized", (challenge_header(),)))
    udp(s).answer(reply(udp(s).sent[1][1], "401 Unauthorized", (challenge_header(),)))
    assert got == [PushResult("unauthorized", 401, "401 Unauthorized to the answer", 2)]
    assert len(udp(s).sent) == 2 and s.in_flight == 0 and s.clock.getDelayedCalls() == []


def test_a_challenge_without_credentials_is_unauthorized() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    udp(s).answer(reply(udp(s).sent[0][1], "401 Unauthorized", (challenge_header(),)))
    assert got == [PushResult("unauthorized", 401, "401 Unauthorized: no credentials", 1)]
    assert len(udp(s).sent) == 1 and s.in_flight == 0


@pytest.mark.parametrize(
    ("header", "why"),
    [
        ('WWW-Authenticate: Digest realm="a", nonce="n", algorithm=SHA-256', "not MD5"),
        ('WWW-Authenticate: Digest realm="a", nonce="n", qop="auth-int"', "qop without auth"),
        ('WWW-Authenticate: Digest realm="a"', "without realm or nonce"),
        ('WWW-Authenticate: Basic realm="a"', "no www-authenticate Digest challenge"),
        ('WWW-Authenticate: Digest realm="a", nonce="n\x7f"', "control or non-ASCII"),
        ('WWW-Authenticate: Digest realm="\u00e9", nonce="n"', "control or non-ASCII"),
        ("WWW-Authenticate: Digest realm=a, nonce=" + "n" * 3000, "no www-authenticate"),
        ('Proxy-Authenticate: Digest realm="a", nonce="n"', "no www-authenticate"),
    ],
)
def test_a_challenge_we_cannot_answer_is_unauthorized(header: str, why: str) -> None:
    s = sender()
    got = results(s.send(SPA))
    udp(s).answer(reply(udp(s).sent[0][1], "401 Unauthorized", (header,)))
    [result] = got
    assert (result.outcome, result.code, result.attempts) == ("unauthorized", 401, 1)
    assert result.detail.startswith("cannot answer the challenge: ") and why in result.detail
    assert len(udp(s).sent) == 1


def test_the_first_challenge_we_can_answer_is_answered() -> None:
    s = sender()
    s.send(SPA)
    sha = 'WWW-Authenticate: Digest realm="x", nonce="sha", algorithm=SHA-256'
    udp(s).answer(reply(udp(s).sent[0][1], "401 Unauthorized", (sha, challenge_header())))
    assert digest_params(parse_request(udp(s).sent[1][1])[1]["Authorization"])["nonce"] == (
        "n0nce-1"
    )


def test_no_secret_in_the_logs(log_events) -> None:
    s = sender()
    got = results(s.send(SPA))
    udp(s).answer(reply(udp(s).sent[0][1], "401 Unauthorized", (challenge_header(),)))
    authorization = parse_request(udp(s).sent[1][1])[1]["Authorization"]
    udp(s).answer(reply(udp(s).sent[1][1], "200 OK"))
    assert got[0].outcome == "ok" and "s3cret-pw" not in repr(got[0]) + repr(SPA)
    events = log_events()
    assert [e["event"] for e in events] == ["notify_challenged", "notify_result"]
    assert events[1]["outcome"] == "ok" and events[1]["user"] == "2002"
    text = json.dumps(events)
    response = digest_params(authorization)["response"]
    for secret in ("s3cret-pw", response, md5("2002:spa:s3cret-pw"), "Digest"):
        assert secret not in text


# -- what is ignored (RFC 3261 section 17.1.3)


@pytest.mark.parametrize(
    "changes",
    [
        {"Via": "SIP/2.0/UDP 10.0.0.5:40000;branch=z9hG4bKother;rport"},
        {"Via": None},
        {"Call-ID": "other@xprov"},
        {"CSeq": "2 NOTIFY"},
        {"CSeq": "1 OPTIONS"},
        {"CSeq": None},
    ],
)
def test_responses_to_something_else_are_ignored(changes: dict) -> None:
    s = sender()
    got = results(s.send(YEALINK))
    udp(s).answer(reply(udp(s).sent[0][1], "200 OK", **changes))
    udp(s).answer(reply(udp(s).sent[0][1], "500 Server Internal Error", **changes))
    assert got == [] and s.in_flight == 1 and s.ignored == 2
    udp(s).answer(reply(udp(s).sent[0][1], "200 OK"))
    assert got == [PushResult("ok", 200, "200 OK", 1)]


def test_a_response_to_the_first_transaction_is_ignored_after_the_answer() -> None:
    s = sender()
    got = results(s.send(SPA))
    first = udp(s).sent[0][1]
    udp(s).answer(reply(first, "401 Unauthorized", (challenge_header(),)))
    udp(s).answer(reply(first, "401 Unauthorized", (challenge_header(),)))  # retransmitted
    udp(s).answer(reply(first, "200 OK"))
    assert got == [] and s.in_flight == 1 and s.ignored == 2
    udp(s).answer(reply(udp(s).sent[1][1], "200 OK"))
    assert got == [PushResult("ok", 200, "200 OK", 2)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\xff\xfe\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"NOTIFY sip:x SIP/2.0\r\n\r\n",
    ],
)
def test_malformed_datagrams_are_ignored(data: bytes) -> None:
    s = sender()
    got = results(s.send(YEALINK))
    udp(s).answer(data)
    assert got == [] and s.in_flight == 1 and s.ignored == 1


def test_a_response_over_the_bounds_is_ignored() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    request = udp(s).sent[0][1]
    many = tuple(f"X-H{i}: {i}" for i in range(MAX_HEADERS))  # with the echoed ones: too many
    udp(s).answer(reply(request, "200 OK", many))
    padded = reply(request, "200 OK", ("X-Pad: " + "p" * MAX_MESSAGE,))
    udp(s).answer(padded)
    assert got == [] and s.ignored == 2
    # at the bounds: parsed
    fits = reply(request, "200 OK", many[: MAX_HEADERS - 6])  # 5 echoed + Content-Length
    assert fits.count(b"\r\n") - 2 == MAX_HEADERS
    udp(s).answer(fits)
    assert got == [PushResult("ok", 200, "200 OK", 1)]


def test_the_shared_parser_reads_compact_names_and_folded_lines() -> None:
    data = (
        b"SIP/2.0 401 Unauthorized\r\nv: SIP/2.0/UDP x;branch=z9hG4bKa\r\ni: c@x\r\n"
        b'CSeq: 1 NOTIFY\r\no: resync\r\nWWW-Authenticate: Digest realm="a",\r\n'
        b' nonce="n"\r\nl: 0\r\n\r\n'
    )
    response = parse_response(data)
    assert response is not None
    assert response.first("event") == "resync" and response.first("call-id") == "c@x"
    assert response.headers["www-authenticate"] == ['Digest realm="a", nonce="n"']
    assert parse_response(data[: len(data) - 4] + b"\r\n" * (MAX_HEADERS + 2)) is not None
    assert parse_response(b"SIP/2.0 200 OK" + b"\r\nX: 1" * (MAX_HEADERS + 1)) is None


# -- the bound on what is in flight, send errors, close, cancel


class ManyTimersReactor(FakeReactor):
    """task.Clock sorts every call on each callLater and scans them all on each cancel: with
    20,000 timers that takes minutes. Here a call is inserted in order and a cancelled one
    only marked (the test that uses it never advances the clock)."""

    def callLater(self, delay, f, *args, **kw):
        call = DelayedCall(
            self.seconds() + delay, f, args, kw, lambda c: None, lambda c: None, self.seconds
        )
        bisect.insort(self.calls, call, key=lambda c: c.getTime())
        return call

    def getDelayedCalls(self):
        return [call for call in self.calls if not call.cancelled]

    def advance(self, amount):
        raise AssertionError("cancelled calls are still in self.calls")


def test_beyond_max_in_flight_a_send_is_refused_at_once() -> None:
    s = NotifySender(ManyTimersReactor(), "10.0.0.5")
    pending = [
        s.send(Contact("1001", f"sip:1001@192.0.2.{i % 250 + 1}:{5060 + i // 250}"))
        for i in range(MAX_IN_FLIGHT)
    ]
    assert s.in_flight == MAX_IN_FLIGHT == 10_000 and len(udp(s).sent) == MAX_IN_FLIGHT
    [refused] = results(s.send(YEALINK))
    assert refused == PushResult("unreachable", None, "too many NOTIFYs in flight", 0)
    assert len(udp(s).sent) == MAX_IN_FLIGHT
    first = udp(s).sent[0][1]
    udp(s).answer(reply(first, "200 OK"))  # one ends: room for one more
    assert results(pending[0])[0].outcome == "ok"
    s.send(YEALINK)
    assert s.in_flight == MAX_IN_FLIGHT and len(udp(s).sent) == MAX_IN_FLIGHT + 1
    s.close()
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []


def test_a_send_error_is_unreachable_and_a_full_buffer_a_lost_datagram() -> None:
    s = sender()
    udp(s).errors.append(OSError(errno.ENETUNREACH, "Network is unreachable"))
    [result] = results(s.send(YEALINK))
    assert result.outcome == "unreachable" and result.attempts == 1
    assert result.detail.startswith("cannot send: ") and "unreachable" in result.detail
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []
    udp(s).errors.append(OSError(errno.EAGAIN, "Resource temporarily unavailable"))
    got = results(s.send(YEALINK))
    assert got == [] and udp(s).sent == [] and s.in_flight == 1
    s.clock.advance(0.5)  # Timer E sends it again
    assert [at for at, _, _ in udp(s).sent] == [0.5] and got == []


def test_close_ends_what_is_in_flight_and_refuses_more() -> None:
    s = sender()
    got = results(s.send(YEALINK))
    s.close()
    assert got == [PushResult("timeout", None, "sender closed before a final response", 1)]
    assert udp(s).stopped and s.clock.getDelayedCalls() == []
    [after] = results(s.send(YEALINK))
    assert after == PushResult("unreachable", None, "sender closed", 0)


def test_a_cancelled_send_stops_its_timers() -> None:
    s = sender()
    pending = s.send(YEALINK)
    got = results(pending)
    pending.cancel()
    assert len(got) == 1 and got[0].check(CancelledError)
    assert s.in_flight == 0 and s.clock.getDelayedCalls() == []
    udp(s).answer(reply(udp(s).sent[0][1], "200 OK"))
    assert s.ignored == 1 and len(udp(s).sent) == 1


def test_target_refusals_are_typed() -> None:
    assert target_of(Contact("1", "tel:1")) == Refusal(
        "not a sip: URI (NOTIFYs go over UDP: no sips:, no tel:)"
    )
    assert notify.event_for("linksys") == "resync"
