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
        (b"\0\1f.cfg\0octet\0", codec.Request(codec.RRQ, "f.cfg", "octet", ())),
        (b"\0\2f.cfg\0octet\0", codec.Request(codec.WRQ, "f.cfg", "octet", ())),
        (b"\0\1a/b\0NetAscii\0", codec.Request(codec.RRQ, "a/b", "netascii", ())),
        (b"\0\1f\0mail\0", codec.Request(codec.RRQ, "f", "mail", ())),  # the server judges
        (b"\0\1f\0\0", codec.Request(codec.RRQ, "f", "", ())),  # modes: ERROR 4 for these
        (
            b"\0\1f\0octet\0BlkSize\x001024\0TSIZE\x000\0",
            codec.Request(codec.RRQ, "f", "octet", (("blksize", "1024"), ("tsize", "0"))),
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
        (b"\0\1f.cfg\0", "unterminated string"),  # no mode
        (b"\0\2f.cfg", "unterminated string"),  # no terminator at all
        (b"\0\1f\xff\0octet\0", "not ASCII"),
        (b"\0\1f\xff\0octet\0blksize\x00512\0", "not ASCII"),  # good options save nothing
        (b"\0\1f\0oct\xe9t\0", "not ASCII"),  # a mode no RFC has, nor can
        # an OACK is read strictly (a client's to read; the server ignores one)
        (b"\0\6\0\0", "empty option"),
        (b"\0\6blksize\0", "option without a value"),
        (b"\0\6blksize\x00512", "unterminated string"),
        (b"\0\6blksize\x00\xe9\0", "not ASCII"),
    ],
)
def test_decode_refuses_malformed_datagrams(datagram: bytes, reason: str) -> None:
    with pytest.raises(codec.Malformed, match=f"^{reason}$"):
        codec.decode(datagram)


HEAD = b"\0\1f\0octet\0"  # an RRQ's file name and mode: what every request must have


@pytest.mark.parametrize(
    ("area", "options"),
    [
        (b"x-vendor\0\0", ()),  # a vendor's option with an empty value (phones send it)
        (b"x-vendor\0\0blksize\x001024\0", (("blksize", "1024"),)),
        (b"blksize\0\0", ()),  # empty value
        (b"blksize\0", ()),  # a name without a value (an odd number of fields)
        (b"tsize\x000\0blksize\0", (("tsize", "0"),)),
        (b"\0v\0blksize\x00512\0", (("blksize", "512"),)),  # empty name
        (b"\0\0", ()),  # empty name and value: NUL padding
        (b"\0\0blksize\x001024\0", (("blksize", "1024"),)),
        (b"blksize\x001024\0\0", (("blksize", "1024"),)),  # trailing NULs, odd
        (b"blksize\x001024\0\0\0\0\0", (("blksize", "1024"),)),  # and even
        (b"bl\xe9ksize\x001024\0blksize\x00512\0", (("blksize", "512"),)),  # name not ASCII
        (b"blksize\x00\xd9\xa1\0tsize\x000\0", (("tsize", "0"),)),  # value not ASCII
        (b"blksize\x001024\0tsize", (("blksize", "1024"),)),  # a last name unterminated
        (b"blksize\x001024", ()),  # a last value unterminated
        (b"junk", ()),
        (b"multicast\0,,1\0", (("multicast", ",,1"),)),  # unknown: negotiation ignores it
        (  # every occurrence, in order: negotiation takes the first valid one
            b"BlkSize\0\0blksize\0abc\0BLKSIZE\x001024\0blksize\x002048\0",
            (("blksize", "abc"), ("blksize", "1024"), ("blksize", "2048")),
        ),
    ],
)
def test_odd_options_are_skipped_never_malformed(
    area: bytes, options: tuple[tuple[str, str], ...]
) -> None:
    """RFC 2347: what follows the mode is option pairs; a pair that is not one (an empty or
    non-ASCII name or value, a name alone, an unterminated field, NUL padding) is skipped.
    Before, each of these was ERROR 4 and the phone got no file."""
    assert codec.decode(HEAD + area) == codec.Request(codec.RRQ, "f", "octet", options)


