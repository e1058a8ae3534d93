"""The TFTP wire format: tftpy's packet classes, wrapped so that no decode error escapes.

Every datagram decodes to one of the packet tuples below or raises Malformed. Requests and
OACKs, the packets with options, are decoded here, reading at most MAX_OPTIONS options;
the other types go through tftpy. ERROR packets are built here: tftpy's encoder
ignores the message.
"""

from __future__ import annotations

import logging
import struct
from typing import Any, NamedTuple

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketACK,
    TftpPacketDAT,
    TftpPacketERR,
    TftpPacketOACK,
)

# tftpy logs every decoded ERROR packet at error level; a client aborting is not our error.
logging.getLogger("tftpy").setLevel(logging.CRITICAL + 1)

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
MAX_DATAGRAM = 65468  # 4-byte header + the largest blksize (RFC 2348)
# Bytes read per datagram: the UDP length field's limit (IPv4 carries at most 65,507), so no
# datagram is ever read cut short and judged on its first part (Twisted reads 8,192).
READ_SIZE = 65535
# Option pairs read from a request or OACK (well-formed or not: a request's skipped pairs and
# trailing NULs count); any beyond are ignored, not even read. RFC 2347 sets
# no number; the options defined (blksize, tsize, timeout, windowsize, multicast) and a few
# vendors' fit four times over, and xprov negotiates four. The bound keeps a flood of tiny
# options about as cheap as a normal request (tftpy's per-byte parse: 5 ms for 8 KB of
# them, 45 ms for 64 KB, against 20 us for a normal one).
MAX_OPTIONS = 16
MODES = ("octet", "netascii")

# Error codes (RFC 1350, RFC 2347)
NOT_DEFINED, FILE_NOT_FOUND, ACCESS_VIOLATION, ILLEGAL_OPERATION, UNKNOWN_TID = 0, 1, 2, 4, 5
OPTIONS_REFUSED = 8


class Malformed(ValueError):
    """The datagram is not a TFTP packet we can read."""


class Request(NamedTuple):
    opcode: int  # RRQ or WRQ
    filename: str
    mode: str  # lower case
    options: tuple[tuple[str, str], ...]  # (name lower case, value), as sent: _request_options


class Ack(NamedTuple):
    block: int


class Error(NamedTuple):
    code: int
    message: str


class Data(NamedTuple):
    block: int
    payload: bytes


class Oack(NamedTuple):
    options: dict[str, str]


Packet = Request | Ack | Error | Data | Oack
_factory = TftpPacketFactory()


def is_error(datagram: bytes) -> bool:
    """Whether the datagram carries the ERROR opcode, read or not: RFC 1350 section 7, an
    ERROR is never acknowledged, so such a datagram is never answered, however malformed."""
    return datagram[:2] == b"\x00\x05"


def decode(datagram: bytes) -> Packet:
    """One datagram as a packet tuple (RFC 1350, RFC 2347 options); Malformed otherwise.

    Cost: a request or OACK is split once, in C, into at most MAX_OPTIONS options and an
    unread rest, so a flood of options costs a few microseconds more than a normal request."""
    if len(datagram) < 4 or len(datagram) > MAX_DATAGRAM:
        raise Malformed("bad length")
    opcode = datagram[1] if datagram[0] == 0 else None
    if opcode in (RRQ, WRQ):
        return _request(opcode, datagram)
    if opcode == OACK:
        return Oack(_options(datagram[2:]))  # names as sent: an OACK is read, not negotiated
    try:
        packet = _factory.parse(datagram)
    except Exception as exc:  # tftpy raises assorted errors on bad input; none must escape
        raise Malformed(type(exc).__name__) from None
    if isinstance(packet, TftpPacketACK):
        return Ack(packet.blocknumber)
    if isinstance(packet, TftpPacketDAT):
        return Data(packet.blocknumber, packet.data)
    assert isinstance(packet, TftpPacketERR)  # RRQ, WRQ and OACK were decoded above
    message = packet.errmsg or b""
    return Error(packet.errorcode, message.decode("ascii", "replace"))


