"""The SIP a simulated phone speaks (issue 18): reading what reaches it, and its answer to a
NOTIFY that asks it to fetch its file (Yealink `check-sync`, SPA `resync` behind a digest
challenge). Its probes are the monitor's OPTIONS (xprov.monitor.sip.build_options). Pure:
bytes in, bytes out; no socket, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from xprov.auth import digest_response, parse_params
from xprov.sipmessage import COMPACT, MAX_MESSAGE, via_branch

# The Event each vendor acts on (fact sheet 3.1, 3.2): the token before any parameter.
RESYNC_EVENT = {"yealink": "check-sync", "linksys": "resync"}

# The realm of a simulated SPA's challenge; which realm a real SPA names is not documented
# (fact sheet 5, point 4): the sender must take it from the challenge, as RFC 2617 says.
REALM = "spa-resync"


@dataclass(frozen=True)
class Message:
    """A SIP request or response: its first line and its headers in order (names in lower
    case, compact forms expanded)."""

    start: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header `name` (lower case), None if absent."""
        return next((v for k, v in self.headers if k == name), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]

    @property
    def method(self) -> str | None:
        """The request's method; None for a response."""
        return None if self.start.startswith("SIP/2.0 ") else self.start.split(" ", 1)[0]

    @property
    def status(self) -> int | None:
        """The response's status code; None for a request."""
        parts = self.start.split(" ", 2)
        if parts[0] == "SIP/2.0" and len(parts) > 1 and parts[1].isdigit():
            return int(parts[1])
        return None

    @property
    def branch(self) -> str | None:
        """The top Via's branch: the transaction (RFC 3261 section 17.2.3); None if none."""
        via = self.header("via")
        return via_branch(via.split(",")[0]) or None if via else None


def parse(datagram: bytes) -> Message | None:
    """The message in a UDP datagram, request or response (xprov.sipmessage reads responses
    only); None if it is not SIP, or longer than the largest UDP payload (MAX_MESSAGE).
    The body, if any, is not kept: nothing here reads one."""
    if len(datagram) > MAX_MESSAGE:
        return None
    head = datagram.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    if not (start.startswith("SIP/2.0 ") or start.endswith(" SIP/2.0")):
        return None
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # a folded line continues the header
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            headers.append((COMPACT.get(name, name), value.strip()))
    return Message(start, tuple(headers))


def response(
    request: Message,
    code: int,
    reason: str,
    to_tag: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The answer to `request` (RFC 3261 section 8.2.6.2): its Via headers, From, Call-ID
    and CSeq copied, its To given `to_tag` unless it has one, no body."""
    lines = [f"SIP/2.0 {code} {reason}"]
    lines += [f"Via: {via}" for via in request.all("via")]
    to = request.header("to") or ""
    if ";tag=" not in to.lower():
        to = f"{to};tag={to_tag}"
    for name, value in (
        ("From", request.header("from")),
        ("To", to),
        ("Call-ID", request.header("call-id")),
        ("CSeq", request.header("cseq")),
    ):
        lines.append(f"{name}: {value or ''}")
    lines += [f"{name}: {value}" for name, value in extra]
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- digest (RFC 2617 section 3.2; RFC 3261 section 22.4): xprov.auth's, as the HTTP server
# checks phones and the push answers them


def challenge(realm: str, nonce: str) -> str:
    """A WWW-Authenticate value asking for MD5 digest with qop auth."""
    return f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'


def authorized(value: str | None, method: str, credentials: tuple[str, str], nonce: str) -> bool:
    """Does the Authorization `value` prove `credentials` (user, password) for our realm
    and `nonce`? Both the qop=auth and the RFC 2069 form are taken."""
    params = parse_params(value or "")
    if params is None:
        return False
    user, password = credentials
    if (params.get("username"), params.get("realm"), params.get("nonce")) != (user, REALM, nonce):
        return False
    qop = params.get("qop")
    if qop is not None and (qop != "auth" or "nc" not in params or "cnonce" not in params):
        return False
    expected = digest_response(
        user,
        REALM,
        password,
        method,
        params.get("uri", ""),
        nonce,
        None if qop is None else (params["nc"], params["cnonce"]),
    )
    return params.get("response", "").lower() == expected


# -- the phone's answer to a NOTIFY --------------------------------------------------------


class Answer(NamedTuple):
    """What a simulated phone does with a request: the response, and whether it now
    fetches its file (`resync`)."""

    code: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    resync: bool


def event_of(request: Message) -> str:
    """The Event header's package, in lower case, without parameters ("" if none)."""
    return (request.header("event") or "").split(";", 1)[0].strip().lower()


def answer(
    request: Message, vendor: str, credentials: tuple[str, str] | None, nonce: str
) -> Answer:
    """A phone's answer to a request sent to it: a NOTIFY of its vendor's resync event
    makes it fetch its file (200); an SPA first challenges it with its line's
    `credentials` (Auth_Resync-Reboot, default Yes: fact sheet 3.2) and acts on the
    authenticated retry only; None: no challenge. Another event: 489 Bad Event (RFC 6665
    section 8.2.1); another method: 405."""
    if request.method != "NOTIFY":
        return Answer(405, "Method Not Allowed", (("Allow", "NOTIFY"),), False)
    if event_of(request) != RESYNC_EVENT.get(vendor):
        return Answer(489, "Bad Event", (("Allow-Events", RESYNC_EVENT.get(vendor, "")),), False)
    if credentials is not None and not authorized(
        request.header("authorization"), "NOTIFY", credentials, nonce
    ):
        return Answer(401, "Unauthorized", (("WWW-Authenticate", challenge(REALM, nonce)),), False)
    return Answer(200, "OK", (), True)