def names(request: codec.Packet) -> list[str]:
    assert isinstance(request, codec.Request)
    return [name for name, _ in request.options]


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
    assert names(request)[:3] == ["blksize", "0", "1"]
    assert request.options[0] == ("blksize", "1024")


def test_options_beyond_the_bound_are_not_read() -> None:
    junk = {str(n): "v" for n in range(codec.MAX_OPTIONS)}
    request = codec.decode(codec.rrq("f", {**junk, "blksize": "1024"}))
    assert "blksize" not in names(request)
    within = codec.decode(codec.rrq("f", {**dict(list(junk.items())[1:]), "blksize": "1024"}))
    assert names(within)[-1] == "blksize"
    # what follows the bound is not read at all, well formed or not
    for rest in [b"a\x00b\x00", b"a\x00", b"\x00\x00", b"a\x00b", b"\xe9\x00v\x00"]:
        beyond = codec.decode(codec.rrq("f", junk) + rest)
        assert beyond == codec.Request(codec.RRQ, "f", "octet", tuple(junk.items())), rest
    # within the bound, the same faults are skipped
    short = dict(list(junk.items())[1:])
    for rest in [b"a\x00", b"\x00\x00", b"a\x00\x00", b"a\x00b", b"\xe9\x00v", b"a\x00\xe9\x00"]:
        within = codec.decode(codec.rrq("f", short) + rest)
        assert within == codec.Request(codec.RRQ, "f", "octet", tuple(short.items())), rest


@pytest.mark.parametrize(
    ("before", "read"),
    [
        (b"\0\0" * (codec.MAX_OPTIONS - 1), True),  # NUL padding: 15 empty pairs
        (b"\0\0" * codec.MAX_OPTIONS, False),  # 16: the 17th pair is not read
        (b"x\0\0" * (codec.MAX_OPTIONS - 1), True),  # empty values
        (b"x\0\0" * codec.MAX_OPTIONS, False),
        (b"blksize\0\0" * (codec.MAX_OPTIONS - 1), True),  # a known option, invalid
        (b"blksize\0\0" * codec.MAX_OPTIONS, False),
    ],
)
def test_skipped_pairs_count_towards_the_bound(before: bytes, read: bool) -> None:
    """MAX_OPTIONS bounds the pairs read, skipped ones included, so a valid option counts
    only within the first 16 pairs, whatever precedes it: the cost stays bounded."""
    request = codec.decode(HEAD + before + b"blksize\x001024\0")
    assert names(request) == (["blksize"] if read else [])


def test_an_oack_is_read_strictly_up_to_max_options() -> None:
    """A client reads an OACK as tftpy did, faults refused, within MAX_OPTIONS pairs; what
    follows them is not read."""
    full = {str(n): "v" for n in range(codec.MAX_OPTIONS)}
    for rest in [b"x", b"x\x00", b"\x00", b"\xe9\x00v\x00"]:
        assert codec.decode(codec.oack(full) + rest) == codec.Oack(full), rest
    short = dict(list(full.items())[1:])
    for rest, reason in [
        (b"x", "unterminated string"),
        (b"x\x00", "option without a value"),
        (b"\x00\x00", "empty option"),
        (b"\xe9\x00v\x00", "not ASCII"),
    ]:
        with pytest.raises(codec.Malformed, match=f"^{reason}$"):
            codec.decode(codec.oack(short) + rest)


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
        options = tuple((str(k).lower(), str(v)) for k, v in packet.options.items())
        return codec.Request(packet.opcode, packet.filename, packet.mode, options)
    if isinstance(packet, TftpPacketOACK):
        return codec.Oack(dict(packet.options))
    return codec.decode(datagram)


