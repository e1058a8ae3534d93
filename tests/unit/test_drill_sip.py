"""The simulated phones' SIP (issue 18), pure: the firmware timers and their sources, the SIP
servers a file names in the phone's order, and a phone's answer to hand-made NOTIFYs
(Yealink check-sync; SPA resync behind a digest challenge)."""

from __future__ import annotations

import hashlib
import re
import tomllib

import pytest

from tests.helpers import sample_config
from xprov.build import load
from xprov.drill import firmware, sipmsg
from xprov.drill.phones import SimPhone, SipServer, proxies, sip_servers, sites_in
from xprov.drill.sipside import contacts_toml
from xprov.provisioning import Provisioner, Served
from xprov.selection import ActiveSites
from xprov.sipmessage import MAX_MESSAGE


def test_the_firmware_timers_and_where_they_come_from() -> None:
    yealink, spa = firmware.timers_of("yealink"), firmware.timers_of("linksys")
    assert (yealink.t1, yealink.t2, yealink.timer_f) == (0.5, 4.0, 32.0)  # 64 x T1
    assert spa.timer_f == 16.0
    assert "fact sheet 1.4" in yealink.source and "fact sheet 2.3" in spa.source
    # Timer E: T1 doubling to T2, up to Timer F (RFC 3261 section 17.1.2.2)
    assert yealink.retransmissions() == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert spa.retransmissions() == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    with pytest.raises(KeyError):
        firmware.timers_of("polycom")


@pytest.mark.parametrize(
    ("value", "servers"),
    [
        ("10.0.0.1:5062", [("10.0.0.1", 5062)]),
        ("10.0.0.1", [("10.0.0.1", 5060)]),
        # the static SRV list (fact sheet 2.2), by priority whatever the order written
        (
            "xprov:SRV=10.0.0.2:5070:p=1|10.0.0.1:5060:p=0",
            [("10.0.0.1", 5060), ("10.0.0.2", 5070)],
        ),
        ("x:SRV=a:0:p=0:w=1|b::p=1", [("a", 5060), ("b", 5060)]),  # port 0 or none: 5060
        ("x:SRV=a:5060:p=0|b:c:d", []),  # unreadable: no server
        ("10.0.0.1:sip", []),
        ("", []),
    ],
)
def test_an_spa_proxy_value_in_the_order_the_phone_tries(
    value: str, servers: list[tuple[str, int]]
) -> None:
    assert proxies(value) == servers


def yealink_file(second: bool, mode: str | None = "0") -> bytes:
    lines = [
        "account.1.sip_server.1.address = 192.0.2.1",
        "account.1.sip_server.1.port = 5060",
    ]
    if second:
        lines += [
            "account.1.sip_server.2.address = 192.0.2.2",
            "account.1.sip_server.2.port = 5070",
        ]
    if mode is not None:
        lines.append(f"account.1.fallback.redundancy_type = {mode}")
    return "\n".join(lines).encode()


def test_the_sip_servers_a_file_names(provisioner: Provisioner) -> None:
    config = provisioner.inputs.config
    chicago, virginia = (config.sites[s].sip for s in ("chicago", "virginia"))
    body = (
        f"account.1.sip_server.1.address = {chicago.host}\n"
        f"account.1.sip_server.1.port = {chicago.port}\n"
        f"account.1.sip_server.2.address = {virginia.host}\n"
        f"account.1.sip_server.2.port = {virginia.port}\n"
    ).encode()
    named = sip_servers("yealink", body, config)
    assert named.servers == (
        SipServer(chicago.host, chicago.port, "chicago"),
        SipServer(virginia.host, virginia.port, "virginia"),
    )
    assert named.concurrent  # redundancy_type absent: its default, 0 (fact sheet 1.2)
    assert not sip_servers("yealink", yealink_file(True, "1"), config).concurrent
    assert not sip_servers("yealink", yealink_file(False), config).concurrent  # one server
    assert [s.site for s in sip_servers("yealink", yealink_file(True), config).servers] == [
        None,
        None,
    ]  # addresses of no site of the config
    srv = f"xprov:SRV={virginia.host}:{virginia.port}:p=1|{chicago.host}:{chicago.port}:p=0"
    spa = f'<flat-profile><Proxy_1_ ua="na">{srv}</Proxy_1_></flat-profile>'.encode()
    named = sip_servers("linksys", spa, config)
    assert [s.site for s in named.servers] == ["chicago", "virginia"] and not named.concurrent
    assert sites_in("linksys", spa, config)["sip"] == "chicago"  # the one it tries first
    assert sip_servers("linksys", b"<broken", config).servers == ()
    served = provisioner.provide("00156574b150.cfg")  # today's file: one server
    assert [s.site for s in sip_servers("yealink", served.body, config).servers] == ["chicago"]  # type: ignore[union-attr]


