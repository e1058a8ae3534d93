"""The addresses a simulated phone tries for each file, in order, as a phone tries the
addresses its provisioning name resolves to (a name with one address per data centre:
docs/deployment.md, "Phones reach the surviving instance"). Pure: no socket, no clock."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from twisted.internet import defer, error

# Seconds a simulated phone waits on one address (to connect and to be answered) before it
# tries the next: the drill's whole-fetch deadline before it had several addresses, kept so
# that a drill of one server behaves as it did. No vendor document we found gives a phone's
# own figure (docs/deployment.md); `xprov drill --attempt-timeout` sets another.
ATTEMPT_TIMEOUT = 10.0

# HOST, [IPv6]; then :HTTP_PORT and :TFTP_PORT, each optional
_SPEC = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+))(?::(?P<ports>.*))?\Z")


@dataclass(frozen=True)
class Server:
    """One address of the provisioning name: its HTTP port, and its TFTP port (None: TFTP
    phones fetch over HTTP from it, as from a server without TFTP)."""

    host: str
    http_port: int
    tftp_port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.http_port}"


def parse_server(text: str, http_port: int, tftp_port: int | None) -> Server:
    """`HOST[:HTTP_PORT[:TFTP_PORT]]` (`[::1]:8080:6969` for IPv6) -> Server; a port left
    out is the one given (the config's first listener). ValueError says what is wrong."""
    match = _SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not HOST[:HTTP_PORT[:TFTP_PORT]] ([IPv6] in brackets)")
    ports = match["ports"].split(":") if match["ports"] is not None else []
    if len(ports) > 2:
        raise ValueError(f"{text!r}: at most two ports (HTTP, then TFTP)")
    numbers = [_port(text, p) for p in ports]
    return Server(
        match["v6"] or match["host"],
        numbers[0] if numbers else http_port,
        numbers[1] if len(numbers) > 1 else tftp_port,
    )


def _port(text: str, port: str) -> int:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: {port!r} is not a port (1..65535)")
    return int(port)


class Attempt(enum.Enum):
    """How one attempt on one address ended without a file."""

    REFUSED = "refused"  # the connection was refused: nothing listens there
    TIMED_OUT = "timed out"  # no connection, or no answer, within the attempt's deadline
    FAILED = "failed"  # the server was reached and the transfer broke (a TFTP ERROR, a
    # dropped connection): an answer, as a phone that reached a server takes it

    @property
    def moves_on(self) -> bool:
        """Does the phone try the next address? Only when this one did not answer."""
        return self in (Attempt.REFUSED, Attempt.TIMED_OUT)


def attempt_of(reason: BaseException) -> Attempt:
    """The kind of a failed attempt from its exception (Twisted's connection errors, or the
    TimeoutError of the attempt's deadline)."""
    if isinstance(reason, error.ConnectionRefusedError):
        return Attempt.REFUSED
    if isinstance(reason, defer.TimeoutError | error.TimeoutError | error.TCPTimedOutError):
        return Attempt.TIMED_OUT
    return Attempt.FAILED