def decoded_or_none(datagram: bytes) -> codec.Packet | None:
    try:
        return codec.decode(datagram)
    except codec.Malformed:
        return None


def rfc_2347_pairs(area: bytes) -> tuple[tuple[str, str], ...]:
    """What follows a request's mode read as RFC 2347 pairs, the plain way: every
    NUL-terminated field, the first 2 x MAX_OPTIONS of them paired in order, the pairs of
    non-empty ASCII kept."""
    *terminated, _ = area.split(b"\0")
    fields = terminated[: 2 * codec.MAX_OPTIONS]
    pairs = zip(fields[0::2], fields[1::2], strict=False)
    return tuple(
        (name.decode().lower(), value.decode())
        for name, value in pairs
        if name and value and name.isascii() and value.isascii()
    )


def reference_decode(datagram: bytes) -> codec.Packet | None:
    """A request is what tftpy made of its file name and mode alone (None: Malformed),
    with its RFC 2347 pairs; anything else what tftpy made of it."""
    if datagram[:2] not in (b"\0\1", b"\0\2"):
        return tftpy_decode(datagram)
    parts = datagram[2:].split(b"\0", 2)
    if len(parts) < 3 or len(datagram) > codec.MAX_DATAGRAM:
        return None
    head = tftpy_decode(datagram[:2] + parts[0] + b"\0" + parts[1] + b"\0")
    return None if head is None else head._replace(options=rfc_2347_pairs(parts[2]))


# Well-formed fields (names that differ in case only among them), a few spoiled (empty, not
# ASCII, holding a NUL) and an end: most examples are requests, every way to refuse an OACK
# and to skip an option is tried, and requests go past MAX_OPTIONS.
WORD = st.text("aBz0", min_size=1, max_size=3).map(str.encode) | st.sampled_from(
    [b"octet", b"NetAscii", b"BLKSIZE", b"blksize"]
)
SPOILED = st.lists(
    st.tuples(st.integers(0, 40), st.sampled_from([b"", b"\xe9", b"a\x00", b"\x00"])),
    max_size=3,
)


@settings(max_examples=1500, deadline=None)
@pytest.mark.fuzz
@given(
    opcode=st.sampled_from([b"\0\1", b"\0\2", b"\0\6"]),
    fields=st.lists(WORD, max_size=2 * codec.MAX_OPTIONS + 6),
    spoiled=SPOILED,
    end=st.sampled_from([b"\0", b"\0", b"", b"\0\0", b"x"]),
)
def test_requests_decode_as_the_rfc_reads_them(
    opcode: bytes, fields: list[bytes], spoiled: list[tuple[int, bytes]], end: bytes
) -> None:
    """A request is Malformed exactly when tftpy refused its file name and mode, and its
    options are its RFC 2347 pairs among the first MAX_OPTIONS; an OACK (within the bound)
    is accepted and refused exactly as tftpy did. (Two NULs end the file name and mode, two
    more each option.)"""
    for at, field in spoiled:
        if fields:
            fields[at % len(fields)] = field
    datagram = opcode + b"\0".join(fields) + end
    if opcode == b"\0\6":
        assume(datagram.count(b"\0") <= 2 * codec.MAX_OPTIONS)  # within the bound
    assert decoded_or_none(datagram) == reference_decode(datagram)


# Valid values of the options xprov negotiates, and values each one's RFC does not allow.
VALID_VALUES = {
    b"blksize": st.integers(8, 65464),
    b"tsize": st.integers(0, 9_999_999_999),
    b"timeout": st.integers(1, 255),
    b"windowsize": st.integers(1, 65535),
}
INVALID_VALUES = {
    b"blksize": [b"", b"abc", b"5", b"7", b"65465", b"-512", b" 512", b"+8", b"\xd9\xa1\xd9\xa2"],
    b"tsize": [b"", b"-1", b"x", b"12345678901"],
    b"timeout": [b"", b"0", b"256", b"1.5"],
    b"windowsize": [b"", b"0", b"65536", b"\xef\xbc\x91"],
}
Pair = tuple[bytes, bytes]


