"""The gate: who may have which file. Every transport (HTTP, HTTPS, TFTP) asks here, once
per request, before anything is rendered, and gets a typed answer back.

A shared file (a Yealink common file, an SPA model file) holds no secret and goes to anyone
the listener lets in. A per-device file carries the phone's SIP passwords: it goes only to
an asker that proves the right to it, as the config requires (HTTP Digest or Basic over
TLS, a device certificate naming the MAC, or a TFTP source in a trusted network), and
only while the source has not run out of its bad-answer budget (unless it proved itself).

Pure but for the nonces' randomness: the transports pass in what they know of a request
and the time; the security log is the observer's job (`Charge` says what to report).
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from xprov.auth import Credentials, DigestAuth, Proof, claimed_user, verify_basic
from xprov.config import Config
from xprov.mac import normalize_mac
from xprov.provisioning import Answer, Charge, NotFound, Provisioner, Refused
from xprov.ratelimit import BadAnswerLimiter, RepeatWindow
from xprov.vendors import FileRequest, identify

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAC_IN_TEXT = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{2}[:\-.]?){5}[0-9a-f]{2}(?![0-9a-f])", re.I)


class Transport(enum.Enum):
    HTTP = "http"
    HTTPS = "https"
    TFTP = "tftp"


@dataclass(frozen=True)
class Asker:
    """One request as its transport saw it."""

    transport: Transport
    source: str  # the client's IP address
    path: str  # the request target's path, or the TFTP file name
    user_agent: str | None = None
    method: str = "GET"  # for Digest's HA2 (RFC 7616 section 3.4.3)
    authorization: str | None = None  # the Authorization header (HTTP only)
    certificate_macs: frozenset[str] | None = None  # MACs the verified client certificate
    # names (HTTPS only; empty: no certificate)


@dataclass(frozen=True)
class Policy:
    """What a per-device file needs, from the config (replaced whole on reload)."""

    digest: bool = False  # [auth] mode = "digest"
    basic_over_tls: bool = False
    shared: Credentials | None = None  # [auth] user: opens every phone's files
    bind_mac: bool = False  # [https] bind_mac: a device certificate naming the MAC
    tftp_per_device_from: tuple[Network, ...] | None = None  # [tftp] per_device_from
    burst: float = 20.0  # bad answers a source may cause at once...
    rate: float = 0.1  # ...and per second after that
    repeat_window: float = 3600.0  # a repeated miss within this many seconds costs nothing
    nonce_lifetime: float = 300.0

    @classmethod
    def of(cls, cfg: Config) -> Policy:
        auth, security = cfg.auth, cfg.security
        return cls(
            digest=auth.mode == "digest",
            basic_over_tls=auth.basic_over_tls,
            shared=Credentials(auth.user, auth.password) if auth.user else None,
            bind_mac=cfg.https is not None and cfg.https.bind_mac,
            tftp_per_device_from=cfg.tftp.per_device_from if cfg.tftp else None,
            burst=security.bad_answer_burst,
            rate=security.bad_answer_rate,
            repeat_window=security.repeat_window,
            nonce_lifetime=auth.nonce_lifetime,
        )

    def tftp_trusts(self, source: str) -> bool:
        """May `source` have per-device files over TFTP, which carries no credentials?"""
        if self.tftp_per_device_from is not None:
            return bool(self.tftp_per_device_from) and allowed(source, self.tftp_per_device_from)
        return not (self.digest or self.bind_mac)


class Gate:
    """The one authorization step in front of the provisioning core. Its budgets (the
    sources' tokens, the repeat window, Digest's nonce counts) outlive reloads."""

    def __init__(
        self, provisioner: Provisioner, policy: Policy, secret: bytes | None = None
    ) -> None:
        self.provisioner = provisioner
        self.digest = DigestAuth(secret or os.urandom(32), policy.nonce_lifetime)
        self.sources = BadAnswerLimiter(policy.burst, policy.rate)
        self.logins = BadAnswerLimiter(policy.burst, policy.rate)  # (source, user) -> tokens
        self.repeats = RepeatWindow(policy.repeat_window)
        self.charged: Counter[str] = Counter()  # reason -> bad answers charged, for metrics
        self.policy = policy

    def reconfigure(self, policy: Policy) -> None:
        """A reload: the new policy, the same budgets."""
        self.policy = policy
        self.digest.lifetime = policy.nonce_lifetime
        for limiter in (self.sources, self.logins):
            limiter.burst, limiter.per_second = policy.burst, policy.rate
        self.repeats.window = policy.repeat_window

    def answer(self, asker: Asker, now: float) -> Answer:
        """The file `asker` asked for, or why not (RFC 9110 status semantics)."""
        request = identify(asker.path, asker.user_agent)
        if request is None:
            return NotFound("unknown file")
        if not request.spec.per_device:
            return self.provisioner.render(request)  # no secret in it: for everyone
        refused = self._authorize(asker, request, now)
        if refused is not None:
            return refused
        outcome = self.provisioner.render(request)
        if isinstance(outcome, NotFound):
            return replace(outcome, charge=self._miss(asker.source, request, outcome.reason, now))
        return outcome

    def _authorize(self, asker: Asker, request: FileRequest, now: float) -> Refused | None:
        """None: `asker` may have this per-device file. Every check before any look-up,
        so a refusal tells nothing about which MACs exist."""
        policy, source = self.policy, asker.source
        blocked = self.sources.blocked(source, now)
        if asker.transport is Transport.TFTP:
            if not policy.tftp_trusts(source):
                return self._refuse(403, "per-device file over TFTP", request, source, now)
            return _limited(request) if blocked else None
        proven = False
        if policy.bind_mac:
            if asker.certificate_macs is None:
                return self._refuse(403, "no device certificate (plain HTTP)", request, source, now)
            if request.mac not in asker.certificate_macs:
                reason = "client certificate names another device"
                return self._refuse(403, reason, request, source, now)
            proven = True
        if policy.digest:
            return self._credentials(asker, request, blocked, now)
        return _limited(request) if blocked and not proven else None

    def _credentials(
        self, asker: Asker, request: FileRequest, blocked: bool, now: float
    ) -> Refused | None:
        """HTTP authentication (RFC 7616, RFC 7617 over TLS only)."""
        source, header = asker.source, asker.authorization
        if not header:
            return Refused(401, "no credentials", request, self.digest.challenge(source, now))
        accounts = self.provisioner.inputs.inventory.accounts
        # A phone's own account opens one phone, so it may log in from a source out of
        # tokens, within a budget of its own there; the shared user opens every phone (it
        # could enumerate them), so it never bypasses the source's limit.
        user = claimed_user(header)
        login = (source, user) if user is not None and user in accounts else None
        if (blocked and login is None) or (login is not None and self.logins.blocked(login, now)):
            return _limited(request)
        lookup = {name: creds for name, (creds, _) in accounts.items()}
        if header[:6].lower() == "basic ":
            if not (asker.transport is Transport.HTTPS and self.policy.basic_over_tls):
                reason = "Basic authentication without TLS"
                return self._failed_login(reason, request, source, login, blocked, now)
            verdict = verify_basic(header, lookup, self.policy.shared)
        else:
            verdict = self.digest.verify(
                header, asker.method, asker.path, source, now, lookup, self.policy.shared
            )
        if verdict.proof in (Proof.STALE, Proof.REPLAYED):
            challenge = self.digest.challenge(source, now, stale=True)
            return Refused(401, verdict.reason, request, challenge)
        if verdict.proof is Proof.FAILED:
            return self._failed_login(verdict.reason, request, source, login, blocked, now)
        owner = accounts.get(verdict.user or "")
        if owner is not None and owner[1] != request.mac:
            return self._refuse(403, "credentials of another device", request, source, now)
        return None

    def _failed_login(
        self,
        reason: str,
        request: FileRequest,
        source: str,
        login: tuple[str, str | None] | None,
        blocked: bool,
        now: float,
    ) -> Refused:
        if login is not None:
            self.logins.spend(login, now)
        if blocked:
            return _limited(request)
        charge = self._charge(source, reason, now)
        return Refused(401, reason, request, self.digest.challenge(source, now), charge)

    def _refuse(
        self, status: int, reason: str, request: FileRequest, source: str, now: float
    ) -> Refused:
        """A refusal that could be a probe: charged once per MAC and window, like a miss."""
        if self.sources.blocked(source, now):
            return _limited(request)
        return Refused(status, reason, request, charge=self._miss(source, request, reason, now))

    def _miss(self, source: str, request: FileRequest, reason: str, now: float) -> Charge:
        """An unknown device (or a refusal that names one): charged once per MAC and window,
        so phones retrying their missing files never lock out the office behind them."""
        if not self.repeats.first((source, request.mac), now):
            return Charge.REPEAT
        return self._charge(source, reason, now)

    def _charge(self, source: str, reason: str, now: float) -> Charge:
        self.charged[reason] += 1
        return Charge.EXHAUSTED if self.sources.spend(source, now) else Charge.CHARGED


def _limited(request: FileRequest) -> Refused:
    return Refused(429, "rate limited", request)


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


def macs_in(names: Iterable[str]) -> frozenset[str]:
    """MACs named in a certificate's subject or alternative names, in any notation."""
    found = set()
    for name in names:
        for candidate in _MAC_IN_TEXT.findall(name):
            mac = normalize_mac(candidate)
            if mac:
                found.add(mac)
    return frozenset(found)


