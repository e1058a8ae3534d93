"""SIP messages as RFC 3261 writes them, shared by the monitor's OPTIONS probe and the push's
NOTIFY: the identifiers a request carries and its response echoes, a response parsed (bounded:
it comes from anyone who can send us a datagram), and a host:port as a Via or a URI writes it.

Pure: no sockets, no clock; only `Request.fresh` draws random identifiers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

# RFC 3261 section 7.3.3 and RFC 6665 section 8.2.1 ("o" Event, "u" Allow-Events): the
# compact names a response may use, read as the full ones.
COMPACT = {
    "c": "content-type",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
}
# A response longer than the largest UDP payload (64 KB), or with more header lines than any
# answer to OPTIONS or NOTIFY needs, is not parsed: the work a datagram costs stays bounded.
MAX_MESSAGE = 65535
MAX_HEADERS = 100
BRANCH_COOKIE = "z9hG4bK"  # RFC 3261 section 8.1.1.7: an RFC 3261 branch starts with it


def new_branch() -> str:
    """A fresh Via branch (RFC 3261 section 8.1.1.7: unique per transaction), 64 random bits."""
    return BRANCH_COOKIE + secrets.token_hex(8)


@dataclass(frozen=True)
class Request:
    """The identifiers a request carries and its response must echo: the top Via's branch,
    the Call-ID, the From tag and the CSeq number (RFC 3261 sections 8.1.1, 17.1.3)."""

    branch: str
    call_id: str
    tag: str
    cseq: int = 1

    @classmethod
    def fresh(cls) -> Request:
        return cls(new_branch(), secrets.token_hex(12) + "@xprov", secrets.token_hex(4))

    def retry(self) -> Request:
        """The same request asked again as a new transaction, e.g. with credentials (RFC 3261
        section 22.2: same Call-ID and From tag, CSeq one higher, a new branch)."""
        return replace(self, branch=new_branch(), cseq=self.cseq + 1)


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: dict[str, list[str]]  # lower-case full names -> values in the order received

    def first(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0] if values else ""


def hostport(host: str, port: int) -> str:
    """`host:port`, an IPv6 address in brackets (RFC 3261 section 25.1 `hostport`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def uri_host(host: str) -> str:
    """A host as a URI writes it: an IPv6 address in brackets (RFC 3261 `IPv6reference`)."""
    return f"[{host}]" if ":" in host else host


def parse_response(data: bytes) -> Response | None:
    """A SIP response's status and headers; None for anything else, or for one over
    MAX_MESSAGE bytes or MAX_HEADERS header lines. A line starting with a space or a tab
    continues the header above it (RFC 3261 section 7.3.1)."""
    if len(data) > MAX_MESSAGE:
        return None
    head, _, _ = data.partition(b"\r\n\r\n")
    try:
        lines = head.decode("utf-8").split("\r\n", MAX_HEADERS + 1)
        if len(lines) > MAX_HEADERS + 1:
            return None
        version, status, *reason = lines[0].split(" ", 2)
        if version != "SIP/2.0" or len(status) != 3 or not status.isdigit():
            return None
        return Response(int(status), reason[0] if reason else "", _headers(lines[1:]))
    except (UnicodeDecodeError, ValueError):
        return None


def _headers(lines: list[str]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    last: list[str] | None = None
    for line in lines:
        if line[:1] in (" ", "\t") and last:
            last[-1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            last = None
            continue
        key = name.strip().lower()
        last = headers.setdefault(COMPACT.get(key, key), [])
        last.append(value.strip())
    return headers


def via_branch(via: str) -> str:
    """The `branch` parameter of a Via value; "" if it has none."""
    for param in via.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "branch":
            return value.strip()
    return ""


def top_branch(response: Response) -> str:
    """The branch of the response's top Via: ours, if the response answers our request."""
    return via_branch(response.first("via").split(",")[0])


def matches(response: Response, request: Request, method: str) -> bool:
    """The response answers `request` (RFC 3261 section 17.1.3: the top Via's branch and the
    CSeq method; the Call-ID and the CSeq number must match too)."""
    return (
        top_branch(response) == request.branch
        and response.first("call-id") == request.call_id
        and response.first("cseq").split() == [str(request.cseq), method]
    )