def spelt(name: bytes) -> st.SearchStrategy[bytes]:
    """`name` in any of three cases (RFC 2347: case-insensitive)."""
    return st.sampled_from([name, name.upper(), name.capitalize()])


def valid_pair(name: bytes) -> st.SearchStrategy[Pair]:
    return st.tuples(spelt(name), VALID_VALUES[name].map(lambda n: str(n).encode()))


def any_value(name: bytes) -> st.SearchStrategy[bytes]:
    return VALID_VALUES[name].map(lambda n: str(n).encode()) | st.sampled_from(INVALID_VALUES[name])


FIELD = st.binary(max_size=6).map(lambda b: b.replace(b"\0", b""))  # any field, NUL aside
KNOWN = st.sampled_from(list(VALID_VALUES))
JUNK: st.SearchStrategy[Pair] = st.one_of(
    KNOWN.flatmap(lambda n: st.tuples(spelt(n), st.sampled_from(INVALID_VALUES[n]))),
    st.tuples(st.sampled_from([b"multicast", b"x-vendor", b"blocksize", b"rollover"]), FIELD),
    st.tuples(st.just(b""), FIELD),  # empty name; (b"", b"") is two NULs of padding
    st.tuples(KNOWN.map(lambda n: n[:-1] + b"\xe9"), FIELD),  # name not ASCII
    KNOWN.flatmap(lambda n: st.tuples(spelt(n), st.just(b"1\xe92"))),  # value not ASCII
)


def options_area(pairs: list[Pair]) -> bytes:
    return b"".join(name + b"\0" + value + b"\0" for name, value in pairs)


def with_junk(data: st.DataObject, valid: list[Pair]) -> list[Pair]:
    """`valid` in its order with junk pairs interleaved, and later duplicates of its names
    (any value) each somewhere after the first: MAX_OPTIONS pairs at most."""
    junk = data.draw(st.lists(JUNK, max_size=codec.MAX_OPTIONS - len(valid)))
    order = data.draw(st.permutations([True] * len(valid) + [False] * len(junk)))
    first, other = iter(valid), iter(junk)
    pairs = [next(first) if is_valid else next(other) for is_valid in order]
    room = codec.MAX_OPTIONS - len(pairs)
    for original in data.draw(st.lists(st.sampled_from(valid), max_size=room)) if valid else []:
        name = original[0].lower()
        later = data.draw(st.integers(pairs.index(original) + 1, len(pairs)))
        pairs.insert(later, (data.draw(spelt(name)), data.draw(any_value(name))))
    return pairs