def notices(cfg: Config) -> list[str]:
    """What the config's combination of listeners and [auth] means for phones' passwords,
    in words, for `xprov check-config` and the start-up log."""
    policy = Policy.of(cfg)
    needs = [
        *(['[auth] mode = "digest" needs credentials'] if policy.digest else []),
        *(["[https] bind_mac needs a device certificate"] if policy.bind_mac else []),
    ]
    out = []
    if not needs:
        over = ["HTTP", *(["HTTPS"] if cfg.https else []), *(["TFTP"] if cfg.tftp else [])]
        out.append(
            f"per-device files (SIP passwords) go to anyone who names a MAC over "
            f'{", ".join(over)}: set [auth] mode = "digest" (or [https] bind_mac) in production'
        )
    if policy.bind_mac and cfg.http.listen:
        out.append("per-device files are refused over plain HTTP: [https] bind_mac is on")
    if cfg.tftp is not None:
        trusted = policy.tftp_per_device_from
        if trusted is not None:
            where = ", ".join(map(str, trusted)) or "nowhere"
            bypass = f" ({' and '.join(needs)} elsewhere)" if needs else ""
            out.append(f"per-device files over TFTP, without credentials, only to {where}{bypass}")
        elif needs:
            out.append(
                f"per-device files are refused over TFTP: {' and '.join(needs)}, and TFTP "
                "carries none (shared files are still served); to serve them to trusted "
                'provisioning networks only, set [tftp] per_device_from = ["CIDR", ...]'
            )
    return out
