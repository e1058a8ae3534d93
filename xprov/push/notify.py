"""The NOTIFY that makes a phone fetch its file now, built and its answers read. Pure: no
sockets, no clock, no randomness (the caller passes the identifiers and the cnonce).

What is sent (docs/phone-redundancy.md "NOTIFY"; fact sheet
/work/shared/reference/phone-redundancy.md section 3): a NOTIFY outside any dialog (no
SUBSCRIBE came before it), with the headers every request carries (RFC 3261 section 8.1.1),
`Event` (RFC 6665 section 8.2.1) and `Subscription-State: terminated` (RFC 6665 section 7.2:
every NOTIFY carries one; terminated, as no subscription goes on). The Event is the vendor's:
Yealink `check-sync;reboot=false` (re-fetch without a reboot), SPA `resync` (the event
Cisco documents; the phone challenges it with a 401 and acts on the authenticated retry).

Only IP literals are sent to, never a host name: contacts come from the softswitch's
location table, which holds the addresses the phones registered from, so a name there
would be a phone's claim, and resolving it would let a phone point our NOTIFYs anywhere
(and a resolver stall the push).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from xprov import __version__
from xprov.auth import digest_response, parse_params
from xprov.push.model import Contact
from xprov.sipmessage import Request, Response, hostport, uri_host

METHOD = "NOTIFY"
USER_AGENT = f"xprov/{__version__}"
# The Event each vendor's firmware acts on (fact sheet 3.1, 3.2). `reboot=false`: a Yealink
# re-fetches without rebooting whatever its `sip.notify_reboot_enable` (0 is provisioned
# with push; the T5 guide's default 1 would reboot on a plain check-sync).
EVENTS = {"yealink": "check-sync;reboot=false", "linksys": "resync"}
DEFAULT_EVENT = "check-sync"  # a phone not in the inventory: what Asterisk and Wazo send
SIP_PORT = 5060  # RFC 3261 section 19.1.2: a sip: URI without a port, over UDP
# Longer than any Contact the location table holds (Kamailio's `location.contact` is
# VARCHAR(512)): a longer URI is refused, never cut.
MAX_URI = 512
# RFC 3261 section 25.1 `user`: unreserved / escaped / user-unreserved.
_USER = re.compile(r"(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+")
# What a URI may hold in a request line: visible ASCII but for the characters that would
# end it or quote it elsewhere (a space, <, >, ").
_URI_TEXT = re.compile(r"[!#-;=?-~]+")
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"  # RFC 3261 section 25.1 `token`
# RFC 6665 section 8.4 `Event`: event-type *( SEMI event-param ), a param `token [= token]`.
EVENT = re.compile(rf"{_TOKEN}(?:;{_TOKEN}(?:={_TOKEN})?)*")


@dataclass(frozen=True)
class Target:
    """Where one NOTIFY goes: the contact's URI as the Request-URI, an IP literal and a port
    over UDP, and the user for the To header."""

    uri: str  # "sip:1001@192.0.2.10:5062;line=x", as the phone registered it
    user: str  # "1001"; "" for none
    host: str  # "192.0.2.10" or "2001:db8::1" (no brackets)
    port: int
    version: Literal[4, 6]


@dataclass(frozen=True)
class Refusal:
    """Why a contact cannot be sent to, or a challenge answered: an operator reads it."""

    detail: str


# The header that answers a challenge: `Authorization` a 401's, `Proxy-Authorization` a
# 407's (RFC 3261 sections 22.2, 22.3).
AnswerHeader = Literal["Authorization", "Proxy-Authorization"]


@dataclass(frozen=True)
class Authorization:
    """An answer to a challenge, the header and its value; never logged."""

    header: AnswerHeader
    value: str = field(repr=False)


@dataclass(frozen=True)
class Challenge:
    """An MD5 Digest challenge we can answer (RFC 2617 section 3.2.1, RFC 7616 section 3.3)."""

    header: AnswerHeader
    realm: str
    nonce: str
    qop: bool  # qop "auth" offered: answer with cnonce and nc; else RFC 2069, without
    opaque: str | None  # echoed back when given


def event_for(vendor: str | None) -> str:
    """The Event value for a phone of `vendor` ("yealink", "linksys", None: unknown)."""
    return EVENTS.get(vendor or "", DEFAULT_EVENT)


def require_event(event: str) -> str:
    """`event` if it is an RFC 6665 Event value (what a header line can carry); else
    ValueError: the caller's mistake, never a phone's."""
    if not EVENT.fullmatch(event):
        raise ValueError(f"not an Event value: {event!r}")
    return event


def target_of(contact: Contact) -> Target | Refusal:
    """Where `contact` is reached: `sip:[user[:password]@]host[:port][;params]`, the host an
    IPv4 address or an IPv6 reference, over UDP (no `transport` but udp), no URI headers
    (RFC 3261 section 19.1.1: none in a Request-URI). Anything else is Refusal, with
    the reason; so is a user that is not a SIP user (it goes in the To header)."""
    uri = contact.uri
    if len(uri) > MAX_URI:
        return Refusal(f"URI longer than {MAX_URI} characters")
    if not _URI_TEXT.fullmatch(uri):
        return Refusal('URI with a space, a control, a non-ASCII or a <>" character')
    if uri[:4].lower() != "sip:":
        return Refusal("not a sip: URI (NOTIFYs go over UDP: no sips:, no tel:)")
    if "?" in uri:
        return Refusal("URI with headers (?...), not allowed in a Request-URI")
    userinfo, at, rest = uri[4:].partition("@")
    if not at:
        rest = userinfo
    address, _, params = rest.partition(";")
    transport = _param(params, "transport")
    if transport not in (None, "udp"):
        return Refusal(f"transport={transport}: NOTIFYs go over UDP only")
    user = contact.user
    if user and not _USER.fullmatch(user):
        return Refusal("user is not a SIP user (RFC 3261 section 25.1)")
    place = _host_port(address)
    if isinstance(place, Refusal):
        return place
    host, port, version = place
    return Target(uri, user, host, port, version)


def _param(params: str, name: str) -> str | None:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.lower() == name:
            return value.lower()
    return None


def _host_port(address: str) -> tuple[str, int, Literal[4, 6]] | Refusal:
    """`192.0.2.10:5062`, `[2001:db8::1]`: the IP literal and the port (5060 if none)."""
    bracketed = address.startswith("[")
    if bracketed:
        host, bracket, after = address[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return Refusal("malformed IPv6 reference")
        colon, port_text = after[:1], after[1:]
    else:
        host, colon, port_text = address.partition(":")
    if not host:
        return Refusal("no host")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return Refusal(
            "host is not an IP address (names are not resolved: the location table holds"
            " the addresses phones registered from)"
        )
    if (ip.version == 6) != bracketed or "%" in host:  # a zone names no one else's host
        return Refusal("malformed IPv6 reference")
    if ip.is_unspecified or ip.is_multicast:
        return Refusal("not a unicast address")
    if not colon:
        port = SIP_PORT
    elif port_text.isdigit() and len(port_text) <= 5 and 0 < int(port_text) <= 65535:
        port = int(port_text)
    else:
        return Refusal("malformed port")
    return str(ip), port, 4 if ip.version == 4 else 6


def build_notify(
    target: Target,
    event: str,
    local: tuple[str, int],
    request: Request,
    authorization: Authorization | None = None,
) -> bytes:
    """The NOTIFY's bytes: `local` is our (address, port) for the Via (with `rport`, RFC
    3581: the phone answers where the datagram came from), `request` its identifiers. An
    `event` that is not an RFC 6665 Event value raises ValueError (`require_event`)."""
    require_event(event)
    to = f"{target.user}@{uri_host(target.host)}" if target.user else uri_host(target.host)
    lines = [
        f"{METHOD} {target.uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {hostport(*local)};branch={request.branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:xprov@{uri_host(local[0])}>;tag={request.tag}",
        f"To: <sip:{to}>",
        f"Call-ID: {request.call_id}",
        f"CSeq: {request.cseq} {METHOD}",
        f"Event: {event}",
        "Subscription-State: terminated",
    ]
    if authorization is not None:
        lines.append(f"{authorization.header}: {authorization.value}")
    lines += [f"User-Agent: {USER_AGENT}", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def challenge_of(response: Response) -> Challenge | Refusal:
    """The first challenge of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) we can
    answer: Digest, MD5 (or no algorithm, RFC 2617 section 3.2.1), qop absent or offering
    `auth`, with a realm and a nonce; else why none can be answered."""
    proxy = response.status == 407
    name = "proxy-authenticate" if proxy else "www-authenticate"
    header: AnswerHeader = "Proxy-Authorization" if proxy else "Authorization"
    why = f"no {name} Digest challenge"
    for value in response.headers.get(name, []):
        params = parse_params(value)  # None: not Digest, or longer than auth.MAX_HEADER
        if params is None:
            continue
        qops = [q.strip().lower() for q in params.get("qop", "").split(",") if q.strip()]
        realm, nonce, opaque = params.get("realm"), params.get("nonce"), params.get("opaque")
        if params.get("algorithm", "MD5").upper() != "MD5":
            why = "algorithm not MD5"
        elif qops and "auth" not in qops:
            why = "qop without auth"
        elif realm is None or not nonce:
            why = "challenge without realm or nonce"
        elif not all(_writable(v) for v in (realm, nonce, opaque or "")):
            why = "challenge with a control or non-ASCII character"
        else:
            return Challenge(header, realm, nonce, bool(qops), opaque)
    return Refusal(f"cannot answer the challenge: {why}")


def answer(
    challenge: Challenge, credentials: tuple[str, str], uri: str, cnonce: str, nc: int = 1
) -> Authorization | Refusal:
    """The Digest answer to `challenge` for a NOTIFY to `uri` (the Request-URI) with the
    line's (user, password) (RFC 2617 section 3.2.2, RFC 7616 section 3.4): with qop=auth
    when offered (`cnonce`, `nc` as 8 hex digits), without otherwise (RFC 2069). Refused
    for a user name a header line cannot carry."""
    user, password = credentials
    if not _writable(user):
        return Refusal("cannot answer the challenge: the line's user has a control character")
    counted = (f"{nc:08x}", cnonce) if challenge.qop else None
    response = digest_response(
        user, challenge.realm, password, METHOD, uri, challenge.nonce, counted
    )
    parts = [
        f"username={_quoted(user)}",
        f"realm={_quoted(challenge.realm)}",
        f"nonce={_quoted(challenge.nonce)}",
        f"uri={_quoted(uri)}",
        f'response="{response}"',
        "algorithm=MD5",
    ]
    if counted is not None:
        parts += [f"cnonce={_quoted(cnonce)}", "qop=auth", f"nc={counted[0]}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quoted(challenge.opaque)}")
    return Authorization(challenge.header, "Digest " + ", ".join(parts))


def _writable(text: str) -> bool:
    """Text a quoted-string in our (ASCII) request can carry: no control character."""
    return text.isascii() and text.isprintable()


def _quoted(text: str) -> str:
    """A quoted-string with its quote and backslash escaped (RFC 3261 `quoted-pair`)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