# -- a phone's answer to a NOTIFY ----------------------------------------------------------

NOTIFY = (
    "NOTIFY sip:0000011@127.0.0.1:40000 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{branch};rport\r\n"
    "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKother\r\n"
    "Max-Forwards: 70\r\n"
    "f: <sip:xprov@127.0.0.1>;tag=abc\r\n"
    "t: <sip:0000011@127.0.0.1>\r\n"
    "i: call-1@xprov\r\n"
    "CSeq: {cseq} NOTIFY\r\n"
    "o: {event}\r\n"
    "Subscription-State: terminated\r\n"
    "{auth}"
    "Content-Length: 0\r\n\r\n"
)


def notify(event: str, branch: str = "1", cseq: int = 1, auth: str = "") -> sipmsg.Message:
    text = NOTIFY.format(
        branch=branch, cseq=cseq, event=event, auth=f"Authorization: {auth}\r\n" if auth else ""
    )
    message = sipmsg.parse(text.encode())
    assert message is not None
    return message


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def authorization(
    user: str, password: str, nonce: str, realm: str = sipmsg.REALM, qop: bool = True
) -> str:
    """Written out here from RFC 2617 section 3.2.2, not from the code under test."""
    uri = "sip:0000011@127.0.0.1:40000"
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"NOTIFY:{uri}")
    if not qop:
        response = md5(f"{ha1}:{nonce}:{ha2}")
        return (
            f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}"'
        )
    response = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"'
    )


