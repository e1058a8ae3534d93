"""SIP OPTIONS and STUN Binding messages, built and judged without sockets."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from xprov.config import SipService
from xprov.monitor import sip, stun

TARGET = SipService("127.0.0.1", 5060, "udp", 600)


def reply(request: sip.Request, status: str = "200 OK", **changes: str) -> bytes:
    headers = {
        "Via": f"SIP/2.0/UDP 127.0.0.1:40000;branch={request.branch};rport=40000",
        "From": f"<sip:xprov@127.0.0.1:40000>;tag={request.tag}",
        "To": "<sip:127.0.0.1:5060>;tag=abc",
        "Call-ID": request.call_id,
        "CSeq": f"{request.cseq} OPTIONS",
        "Content-Length": "0",
    }
    headers.update(changes)
    lines = [f"SIP/2.0 {status}"] + [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_options_request_has_what_rfc_3261_and_kamailio_need() -> None:
    request = sip.Request.fresh()
    text = sip.build_options(TARGET, "udp", ("10.0.0.5", 40000), request).decode()
    lines = text.split("\r\n")
    assert lines[0] == "OPTIONS sip:127.0.0.1:5060 SIP/2.0"
    assert f"Via: SIP/2.0/UDP 10.0.0.5:40000;branch={request.branch};rport" in lines
    assert request.branch.startswith("z9hG4bK")
    assert "Max-Forwards: 70" in lines
    assert f"From: <sip:xprov@10.0.0.5:40000>;tag={request.tag}" in lines
    assert "To: <sip:127.0.0.1:5060>" in lines  # no tag
    assert f"Call-ID: {request.call_id}" in lines and "CSeq: 1 OPTIONS" in lines
    assert "User-Agent: xprov-monitor" in lines and "Content-Length: 0" in lines
    assert text.endswith("\r\n\r\n")


def test_every_probe_is_fresh() -> None:
    a, b = sip.Request.fresh(), sip.Request.fresh()
    assert a.branch != b.branch and a.call_id != b.call_id and a.tag != b.tag


def test_tcp_and_ipv6_requests() -> None:
    target = SipService("::1", 5061, "tls", 600)
    text = sip.build_options(target, "tls", ("::1", 40000), sip.Request.fresh()).decode()
    assert text.startswith("OPTIONS sip:[::1]:5061;transport=tls SIP/2.0\r\n")
    assert "Via: SIP/2.0/TLS [::1]:40000;branch=" in text


def test_matching_reply() -> None:
    request = sip.Request.fresh()
    response = sip.parse_response(reply(request))
    assert response is not None and sip.matches(response, request)
    assert sip.verdict(response) == (True, "200 OK")


@pytest.mark.parametrize(
    "changes",
    [
        {"Via": "SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKother"},
        {"Call-ID": "other@x"},
        {"CSeq": "2 OPTIONS"},
        {"CSeq": "1 INVITE"},
        {"Via": None},
    ],
)
def test_replies_to_something_else_are_ignored(changes: dict) -> None:
    request = sip.Request.fresh()
    response = sip.parse_response(reply(request, **changes))
    assert response is not None and not sip.matches(response, request)


def test_compact_header_names() -> None:
    request = sip.Request.fresh()
    data = (
        f"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP x;branch={request.branch}\r\n"
        f"i: {request.call_id}\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n"
    ).encode()
    response = sip.parse_response(data)
    assert response is not None and sip.matches(response, request)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("200 OK", (True, "200 OK")),
        ("202 Accepted", (True, "202 Accepted")),
        ("404 Not Found", (True, "404 Not Found")),
        ("405 Method Not Allowed", (True, "405 Method Not Allowed")),
        ("483 Too Many Hops", (True, "483 Too Many Hops")),
        ("408 Request Timeout", (False, "408 Request Timeout")),
        ("500 Server Internal Error", (False, "500 Server Internal Error")),
        ("503 Service Unavailable", (False, "503 Service Unavailable")),
        ("504 Server Time-out", (False, "504 Server Time-out")),
    ],
)
def test_verdicts(status: str, expected: tuple) -> None:
    response = sip.parse_response(reply(sip.Request.fresh(), status))
    assert response is not None and sip.verdict(response) == expected


def test_provisional_replies_keep_waiting_and_codes_are_configurable() -> None:
    request = sip.Request.fresh()
    assert sip.verdict(sip.parse_response(reply(request, "100 Trying"))) is None  # type: ignore[arg-type]
    not_found = sip.parse_response(reply(request, "404 Not Found"))
    assert sip.verdict(not_found, {404}) == (False, "404 Not Found")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"SIP/2.0 2000 OK\r\n\r\n",
        b"SIP/2.0 abc\r\n\r\n",
        b"\xff\xfe\r\n\r\n",
        b"OPTIONS sip:x SIP/2.0\r\n\r\n",
    ],
)
def test_not_a_response(data: bytes) -> None:
    assert sip.parse_response(data) is None


TRANSACTION = bytes(range(12))


def stun_reply(
    kind: int, attributes: bytes, transaction: bytes = TRANSACTION, cookie: int = stun.MAGIC_COOKIE
) -> bytes:
    return struct.pack("!HHI", kind, len(attributes), cookie) + transaction + attributes


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def xor_mapped(ip: str, port: int) -> bytes:
    address = ipaddress.ip_address(ip)
    key = struct.pack("!I", stun.MAGIC_COOKIE) + TRANSACTION
    raw = bytes(a ^ b for a, b in zip(address.packed, key, strict=False))
    family = 1 if address.version == 4 else 2
    return attribute(
        stun.XOR_MAPPED_ADDRESS,
        struct.pack("!BBH", 0, family, port ^ (stun.MAGIC_COOKIE >> 16)) + raw,
    )


def test_binding_request() -> None:
    request = stun.binding_request(TRANSACTION)
    assert request == struct.pack("!HHI", 1, 0, 0x2112A442) + TRANSACTION


def test_xor_mapped_address_ipv4_and_ipv6() -> None:
    ok4 = stun_reply(stun.BINDING_SUCCESS, xor_mapped("192.0.2.7", 40001))
    assert stun.parse_binding_response(ok4, TRANSACTION) == (True, "mapped 192.0.2.7:40001")
    ok6 = stun_reply(stun.BINDING_SUCCESS, xor_mapped("2001:db8::7", 40001))
    assert stun.parse_binding_response(ok6, TRANSACTION) == (True, "mapped [2001:db8::7]:40001")


def test_classic_mapped_address_is_accepted() -> None:
    mapped = attribute(
        stun.MAPPED_ADDRESS, struct.pack("!BBH4s", 0, 1, 3478, bytes([198, 51, 100, 1]))
    )
    data = stun_reply(stun.BINDING_SUCCESS, attribute(0x8022, b"coturn") + mapped)
    assert stun.parse_binding_response(data, TRANSACTION) == (True, "mapped 198.51.100.1:3478")


def test_binding_error_is_down() -> None:
    error = attribute(stun.ERROR_CODE, struct.pack("!HBB", 0, 4, 20) + b"Unknown")
    data = stun_reply(stun.BINDING_ERROR, error)
    assert stun.parse_binding_response(data, TRANSACTION) == (False, "Binding Error 420")


def test_success_without_address_is_down() -> None:
    data = stun_reply(stun.BINDING_SUCCESS, attribute(0x8022, b"x"))
    assert stun.parse_binding_response(data, TRANSACTION) == (
        False,
        "Binding Success without a mapped address",
    )
    bad_family = attribute(stun.XOR_MAPPED_ADDRESS, struct.pack("!BBH4s", 0, 9, 1, b"abcd"))
    assert (
        stun.parse_binding_response(stun_reply(stun.BINDING_SUCCESS, bad_family), TRANSACTION)[0]
        is False
    )  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x01",
        stun_reply(stun.BINDING_SUCCESS, xor_mapped("192.0.2.7", 1), bytes(12)),
        stun_reply(stun.BINDING_SUCCESS, xor_mapped("192.0.2.7", 1), cookie=0),
        stun_reply(0x0001, b""),
        struct.pack("!HHI", 0x0101, 200, stun.MAGIC_COOKIE) + TRANSACTION,
    ],
)
def test_not_our_reply_is_ignored(data: bytes) -> None:
    assert stun.parse_binding_response(data, TRANSACTION) is None


def test_truncated_attributes_do_not_crash() -> None:
    data = stun_reply(stun.BINDING_SUCCESS, struct.pack("!HH", stun.XOR_MAPPED_ADDRESS, 20) + b"ab")
    assert stun.parse_binding_response(data, TRANSACTION) == (
        False,
        "Binding Success without a mapped address",
    )
