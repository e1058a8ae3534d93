"""HTTP authentication of phones: Digest (RFC 7616 with MD5, what Yealink and SPA firmware
speak) and Basic, which is only ever accepted over HTTPS. Pure but for the random part of a
nonce: no sockets, no clock of its own (the caller passes the time).

A nonce is `stamp:random:HMAC(stamp:random:client)`: any request can be checked without a
table, it is bound to the client's address, and it expires after `lifetime` seconds. The
random part makes every challenge unique, so two phones behind one NAT address never share
a nonce. Replays within the lifetime are caught by `NonceCounts` (RFC 7616 section 3.4: the
server remembers the highest `nc` it accepted for each nonce).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

REALM = "xprov"
_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_NC = re.compile(r"^[0-9a-fA-F]{8}$")  # RFC 7616 section 3.4: 8 hex digits
MAX_HEADER = 2048
SPENT = 1 << 32  # above any 8-digit nc: a nonce used without a count serves no more


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)
    device: str | None = None  # the MAC of the one phone they open; None: every phone


class Proof(enum.Enum):
    """What an Authorization header proved."""

    OK = "ok"  # the user's password, on a fresh nonce
    STALE = "stale"  # the right password on an expired nonce: ask again, quietly
    REPLAYED = "replayed"  # an answer already used: ask again with a fresh nonce
    FAILED = "failed"  # a wrong password, unknown user, forged nonce or malformed header


@dataclass(frozen=True)
class Verdict:
    proof: Proof
    user: str | None = None  # who proved it (None: nobody)
    reason: str = ""  # for the security log: never a secret


def _failed(reason: str) -> Verdict:
    return Verdict(Proof.FAILED, reason=reason)


def _account(
    user: str | None, lookup: Mapping[str, Credentials] | None, default: Credentials | None
) -> Credentials | None:
    """The credentials of `user`: its own account, else the shared one if it is named so."""
    if user is None:
        return None
    return (lookup or {}).get(user) or (default if default and default.user == user else None)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class NonceCounts:
    """The highest `nc` accepted for each nonce in use; a lower or equal one is a replay.

    Bounded: beyond `max_nonces` the least recently used nonce is forgotten, and every nonce
    issued no later than a forgotten one counts as used up (its next answer is asked again
    with a fresh nonce), so forgetting never lets a replay through."""

    def __init__(self, max_nonces: int = 100_000) -> None:
        self.max_nonces = max_nonces
        self._last: OrderedDict[str, tuple[int, int]] = OrderedDict()  # nonce -> (nc, issued)
        self.forgotten_until = -1  # issue stamp of the newest nonce forgotten

    def accept(self, nonce: str, issued: int, nc: int) -> bool:
        """Record `nc` for `nonce`; False if it is not above the last one accepted."""
        last = self._last.get(nonce)
        if last is None and issued <= self.forgotten_until:
            return False
        if last is not None and nc <= last[0]:
            return False
        self._last[nonce] = (nc, issued)
        self._last.move_to_end(nonce)
        while len(self._last) > self.max_nonces:
            _, (_, stamp) = self._last.popitem(last=False)
            self.forgotten_until = max(self.forgotten_until, stamp)
        return True

    def expire(self, before: int) -> None:
        """Forget the least recently used nonces issued before `before` (refused anyway)."""
        while self._last:
            nonce, (_, issued) = next(iter(self._last.items()))
            if issued >= before:
                return
            del self._last[nonce]

    def __len__(self) -> int:
        return len(self._last)


class DigestAuth:
    def __init__(
        self,
        secret: bytes,
        lifetime: float = 300.0,
        realm: str = REALM,
        counts: NonceCounts | None = None,
        md5: Callable[[str], str] = _md5,  # the hex digest; a test counts the work through it
    ) -> None:
        self.secret, self.lifetime, self.realm, self.md5 = secret, lifetime, realm, md5
        self.counts = counts if counts is not None else NonceCounts()

    def _sign(self, stamp: str, salt: str, client: str) -> str:
        text = f"{stamp}:{salt}:{client}".encode()
        return hmac.new(self.secret, text, hashlib.sha256).hexdigest()[:32]

    def nonce(self, client: str, now: float) -> str:
        stamp, salt = str(int(now)), secrets.token_hex(8)
        signed = f"{stamp}:{salt}:{self._sign(stamp, salt, client)}"
        return base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")

    def challenge(self, client: str, now: float, stale: bool = False) -> str:
        """The `WWW-Authenticate` value (RFC 7616 section 3.3)."""
        return (
            f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
            f'nonce="{self.nonce(client, now)}"' + (", stale=true" if stale else "")
        )

    def _issued(self, nonce: str | None, client: str) -> tuple[int, str] | None:
        """When this server issued `nonce` to `client`, and the nonce's identity (its
        stamp and random part, whatever padding or spacing it came with); None if this
        server did not issue it to that client (or there is none)."""
        if nonce is None:
            return None
        try:  # the padding we left out; excess padding is ignored
            decoded = base64.urlsafe_b64decode(nonce + "==").decode()
            stamp, salt, mac = decoded.split(":")
            issued = int(stamp)
        except (ValueError, binascii.Error):  # UnicodeError is a ValueError
            return None
        if not hmac.compare_digest(mac.encode(), self._sign(stamp, salt, client).encode()):
            return None
        return issued, f"{stamp}:{salt}"

    def _expected(
        self,
        params: Mapping[str, str],
        account: tuple[str, str],
        method: str,
        uri: str,
        nonce: str,
    ) -> tuple[int, str] | Verdict:
        """The answer's count and the response it must carry for its qop (RFC 7616 section
        3.4.1), or why it cannot be checked."""
        qop = params.get("qop")
        counted: tuple[str, str] | None = None  # RFC 2069, old firmware: no qop, no count
        nc = SPENT  # without a count a nonce serves once
        if qop == "auth":
            nc_text, cnonce = params.get("nc", ""), params.get("cnonce")
            count = _count(nc_text)
            if count is None:
                return _failed("malformed nonce count")
            if not cnonce:  # RFC 7616 section 3.4: required with qop (and not empty)
                return _failed("missing cnonce")
            nc, counted = count, (nc_text, cnonce)
        elif qop is not None:
            return _failed("unsupported qop")
        user, password = account
        return nc, digest_response(
            user, self.realm, password, method, uri, nonce, counted, self.md5
        )

    def verify(
        self,
        header: str,
        method: str,
        path: str,
        client: str,
        now: float,
        lookup: Mapping[str, Credentials] | None,
        default: Credentials | None,
    ) -> Verdict:
        """Check an `Authorization: Digest ...` header against the credentials of the user
        it names (`lookup`) or the shared `default` (RFC 7616 section 3.4)."""
        params = parse_params(header)
        if params is None:
            return _failed("malformed Authorization header")
        user = params.get("username")  # None: nobody
        known = _account(user, lookup, default)
        # An unknown user goes through every check with a password nobody knows, so the
        # time taken says nothing about which user names exist.
        password = known.password if known is not None else self.secret.hex()
        if params.get("realm") != self.realm:
            return _failed("wrong realm")
        algorithm = params.get("algorithm")  # None: MD5 (RFC 7616 section 3.3)
        if algorithm is not None and algorithm.upper() != "MD5":  # MD5-sess, SHA-256: not ours
            return _failed("unsupported algorithm")  # a fixed reason: it labels a metric
        uri = params.get("uri")
        if uri is None or uri.partition("?")[0] != path:
            return _failed("uri does not match the request")
        nonce = params.get("nonce")
        known_nonce = self._issued(nonce, client)
        if nonce is None or known_nonce is None:
            return _failed("forged or foreign nonce")
        issued, identity = known_nonce
        counted = self._expected(params, (user or "", password), method, uri, nonce)
        if isinstance(counted, Verdict):
            return counted
        nc, expected = counted
        response = params.get("response")
        right = response is not None and hmac.compare_digest(
            expected.encode(), response.lower().encode()
        )
        if known is None:
            return _failed("unknown user")
        if not right:
            return _failed("wrong password")
        if not 0 <= now - issued <= self.lifetime:
            return Verdict(Proof.STALE, user, "stale nonce")
        self.counts.expire(int(now - self.lifetime))
        if not self.counts.accept(identity, issued, nc):
            return Verdict(Proof.REPLAYED, user, "replayed answer")
        return Verdict(Proof.OK, user)


def digest_response(
    user: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    counted: tuple[str, str] | None,
    md5: Callable[[str], str] = _md5,
) -> str:
    """The `response` of an MD5 Digest answer, 32 lower-case hex digits (RFC 7616 section
    3.4.1, RFC 2617 section 3.2.2.1): with `qop=auth`, `counted` is its (nc, cnonce) as sent
    ("00000001", "0a4f113b"); None: no qop (RFC 2069). The server checks an answer with it
    (`DigestAuth.verify`) and the push answers a phone's challenge with it
    (xprov/push/notify.py)."""
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if counted is None:
        return md5(f"{ha1}:{nonce}:{ha2}")
    nc, cnonce = counted
    return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def _count(nc_text: str) -> int | None:
    """The value of an `nc` parameter: 8 hex digits, not zero (RFC 7616 section 3.4); None
    if it is missing ("") or malformed."""
    if not _NC.match(nc_text):
        return None
    nc = int(nc_text, 16)
    return nc if nc > 0 else None


def parse_params(header: str) -> dict[str, str] | None:
    """`Digest a="b", c=d` -> {'a': 'b', 'c': 'd'}; None if it is not a Digest header."""
    if len(header) > MAX_HEADER or header[:7].lower() != "digest ":
        return None
    params = {}
    for name, value in _PARAM.findall(header[7:]):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name.lower()] = value
    return params


def _basic_pair(header: str) -> tuple[str, str] | None:
    if len(header) > MAX_HEADER or header[:6].lower() != "basic ":
        return None
    try:
        text = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, ValueError):  # non-ASCII input, bad padding, bad UTF-8
        return None
    user, _, password = text.partition(":")
    return user, password


def claimed_user(header: str) -> str | None:
    """The user name an Authorization header (Digest or Basic) claims; None if none."""
    if header[:6].lower() == "basic ":
        pair = _basic_pair(header)
        return None if pair is None else pair[0]
    params = parse_params(header)
    return None if params is None else params.get("username")


def verify_basic(
    header: str, lookup: Mapping[str, Credentials] | None, default: Credentials | None
) -> Verdict:
    """Check an `Authorization: Basic ...` header (RFC 7617); only ever asked over TLS."""
    pair = _basic_pair(header)
    if pair is None:
        return _failed("malformed Authorization header")
    user, password = pair
    known = _account(user, lookup, default)
    expected = known.password if known is not None else "\0"  # the same work either way
    right = hmac.compare_digest(expected.encode(), password.encode())
    if known is None:
        return _failed("unknown user")
    if not right:
        return _failed("wrong password")
    return Verdict(Proof.OK, user)