def _request(opcode: int, datagram: bytes) -> Request:
    """RRQ/WRQ: file name NUL mode NUL, then option pairs (RFC 1350 section 5, RFC 2347
    "Packet Formats").

    Malformed only without its head: a NUL-terminated, non-empty, ASCII file name and a
    NUL-terminated ASCII mode (the mode's value is the server's to judge: an empty or
    unknown one is decoded, then refused). The options after it never make a request
    malformed: see _request_options."""
    fields = datagram[2:].split(b"\0", 2)
    if len(fields) < 3:
        raise Malformed("unterminated string")
    name, mode, options = fields
    filename = _ascii(name)
    if not filename:
        raise Malformed("empty file name")
    return Request(opcode, filename, _ascii(mode).lower(), _request_options(options))


def _request_options(area: bytes) -> tuple[tuple[str, str], ...]:
    """The readable (name, value) pairs of the first MAX_OPTIONS, in the order sent, names
    lower case (RFC 2347 "Packet Formats": fields alternate name, value; case-insensitive
    ASCII, each NUL-terminated).

    A pair is skipped, never fatal, when its name or value is empty or not ASCII; so are a
    name left without a value and an unterminated last field, and trailing NULs read as
    empty pairs. RFC 2347 "Negotiation Protocol" has the server ignore options it does not
    take, and phones send such pairs. Duplicates are all kept: negotiation picks."""
    fields, _ = _split(area)  # an unterminated last field is no pair
    return tuple(
        (fields[i].decode().lower(), fields[i + 1].decode())  # ASCII is UTF-8
        for i in range(0, len(fields) - 1, 2)  # nor is a last name alone
        if _readable(fields[i]) and _readable(fields[i + 1])
    )


def _readable(field: bytes) -> bool:
    """Whether `field` may be an option's name or value: non-empty ASCII (RFC 2347)."""
    return field != b"" and field.isascii()


def _options(area: bytes) -> dict[str, str]:
    """An OACK's option pairs (RFC 2347 "Packet Formats"), names as sent, or Malformed
    unless each name and value is non-empty, ASCII and NUL-terminated: the first
    MAX_OPTIONS, any after them unread. An OACK is a client's to read (tests, benches; the
    server ignores one): strict, as tftpy was."""
    fields, rest = _split(area)
    if len(fields) < 2 * MAX_OPTIONS and rest:
        raise Malformed("unterminated string")
    if not all(fields):
        raise Malformed("empty option")
    if len(fields) % 2:
        raise Malformed("option without a value")
    return {_ascii(fields[i]): _ascii(fields[i + 1]) for i in range(0, len(fields), 2)}


def _split(area: bytes) -> tuple[list[bytes], bytes]:
    """The first 2 x MAX_OPTIONS NUL-terminated fields of `area`, split once, in C, and
    what follows the last NUL split on: nothing, an unterminated field, or the fields
    beyond the bound, never read."""
    *fields, rest = area.split(b"\0", 2 * MAX_OPTIONS)
    return fields, rest


def _ascii(field: bytes) -> str:
    if not field.isascii():
        raise Malformed("not ASCII")
    return field.decode()  # ASCII is UTF-8


def _wire(packet: Any) -> bytes:
    """The bytes of a tftpy packet (tftpy is untyped: its `buffer` is bytes)."""
    wire: bytes = packet.encode().buffer
    return wire


def data(block: int, payload: bytes) -> bytes:
    packet = TftpPacketDAT()
    packet.blocknumber = block & 0xFFFF
    packet.data = payload
    return _wire(packet)


def oack(options: dict[str, str]) -> bytes:
    packet = TftpPacketOACK()
    packet.options = options
    return _wire(packet)


def ack(block: int) -> bytes:
    packet = TftpPacketACK()
    packet.blocknumber = block & 0xFFFF
    return _wire(packet)


def rrq(filename: str, options: dict[str, str] | None = None, mode: str = "octet") -> bytes:
    """A read request, as a client sends it (tftpy's encoder knows only octet mode)."""
    fields = [filename, mode, *(x for item in (options or {}).items() for x in item)]
    return struct.pack("!H", RRQ) + b"".join(f.encode("ascii") + b"\0" for f in fields)


def error(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode("ascii", "replace") + b"\0"