@settings(max_examples=1000, deadline=None)
@pytest.mark.fuzz
@given(data=st.data())
def test_junk_options_change_no_negotiation(data: st.DataObject) -> None:
    """A valid RRQ with junk pairs interleaved (empty, unknown, invalid, non-ASCII, later
    duplicates, NUL padding, a last name alone) is decoded, and negotiates exactly what its
    valid pairs alone negotiate, the OACK in the same order. The bound: all of them within
    MAX_OPTIONS pairs; what trails them may run past it (test_skipped_pairs_count_...)."""
    known = data.draw(st.lists(KNOWN, unique=True, max_size=len(VALID_VALUES)))
    valid = [data.draw(valid_pair(name)) for name in known]
    pairs = with_junk(data, valid)
    tail = data.draw(st.sampled_from([b"", b"blksize\0", b"x-vendor\0"]))
    tail += b"\0" * data.draw(st.integers(0, 40))
    request = codec.decode(HEAD + options_area(pairs) + tail)
    alone = codec.decode(HEAD + options_area(valid))
    assert isinstance(request, codec.Request) and isinstance(alone, codec.Request)
    assert request[:3] == alone[:3] == (codec.RRQ, "f", "octet")
    got, want = negotiate(request.options, 1234, LIMITS), negotiate(alone.options, 1234, LIMITS)
    assert got == want and list(got.oack) == list(want.oack)
    assert list(want.oack) == [name.decode() for name in known]  # each valid one accepted


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
        codec.RRQ, "f", "octet", (("timeout", "2"),)
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
        ({"timeout": "007"}, (512, 1, 7.0, {"timeout": "7"})),  # the number, plainly spelled
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
    assert negotiate(requested.items(), 1234, LIMITS) == Negotiated(*expected)


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ([("blksize", ""), ("blksize", "1024")], (1024, 1, 1.0, {"blksize": "1024"})),
        ([("blksize", "1024"), ("blksize", "2048")], (1024, 1, 1.0, {"blksize": "1024"})),
        ([("blksize", "1024"), ("blksize", "")], (1024, 1, 1.0, {"blksize": "1024"})),
        (
            [("blksize", "abc"), ("blksize", "5"), ("blksize", "900"), ("blksize", "8")],
            (900, 1, 1.0, {"blksize": "900"}),
        ),
        ([("timeout", "0"), ("timeout", "3"), ("timeout", "4")], (512, 1, 3.0, {"timeout": "3"})),
        (
            [("windowsize", "0"), ("windowsize", "8"), ("windowsize", "2")],
            (512, 8, 1.0, {"windowsize": "8"}),
        ),
        ([("tsize", "x"), ("tsize", "0"), ("tsize", "")], (512, 1, 1.0, {"tsize": "1234"})),
        (
            [("x-vendor", ""), ("multicast", "1"), ("blksize", "1468")],
            (1468, 1, 1.0, {"blksize": "1468"}),
        ),
    ],
)
def test_the_first_valid_occurrence_of_an_option_counts(
    requested: list[tuple[str, str]], expected: tuple
) -> None:
    """RFC 2347 ignores what the server does not take: an invalid occurrence is as if not
    sent, a later one of a name already accepted changes nothing."""
    assert negotiate(requested, 1234, LIMITS) == Negotiated(*expected)


def test_the_oack_lists_the_accepted_options_in_the_order_sent() -> None:
    requested = [("tsize", "0"), ("blksize", "x"), ("windowsize", "4"), ("blksize", "8")]
    oack = negotiate(requested, 7, LIMITS).oack
    assert list(oack.items()) == [("tsize", "7"), ("windowsize", "4"), ("blksize", "8")]


def test_first_valid_wins_through_the_codec() -> None:
    request = codec.decode(HEAD + b"BLKSIZE\0\0blksize\x001024\0BlkSize\x002048\0")
    assert isinstance(request, codec.Request)
    assert negotiate(request.options, 1, LIMITS).blksize == 1024


def test_negotiate_uses_the_limits() -> None:
    limits = Limits(max_blksize=100, max_windowsize=3, timeout=2.5, retries=1)
    assert negotiate([("blksize", "1024"), ("windowsize", "8")], 0, limits) == Negotiated(
        100, 3, 2.5, {"blksize": "100", "windowsize": "3"}
    )
    assert negotiate((), 0, limits).timeout == 2.5


def test_default_limits_fit_an_ethernet_frame() -> None:
    assert Limits() == Limits(max_blksize=1468, max_windowsize=64, timeout=1.0, retries=5)
    assert DEFAULT_BLKSIZE == 512


def test_the_oack_spells_each_value_as_a_number() -> None:
    """Break-it pass: `timeout 0001` came back as sent while `blksize 0000000512` came back
    as 512; every acknowledged value is the number's plain spelling."""
    requested = [("timeout", "0003"), ("blksize", "0000000512"), ("windowsize", "02")]
    negotiated = negotiate(requested, 7, LIMITS)
    assert negotiated.oack == {"timeout": "3", "blksize": "512", "windowsize": "2"}
    assert negotiated.timeout == 3.0
