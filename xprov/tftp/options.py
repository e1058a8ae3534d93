"""TFTP option negotiation (RFC 2347): blksize (2348), tsize and timeout (2349),
windowsize (7440). Names are case-insensitive; a bad, unknown or repeated option is
ignored, never fatal; no OACK is sent when no option was accepted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_BLKSIZE = 512


@dataclass(frozen=True)
class Limits:
    max_blksize: int = 1468  # fits a 1500-byte Ethernet frame with IPv4 and UDP headers
    max_windowsize: int = 64
    timeout: float = 1.0  # seconds, when the client asks for none
    retries: int = 5

    @property
    def max_stall(self) -> float:
        """Seconds a transfer may go without progress before it ends (Result.TIMEOUT): the
        server's own give-up time, timeout x (retries + 1), whatever timeout the client
        negotiated (RFC 2349 allows 255 s, which made a never-acknowledged request hold its
        slot for 255 x 6 s = 25 minutes)."""
        return self.timeout * (self.retries + 1)


@dataclass(frozen=True)
class Negotiated:
    blksize: int
    windowsize: int
    timeout: float
    oack: dict[str, str]  # what to acknowledge; empty: send DATA at once


def _integer(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None


def negotiate(requested: Iterable[tuple[str, str]], size: int, limits: Limits) -> Negotiated:
    """The transfer's parameters from the (name lower case, value) pairs of a request, in
    the order sent (codec.Request.options), for a file of `size` bytes.

    RFC 2347 "Negotiation Protocol": options the server does not take are left out of the
    OACK, never an ERROR. The first valid occurrence of a known option counts and later
    ones of its name are ignored; one whose value its RFC does not allow (blksize "",
    "abc" or "5") is skipped as if not sent, so a later valid one counts. The OACK lists
    the accepted options in the order sent."""
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, limits.timeout
    oack: dict[str, str] = {}
    for name, text in requested:
        value = _integer(text)
        if value is None or name in oack:
            continue
        if name == "blksize" and 8 <= value <= 65464:
            blksize = min(value, limits.max_blksize)
            oack[name] = str(blksize)
        elif name == "tsize":
            oack[name] = str(size)
        elif name == "timeout" and 1 <= value <= 255:
            timeout = float(value)
            oack[name] = str(value)  # "0001" acknowledged as 1, like blksize
        elif name == "windowsize" and 1 <= value <= 65535:
            windowsize = min(value, limits.max_windowsize)
            oack[name] = str(windowsize)
    return Negotiated(blksize, windowsize, timeout, oack)
