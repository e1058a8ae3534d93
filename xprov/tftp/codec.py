"""The TFTP wire format: tftpy's packet classes, wrapped so that no decode error escapes.

Every datagram decodes to one of the packet tuples below or raises Malformed. ERROR packets
are built here: tftpy's encoder ignores the message.
"""

from __future__ import annotations

import logging
import struct
from typing import NamedTuple

from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketACK,
    TftpPacketDAT,
    TftpPacketERR,
    TftpPacketInitial,
    TftpPacketOACK,
)

# tftpy logs every decoded ERROR packet at error level; a client aborting is not our error.
logging.getLogger("tftpy").setLevel(logging.CRITICAL + 1)

RRQ, WRQ, DATA, ACK, ERROR, OACK = 1, 2, 3, 4, 5, 6
MAX_DATAGRAM = 65468  # 4-byte header + the largest blksize (RFC 2348)
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
    options: dict[str, str]  # names lower case


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


def decode(datagram: bytes) -> Packet:
    if len(datagram) < 4 or len(datagram) > MAX_DATAGRAM:
        raise Malformed("bad length")
    try:
        packet = _factory.parse(datagram)
    except Exception as exc:  # tftpy raises assorted errors on bad input; none must escape
        raise Malformed(type(exc).__name__) from None
    if isinstance(packet, TftpPacketInitial):
        if not packet.filename:
            raise Malformed("empty file name")
        options = {str(k).lower(): str(v) for k, v in packet.options.items()}
        return Request(packet.opcode, packet.filename, packet.mode, options)
    if isinstance(packet, TftpPacketACK):
        return Ack(packet.blocknumber)
    if isinstance(packet, TftpPacketDAT):
        return Data(packet.blocknumber, packet.data)
    if isinstance(packet, TftpPacketERR):
        message = packet.errmsg or b""
        return Error(packet.errorcode, message.decode("ascii", "replace"))
    return Oack(dict(packet.options))  # the factory makes no other packet


def data(block: int, payload: bytes) -> bytes:
    packet = TftpPacketDAT()
    packet.blocknumber = block & 0xFFFF
    packet.data = payload
    return packet.encode().buffer


def oack(options: dict[str, str]) -> bytes:
    packet = TftpPacketOACK()
    packet.options = options
    return packet.encode().buffer


def ack(block: int) -> bytes:
    packet = TftpPacketACK()
    packet.blocknumber = block & 0xFFFF
    return packet.encode().buffer


def rrq(filename: str, options: dict[str, str] | None = None, mode: str = "octet") -> bytes:
    """A read request, as a client sends it (tftpy's encoder knows only octet mode)."""
    fields = [filename, mode, *(x for item in (options or {}).items() for x in item)]
    return struct.pack("!H", RRQ) + b"".join(f.encode("ascii") + b"\0" for f in fields)


def error(code: int, message: str) -> bytes:
    return struct.pack("!HH", ERROR, code) + message.encode("ascii", "replace") + b"\0"