def test_a_message_read_with_compact_and_folded_headers() -> None:
    message = sipmsg.parse(
        b"NOTIFY sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        b"Event: check-sync;\r\n reboot=false\r\n\r\nbody"
    )
    assert message is not None and message.method == "NOTIFY" and message.status is None
    assert message.branch == "z9hG4bKx" and message.header("event") == "check-sync; reboot=false"
    assert sipmsg.event_of(message) == "check-sync"
    answer = sipmsg.parse(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKy;rport\r\n\r\n")
    assert answer is not None and answer.status == 200 and answer.method is None
    assert answer.branch == "z9hG4bKy"
    assert sipmsg.parse(b"GET / HTTP/1.1\r\n\r\n") is None
    assert sipmsg.parse(b"SIP/2.0 200 OK" + b" " * MAX_MESSAGE) is None


def test_the_response_copies_what_rfc_3261_says() -> None:
    request = notify("check-sync")
    text = sipmsg.response(request, 489, "Bad Event", "t1", (("Allow-Events", "x"),)).decode()
    lines = text.split("\r\n")
    assert lines[0] == "SIP/2.0 489 Bad Event"
    assert lines[1:3] == [
        "Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK1;rport",
        "Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKother",
    ]
    assert "From: <sip:xprov@127.0.0.1>;tag=abc" in lines
    assert "To: <sip:0000011@127.0.0.1>;tag=t1" in lines  # the phone's tag added
    assert "Call-ID: call-1@xprov" in lines and "CSeq: 1 NOTIFY" in lines
    assert "Allow-Events: x" in lines and text.endswith("Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("event", ["check-sync", "check-sync;reboot=false", "Check-Sync"])
def test_a_yealink_fetches_on_check_sync_without_a_challenge(event: str) -> None:
    answer = sipmsg.answer(notify(event), "yealink", None, "n1")
    assert (answer.code, answer.resync) == (200, True)


@pytest.mark.parametrize(
    ("vendor", "event"), [("yealink", "resync"), ("linksys", "check-sync"), ("yealink", "")]
)
def test_another_event_is_refused_and_fetches_nothing(vendor: str, event: str) -> None:
    answer = sipmsg.answer(notify(event), vendor, ("u", "p"), "n1")
    assert (answer.code, answer.resync) == (489, False)
    assert answer.headers == (("Allow-Events", sipmsg.RESYNC_EVENT[vendor]),)


def test_an_spa_challenges_then_acts_on_the_authenticated_retry() -> None:
    credentials, nonce = ("0000011", "pw-Secret"), "5eed"
    first = sipmsg.answer(notify("resync"), "linksys", credentials, nonce)
    assert (first.code, first.resync) == (401, False)
    ((name, value),) = first.headers
    assert name == "WWW-Authenticate"
    assert value == f'Digest realm="{sipmsg.REALM}", nonce="{nonce}", algorithm=MD5, qop="auth"'
    for qop in (True, False):  # RFC 2617 with qop, and the RFC 2069 form
        retry = notify("resync", "2", 2, authorization(*credentials, nonce, qop=qop))
        answer = sipmsg.answer(retry, "linksys", credentials, nonce)
        assert (answer.code, answer.resync) == (200, True)
    for wrong in (
        authorization("0000011", "guess", nonce),
        authorization("someone", "pw-Secret", nonce),
        authorization(*credentials, "old-nonce"),
        authorization(*credentials, nonce, realm="other"),
        authorization(*credentials, nonce).replace("qop=auth", "qop=auth-int"),
        authorization(*credentials, nonce).replace("Digest ", "Basic "),
    ):
        answer = sipmsg.answer(notify("resync", auth=wrong), "linksys", credentials, nonce)
        assert (answer.code, answer.resync) == (401, False), wrong


def test_a_request_other_than_notify_is_not_allowed() -> None:
    options = sipmsg.parse(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKo\r\n\r\n")
    assert options is not None
    answer = sipmsg.answer(options, "yealink", None, "n")
    assert (answer.code, answer.resync, answer.headers) == (405, False, (("Allow", "NOTIFY"),))


def test_the_contacts_file_the_pusher_reads() -> None:
    phones = [
        SimPhone("001565000001", "yealink", "http", None, ("f",), 0.0, False, 'a"1'),
        SimPhone("001565000002", "linksys", "http", None, ("f",), 0.0, True, "0000021"),
        SimPhone("001565000003", "linksys", "http", None, ("f",), 0.0, True, ""),  # no line
    ]
    text = contacts_toml(phones, {"001565000001": 40001, "001565000002": 40002}, "127.0.0.1")
    assert tomllib.loads(text) == {
        "contacts": [
            {"user": 'a"1', "uri": 'sip:a"1@127.0.0.1:40001'},
            {"user": "0000021", "uri": "sip:0000021@127.0.0.1:40002"},
        ]
    }
    assert re.search(r"pw|password", text) is None


def test_the_servers_of_xprovs_own_files_with_phone_redundancy(tmp_path) -> None:
    """The templates' files (issue 18, docs/phone-redundancy.md "Order of the servers"),
    parsed as the simulated phones parse them, before and after a SIP switch."""
    redundancy = {'backup = "virginia"\n': 'backup = "virginia"\nphone_redundancy = true\n'}
    inputs = load(sample_config(tmp_path, replace=redundancy, tftp_port=6969, admin_port=8081))
    served = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    config = inputs.config

    def servers(name: str, vendor: str) -> tuple[list[str | None], bool, str | None]:
        body = served.provide(name)
        assert isinstance(body, Served)
        named = sip_servers(vendor, body.body, config)
        return (
            [s.site for s in named.servers],
            named.concurrent,
            sites_in(vendor, body.body, config)["sip"],
        )

    yealink, spa = "00156574b150.cfg", "0002fdff2103.xml"
    assert servers(yealink, "yealink") == (["chicago", "virginia"], True, "chicago")
    assert servers(spa, "linksys") == (["chicago", "virginia"], False, "chicago")
    before = served.provide(spa)
    assert isinstance(before, Served)
    served.active.switch({"sip": "virginia"})
    # a Yealink's server 1 follows the switch; an SPA's SRV list keeps its order, byte for byte
    assert servers(yealink, "yealink") == (["virginia", "chicago"], True, "virginia")
    assert servers(spa, "linksys") == (["chicago", "virginia"], False, "chicago")
    after = served.provide(spa)
    assert isinstance(after, Served) and after.body == before.body
