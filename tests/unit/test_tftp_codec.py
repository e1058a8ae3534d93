"""The TFTP wire format byte for byte (RFC 1350, 2347) and option negotiation at its exact
bounds (RFC 2347, 2348, 2349, 7440)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import TftpPacketInitial, TftpPacketOACK

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
        (b"\1\1f\0octet\0", "TftpException"),  # opcode 257, not RRQ
        (b"\1\6blksize\x008\0", "TftpException"),  # opcode 262, not OACK
        (b"\0\0\0\0", "TftpException"),
        (b"\0\1f.cfg\0octet", "unterminated string"),  # mode not terminated
        (b"\0\1f\0octet\0blksize\0", "option without a value"),  # an option without a value
        (b"\0\1f\0octet\0\0\0", "empty option"),  # an empty option name
        (b"\0\1f\xff\0octet\0", "not ASCII"),
        (b"\0\6\0\0", "empty option"),  # OACK with an empty option
    ],
)
def test_decode_refuses_malformed_datagrams(datagram: bytes, reason: str) -> None:
    with pytest.raises(codec.Malformed, match=f"^{reason}$"):
        codec.decode(datagram)


def flood(size: int, first: dict[str, str] | None = None) -> bytes:
    """An RRQ of `size` bytes: the options `first`, then tiny ones ("1" = "v", ...)."""
    datagram = bytearray(codec.rrq("f.cfg", first))
    n = 0
    while len(datagram) < size:
        datagram += f"{n}\x00v\x00".encode()
        n += 1
    return bytes(datagram)


@pytest.mark.parametrize("size", [8192, 65000])
def test_an_option_flood_is_read_up_to_max_options(size: int) -> None:
    """The bound that keeps a flood as cheap as a normal request: however many options a
    datagram holds, at most MAX_OPTIONS become strings (the rest are checked in C loops)."""
    datagram = flood(size, {"blksize": "1024"})
    assert datagram.count(b"\0") // 2 - 1 > 1000  # a thousand options and more
    request = codec.decode(datagram)
    assert isinstance(request, codec.Request)
    assert len(request.options) == codec.MAX_OPTIONS == 16
    assert list(request.options)[:3] == ["blksize", "0", "1"]
    assert request.options["blksize"] == "1024"


def test_options_beyond_the_bound_are_not_read() -> None:
    junk = {str(n): "v" for n in range(codec.MAX_OPTIONS)}
    request = codec.decode(codec.rrq("f", {**junk, "blksize": "1024"}))
    assert isinstance(request, codec.Request) and "blksize" not in request.options
    within = codec.decode(codec.rrq("f", {**dict(list(junk.items())[1:]), "blksize": "1024"}))
    assert isinstance(within, codec.Request) and within.options["blksize"] == "1024"
    # what follows the bound is not read at all, well formed or not
    for rest in [b"a\x00b\x00", b"a\x00", b"\x00\x00", b"a\x00b", b"\xe9\x00v\x00"]:
        beyond = codec.decode(codec.rrq("f", junk) + rest)
        assert beyond == codec.Request(codec.RRQ, "f", "octet", junk), rest
    # within the bound, the same faults are refused
    short = dict(list(junk.items())[1:])
    for rest, reason in [
        (b"a\x00", "option without a value"),
        (b"\x00\x00", "empty option"),
        (b"a\x00\x00", "empty option"),
        (b"a\x00b", "unterminated string"),
        (b"\xe9\x00v\x00", "not ASCII"),
        (b"a\x00\xe9\x00", "not ASCII"),
    ]:
        with pytest.raises(codec.Malformed, match=f"^{reason}$"):
            codec.decode(codec.rrq("f", short) + rest)


def test_is_error_reads_only_the_opcode() -> None:
    assert codec.is_error(codec.error(0, "x")) and codec.is_error(b"\x00\x05")
    assert not codec.is_error(codec.ack(5)) and not codec.is_error(b"\x05\x00\x00\x00")
    assert not codec.is_error(b"") and not codec.is_error(b"\x00")


def tftpy_decode(datagram: bytes) -> codec.Packet | None:
    """What the codec decoded a request or OACK to before it had its own decoder (tftpy's
    parser, the same wrapping); None: Malformed."""
    if not 4 <= len(datagram) <= codec.MAX_DATAGRAM:
        return None
    try:
        packet = TftpPacketFactory().parse(datagram)
    except Exception:
        return None
    if isinstance(packet, TftpPacketInitial):
        if not packet.filename:
            return None
        options = {str(k).lower(): str(v) for k, v in packet.options.items()}
        return codec.Request(packet.opcode, packet.filename, packet.mode, options)
    if isinstance(packet, TftpPacketOACK):
        return codec.Oack(dict(packet.options))
    return codec.decode(datagram)


def decoded_or_none(datagram: bytes) -> codec.Packet | None:
    try:
        return codec.decode(datagram)
    except codec.Malformed:
        return None


# Well-formed fields (names that differ in case only among them), at most one of them
# spoiled (empty, not ASCII, holding a NUL), and an end: most examples are requests, and
# every way to refuse one is tried.
WORD = st.text("aBz0", min_size=1, max_size=3).map(str.encode) | st.sampled_from(
    [b"octet", b"NetAscii", b"BLKSIZE", b"blksize"]
)
SPOILED = st.none() | st.tuples(st.integers(0, 40), st.sampled_from([b"", b"\xe9", b"a\x00"]))


@settings(max_examples=1500, deadline=None)
@pytest.mark.fuzz
@given(
    opcode=st.sampled_from([b"\0\1", b"\0\2", b"\0\6"]),
    fields=st.lists(WORD, max_size=2 * codec.MAX_OPTIONS + 2),
    spoiled=SPOILED,
    end=st.sampled_from([b"\0", b"\0", b"", b"\0\0", b"x"]),
)
def test_requests_decode_as_tftpy_decoded_them(
    opcode: bytes, fields: list[bytes], spoiled: tuple[int, bytes] | None, end: bytes
) -> None:
    """Within MAX_OPTIONS options, the codec accepts and refuses exactly what tftpy did,
    with the same result: bounding the options changed nothing else. (Two NULs end the
    file name and mode, two more each option.)"""
    if spoiled is not None and fields:
        fields[spoiled[0] % len(fields)] = spoiled[1]
    datagram = opcode + b"\0".join(fields) + end
    assume(datagram.count(b"\0") <= 2 + 2 * codec.MAX_OPTIONS)  # within the bound
    assert decoded_or_none(datagram) == tftpy_decode(datagram)


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
