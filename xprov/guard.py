"""Who may have which file: source allow-lists, the bad-answer rate limit, HTTP
authentication and the binding of a TLS client certificate to a MAC. Pure: the transports
pass in what they know of a request and get a decision back.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from xprov.auth import Credentials, DigestAuth, verify_basic
from xprov.mac import normalize_mac
from xprov.ratelimit import BadAnswerLimiter

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAC_IN_TEXT = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{2}[:\-.]?){5}[0-9a-f]{2}(?![0-9a-f])", re.I)


def allowed(source: str, networks: Sequence[Network]) -> bool:
    """An empty list allows everyone."""
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def macs_in(names: Iterable[str]) -> set[str]:
    """MACs named in a certificate's subject or alternative names, in any notation."""
    found = set()
    for name in names:
        for candidate in _MAC_IN_TEXT.findall(name):
            mac = normalize_mac(candidate)
            if mac:
                found.add(mac)
    return found


@dataclass(frozen=True)
class Refusal:
    code: int  # HTTP status
    reason: str  # for the security log
    challenge: str | None = None  # WWW-Authenticate
    spend: bool = True  # counts against the source's bad-answer budget


class Guard:
    """Authentication of per-device files, and the bad-answer budget of every source."""

    def __init__(
        self,
        limiter: BadAnswerLimiter,
        digest: DigestAuth | None,
        basic_over_tls: bool,
        default: Credentials | None,
        bind_mac: bool,
    ) -> None:
        self.limiter, self.digest, self.basic_over_tls = limiter, digest, basic_over_tls
        self.default, self.bind_mac = default, bind_mac
        self.charged: Counter[str] = Counter()  # reason -> bad answers, for metrics

    def protects(self, tls: bool) -> bool:
        """Per-device files need a check here: credentials, or a certificate's MAC."""
        return self.digest is not None or (tls and self.bind_mac)

    def blocked(self, source: str, now: float) -> bool:
        return self.limiter.blocked(source, now)

    def bad_answer(self, source: str, now: float, reason: str = "") -> bool:
        """Charge `source` for a bad answer; True if that just exhausted its budget."""
        self.charged[reason] += 1
        return self.limiter.spend(source, now)

    def authorize(
        self,
        mac: str,
        method: str,
        path: str,
        header: str | None,
        source: str,
        tls: bool,
        cert_macs: set[str] | None,
        accounts: dict[str, tuple[Credentials, str]],
        now: float,
    ) -> Refusal | None:
        """May the asker have the per-device file of `mac`? None: yes.

        `accounts` maps an HTTP user to its credentials and the MAC of its phone; a user
        there may read only its own phone's files, the shared `default` user any phone's."""
        if tls and self.bind_mac and cert_macs is not None and mac not in cert_macs:
            return Refusal(403, "client certificate names another device")
        if self.digest is None:
            return None
        if not header:
            return Refusal(401, "no credentials", self.digest.challenge(source, now), spend=False)
        lookup = {user: creds for user, (creds, _) in accounts.items()}
        if header[:6].lower() == "basic ":
            if not (tls and self.basic_over_tls):
                return Refusal(
                    401, "Basic authentication without TLS", self.digest.challenge(source, now)
                )
            verdict = verify_basic(header, lookup, self.default)
        else:
            verdict = self.digest.verify(header, method, path, source, now, lookup, self.default)
        if verdict.stale:
            return Refusal(
                401, verdict.reason, self.digest.challenge(source, now, stale=True), spend=False
            )
        if not verdict.ok:
            return Refusal(401, verdict.reason, self.digest.challenge(source, now))
        owner = accounts.get(verdict.user or "")
        if owner is not None and owner[1] != mac:
            return Refusal(403, "credentials of another device")
        return None
