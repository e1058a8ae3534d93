"""STUN probe: an RFC 5389 Binding request with the magic cookie, on Twisted.

Written here rather than taken from pystun3, which speaks only RFC 3489, blocks, binds a
fixed source port and hangs against coturn. RFC 3489 servers answer a request with the
cookie too; their MAPPED-ADDRESS is accepted when XOR-MAPPED-ADDRESS is missing. Up only for
a Binding Success with our transaction id and a decodable mapped address, from the
server's own address (the socket is connected); a Binding Error is down. An ICMP error
ends nothing (anyone can forge one): without an answer by the deadline the detail names it.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from xprov.config import StunService
from xprov.monitor.probe import Outcome, UdpExchange, Verdict, probe_udp
from xprov.monitor.registry import ProbeContext
from xprov.monitor.state import ProbeResult

if TYPE_CHECKING:
    from xprov.monitor.probe import IProbeReactor

MAGIC_COOKIE = 0x2112A442
BINDING_REQUEST, BINDING_SUCCESS, BINDING_ERROR = 0x0001, 0x0101, 0x0111
MAPPED_ADDRESS, XOR_MAPPED_ADDRESS, ERROR_CODE = 0x0001, 0x0020, 0x0009
RETRANSMIT_AT = (0.5,)


def binding_request(transaction: bytes) -> bytes:
    return struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC_COOKIE) + transaction


def _attributes(body: bytes) -> dict[int, bytes]:
    attributes: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(body):
        kind, length = struct.unpack_from("!HH", body, offset)
        value = body[offset + 4 : offset + 4 + length]
        if len(value) < length:
            break
        attributes.setdefault(kind, value)
        offset += 4 + length + (-length % 4)  # values are padded to 4 bytes
    return attributes


def _address(value: bytes, transaction: bytes, xor: bool) -> str | None:
    if len(value) < 8 or value[1] not in (1, 2):
        return None
    port = struct.unpack_from("!H", value, 2)[0]
    raw = value[4 : 8 if value[1] == 1 else 20]
    if len(raw) not in (4, 16):
        return None
    if xor:
        port ^= MAGIC_COOKIE >> 16
        key = struct.pack("!I", MAGIC_COOKIE) + transaction
        raw = bytes(a ^ b for a, b in zip(raw, key, strict=False))
    address = ipaddress.ip_address(raw)
    return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"


def parse_binding_response(data: bytes, transaction: bytes) -> Verdict | None:
    """The verdict on a reply to our request; None if it is not one (ignore it)."""
    if len(data) < 20:
        return None
    kind, length, cookie = struct.unpack_from("!HHI", data)
    if cookie != MAGIC_COOKIE or data[8:20] != transaction or length > len(data) - 20:
        return None
    attributes = _attributes(data[20 : 20 + length])
    if kind == BINDING_ERROR:
        code = attributes.get(ERROR_CODE, b"\0\0\0\0")
        number = (code[2] & 7) * 100 + code[3] if len(code) >= 4 else 0
        return False, f"Binding Error {number}"
    if kind != BINDING_SUCCESS:
        return None
    for attribute, xor in ((XOR_MAPPED_ADDRESS, True), (MAPPED_ADDRESS, False)):
        if attribute in attributes:
            mapped = _address(attributes[attribute], transaction, xor)
            if mapped:
                return True, f"mapped {mapped}"
    return False, "Binding Success without a mapped address"


class _Binding(UdpExchange):
    resend_at = RETRANSMIT_AT

    def __init__(
        self, address: str, port: int, done: Deferred[Outcome], clock: IReactorTime
    ) -> None:
        super().__init__(address, port, done, clock)
        self.transaction = os.urandom(12)

    def question(self, local: tuple[str, int]) -> bytes:
        return binding_request(self.transaction)

    def judge(self, datagram: bytes) -> Verdict | None:
        return parse_binding_response(datagram, self.transaction)


def probe_binding(
    target: StunService, timeout: float, reactor: IProbeReactor
) -> Deferred[ProbeResult]:
    return probe_udp(
        target.host,
        target.port,
        lambda address, port, done: _Binding(address, port, done, reactor),
        timeout,
        reactor,
    )


class StunProbe:
    """The Binding probe as a registry `Probe`, bound to the reactor."""

    settings = None  # nothing from [monitor] but the deadline

    def __init__(self, context: ProbeContext) -> None:
        self.reactor = context.reactor

    def describe(self, target: StunService) -> str:
        return f"stun udp {target.host}:{target.port}"

    def probe(self, target: StunService, deadline: float) -> Deferred[ProbeResult]:
        return probe_binding(target, deadline, self.reactor)

    def close(self) -> None:
        pass  # nothing kept between rounds
