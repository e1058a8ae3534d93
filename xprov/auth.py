"""HTTP authentication of phones: Digest (RFC 7616 with MD5, what Yealink and SPA firmware
speak) and Basic, which is only ever accepted over HTTPS. Pure: no sockets, no clock of its
own (the caller passes the time).

Nonces are stateless: a timestamp and an HMAC over it and the client's address, so any
worker can check them and an old nonce cannot be replayed after `lifetime` seconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field

REALM = "xprov"
_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
MAX_HEADER = 2048


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    user: str | None = None  # who proved it (None: nobody)
    stale: bool = False  # a good response to an expired nonce: ask again, quietly
    reason: str = ""  # for the security log: never a secret


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestAuth:
    def __init__(self, secret: bytes, lifetime: float = 300.0, realm: str = REALM) -> None:
        self.secret, self.lifetime, self.realm = secret, lifetime, realm

    def nonce(self, client: str, now: float) -> str:
        stamp = str(int(now))
        mac = hmac.new(self.secret, f"{stamp}:{client}".encode(), hashlib.sha256).hexdigest()
        return base64.urlsafe_b64encode(f"{stamp}:{mac[:32]}".encode()).decode().rstrip("=")

    def challenge(self, client: str, now: float, stale: bool = False) -> str:
        return (
            f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, '
            f'nonce="{self.nonce(client, now)}"' + (", stale=true" if stale else "")
        )

    def _nonce_state(self, nonce: str, client: str, now: float) -> str:
        """'ok', 'stale' or 'bad'."""
        try:
            stamp, mac = (
                base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4)).decode().split(":")
            )
            issued = int(stamp)
        except (ValueError, binascii.Error):  # UnicodeError is a ValueError
            return "bad"
        expected = hmac.new(self.secret, f"{stamp}:{client}".encode(), hashlib.sha256).hexdigest()[
            :32
        ]
        if not hmac.compare_digest(mac, expected):
            return "bad"
        return "ok" if 0 <= now - issued <= self.lifetime else "stale"

    def verify(
        self,
        header: str,
        method: str,
        path: str,
        client: str,
        now: float,
        lookup: dict[str, Credentials] | None,
        default: Credentials | None,
    ) -> Verdict:
        """Check an `Authorization: Digest ...` header against the credentials of the user
        it names (`lookup`) or the shared `default`."""
        params = parse_params(header)
        if params is None:
            return Verdict(False, reason="malformed Authorization header")
        user = params.get("username", "")
        known = (lookup or {}).get(user) or (default if default and default.user == user else None)
        if known is None:
            return Verdict(False, reason="unknown user")
        if params.get("realm") != self.realm:
            return Verdict(False, reason="wrong realm")
        uri = params.get("uri", "")
        if uri.split("?", 1)[0] != path:
            return Verdict(False, reason="uri does not match the request")
        state = self._nonce_state(params.get("nonce", ""), client, now)
        if state == "bad":
            return Verdict(False, reason="forged or foreign nonce")
        ha1 = _md5(f"{user}:{self.realm}:{known.password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = params.get("qop")
        if qop == "auth":
            expected = _md5(
                f"{ha1}:{params.get('nonce')}:{params.get('nc', '')}:"
                f"{params.get('cnonce', '')}:auth:{ha2}"
            )
        elif qop is None:  # RFC 2069, old firmware
            expected = _md5(f"{ha1}:{params.get('nonce')}:{ha2}")
        else:
            return Verdict(False, reason=f"unsupported qop {qop[:20]!r}")
        if not hmac.compare_digest(expected, params.get("response", "").lower()):
            return Verdict(False, reason="wrong password")
        if state == "stale":
            return Verdict(False, user=user, stale=True, reason="stale nonce")
        return Verdict(True, user=user)


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


def verify_basic(
    header: str, lookup: dict[str, Credentials] | None, default: Credentials | None
) -> Verdict:
    if len(header) > MAX_HEADER or header[:6].lower() != "basic ":
        return Verdict(False, reason="malformed Authorization header")
    try:
        user, _, password = (
            base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        )
    except (binascii.Error, ValueError):  # non-ASCII input, bad padding, bad UTF-8
        return Verdict(False, reason="malformed Authorization header")
    known = (lookup or {}).get(user) or (default if default and default.user == user else None)
    if known is None:
        return Verdict(False, reason="unknown user")
    if not hmac.compare_digest(known.password.encode(), password.encode()):
        return Verdict(False, reason="wrong password")
    return Verdict(True, user=user)
