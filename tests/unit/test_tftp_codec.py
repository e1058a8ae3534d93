"""The TFTP wire format byte for byte (RFC 1350, 2347) and option negotiation at its exact
bounds (RFC 2347, 2348, 2349, 7440)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from xprov.tftp import codec
from xprov.tftp.options import DEFAULT_BLKSIZE, Limits, Negotiated, negotiate

LIMITS = Limits(max_blksize=1468, max_windowsize=64, timeout=1.0, retries=3)


@pytest.mark.parametrize(
    ("datagram", "packet"),
    [
        (b"\0\1f.cfg\0octet\0", codec.Request(codec.RRQ, "f.cfg", "octet", {})),
        (b"\0\2f.cfg\0octet\0", codec.Request(codec.WRQ, "f.cfg", "octet", {})),
        (b"\0\1a/b\0NetAscii\0", codec.Request(codec.RRQ, "a/b", "netascii", {})),
        (
            b"\0\1f\0octet\0BlkSize\x001024\0TSIZE\x000\0",
            codec.Request(codec.RRQ, "f", "octet", {"blksize": "1024", "tsize": "0"}),
        ),
        (b"\0\3\0\1", codec.Data(1, b"")),
        (b"\0\3\xff\xffabc", codec.Data(65535, b"abc")),
        (b"\0\4\0\0", codec.Ack(0)),
        (b"\0\4\1\2", codec.Ack(258)),
        (b"\0\5\0\1", codec.Error(codec.FILE_NOT_FOUND, "")),
        (b"\0\5\0\2no\0", codec.Error(codec.ACCESS_VIOLATION, "no")),
        (b"\0\5\0\0disk\xfffull\0", codec.Error(codec.NOT_DEFINED, "disk\ufffdfull")),
        (b"\0\6blksize\x001024\0", codec.Oack({"blksize": "1024"})),
        (b"\0\6TSize\x007\0", codec.Oack({"TSize": "7"})),  # an OACK is read, never negotiated
    ],
)
def test_decode_reads_every_packet_type(datagram: bytes, packet: codec.Packet) -> None:
    assert codec.decode(datagram) == packet


def test_decode_accepts_the_largest_data_block() -> None:
    payload = bytes(65464)
    assert codec.decode(b"\0\3\0\1" + payload) == codec.Data(1, payload)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"", "bad length"),
        (b"\0\4\0", "bad length"),  # an ACK one byte short
        (b"\0\3\0\1" + bytes(65465), "bad length"),  # one byte over the largest block
        (b"\0\1\0octet\0", "empty file name"),
        (b"\0\7\0\0", "TftpException"),  # no such opcode
        (b"\0\0\0\0", "TftpException"),
        (b"\0\1f.cfg\0octet", "TftpException"),  # mode not terminated
        (b"\0\1f\0octet\0blksize\0", "TftpException"),  # an option without a value
        (b"\0\1f\0octet\0\0\0", "TftpException"),  # an empty option name
        (b"\0\1f\xff\0octet\0", "UnicodeDecodeError"),
        (b"\0\6\0\0", "TftpException"),  # OACK with an empty option
    ],
)
def test_decode_refuses_malformed_datagrams(datagram: bytes, reason: str) -> None:
    with pytest.raises(codec.Malformed, match=f"^{reason}$"):
        codec.decode(datagram)


# Encoders are called inside the test, where mutation testing sees which tests use them.
@pytest.mark.parametrize(
    ("encode", "args", "datagram"),
    [
        (codec.data, (1, b"abc"), b"\0\3\0\1abc"),
        (codec.data, (2, b""), b"\0\3\0\2"),
        (codec.data, (65535, b"x"), b"\0\3\xff\xffx"),
        (codec.data, (65536, b"x"), b"\0\3\0\0x"),  # absolute block numbers wrap on the wire
        (codec.data, (65537 + 256, b"x"), b"\0\3\1\1x"),
        (codec.ack, (0,), b"\0\4\0\0"),
        (codec.ack, (513,), b"\0\4\2\1"),
        (codec.ack, (65536 + 3,), b"\0\4\0\3"),
        (codec.oack, ({"blksize": "1024"},), b"\0\6blksize\x001024\0"),
        (
            codec.oack,
            ({"tsize": "77", "blksize": "8", "timeout": "3"},),
            b"\0\6tsize\x0077\0blksize\x008\0timeout\x003\0",  # in the order given
        ),
        (codec.oack, ({},), b"\0\6"),
        (codec.rrq, ("f.cfg",), b"\0\1f.cfg\0octet\0"),
        (codec.rrq, ("f.cfg", None, "netascii"), b"\0\1f.cfg\0netascii\0"),
        (
            codec.rrq,
            ("a/f", {"blksize": "1468", "tsize": "0"}),
            b"\0\1a/f\0octet\0blksize\x001468\0tsize\x000\0",
        ),
        (codec.error, (codec.FILE_NOT_FOUND, "File not found"), b"\0\5\0\1File not found\0"),
        (codec.error, (codec.UNKNOWN_TID, ""), b"\0\5\0\5\0"),
        (codec.error, (codec.OPTIONS_REFUSED, "caf\xe9"), b"\0\5\0\x08caf?\0"),
        (codec.error, (258, "x"), b"\0\5\1\2x\0"),
        (codec.error, (0xFFFF, "x"), b"\0\5\xff\xffx\0"),  # any unsigned 16-bit code
    ],
)
def test_encode_exact_bytes(encode: Callable[..., bytes], args: tuple, datagram: bytes) -> None:
    assert encode(*args) == datagram


def test_encoded_packets_decode_to_themselves() -> None:
    assert codec.decode(codec.error(codec.ILLEGAL_OPERATION, "bad")) == codec.Error(4, "bad")
    assert codec.decode(codec.oack({"windowsize": "4"})) == codec.Oack({"windowsize": "4"})
    assert codec.decode(codec.rrq("f", {"timeout": "2"})) == codec.Request(
        codec.RRQ, "f", "octet", {"timeout": "2"}
    )


def test_error_codes_are_rfc_1350_and_2347() -> None:
    assert (
        codec.NOT_DEFINED,
        codec.FILE_NOT_FOUND,
        codec.ACCESS_VIOLATION,
        codec.ILLEGAL_OPERATION,
        codec.UNKNOWN_TID,
        codec.OPTIONS_REFUSED,
    ) == (0, 1, 2, 4, 5, 8)


# Option negotiation: (requested, file size) -> (blksize, windowsize, timeout, OACK)
@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ({}, (512, 1, 1.0, {})),
        ({"blksize": "8"}, (8, 1, 1.0, {"blksize": "8"})),
        ({"blksize": "9"}, (9, 1, 1.0, {"blksize": "9"})),
        ({"blksize": "7"}, (512, 1, 1.0, {})),
        ({"blksize": "1467"}, (1467, 1, 1.0, {"blksize": "1467"})),
        ({"blksize": "1469"}, (1468, 1, 1.0, {"blksize": "1468"})),
        ({"blksize": "65464"}, (1468, 1, 1.0, {"blksize": "1468"})),
        ({"blksize": "65465"}, (512, 1, 1.0, {})),
        ({"blksize": "0512"}, (512, 1, 1.0, {"blksize": "512"})),
        ({"timeout": "1"}, (512, 1, 1.0, {"timeout": "1"})),
        ({"timeout": "255"}, (512, 1, 255.0, {"timeout": "255"})),
        ({"timeout": "0"}, (512, 1, 1.0, {})),
        ({"timeout": "256"}, (512, 1, 1.0, {})),
        ({"timeout": "007"}, (512, 1, 7.0, {"timeout": "007"})),  # echoed as asked
        ({"windowsize": "1"}, (512, 1, 1.0, {"windowsize": "1"})),
        ({"windowsize": "63"}, (512, 63, 1.0, {"windowsize": "63"})),
        ({"windowsize": "65"}, (512, 64, 1.0, {"windowsize": "64"})),
        ({"windowsize": "65535"}, (512, 64, 1.0, {"windowsize": "64"})),
        ({"windowsize": "0"}, (512, 1, 1.0, {})),
        ({"windowsize": "65536"}, (512, 1, 1.0, {})),
        ({"tsize": "0"}, (512, 1, 1.0, {"tsize": "1234"})),
        ({"tsize": "99999"}, (512, 1, 1.0, {"tsize": "1234"})),  # the real size, not the claim
        ({"tsize": "-1"}, (512, 1, 1.0, {})),
        ({"tsize": "12345678901"}, (512, 1, 1.0, {})),  # over ten digits
        ({"tsize": "1234567890"}, (512, 1, 1.0, {"tsize": "1234"})),
        ({"blksize": "+64"}, (512, 1, 1.0, {})),
        ({"blksize": " 64"}, (512, 1, 1.0, {})),
        ({"blksize": "\u0661\u0662"}, (512, 1, 1.0, {})),  # Arabic-Indic digits
        ({"blocksize": "1024", "multicast": "1"}, (512, 1, 1.0, {})),
        ({"blksize": "big", "tsize": "0"}, (512, 1, 1.0, {"tsize": "1234"})),  # the rest count
        (
            {"windowsize": "4", "tsize": "0", "timeout": "2", "blksize": "1024"},
            (1024, 4, 2.0, {"windowsize": "4", "tsize": "1234", "timeout": "2", "blksize": "1024"}),
        ),
    ],
)
def test_negotiated_values_at_their_bounds(requested: dict[str, str], expected: tuple) -> None:
    assert negotiate(requested, 1234, LIMITS) == Negotiated(*expected)


def test_negotiate_uses_the_limits() -> None:
    limits = Limits(max_blksize=100, max_windowsize=3, timeout=2.5, retries=1)
    assert negotiate({"blksize": "1024", "windowsize": "8"}, 0, limits) == Negotiated(
        100, 3, 2.5, {"blksize": "100", "windowsize": "3"}
    )
    assert negotiate({}, 0, limits).timeout == 2.5


def test_default_limits_fit_an_ethernet_frame() -> None:
    assert Limits() == Limits(max_blksize=1468, max_windowsize=64, timeout=1.0, retries=5)
    assert DEFAULT_BLKSIZE == 512
