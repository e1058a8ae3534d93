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
import functools
import ipaddress
import os
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from xprov.auth import Credentials, DigestAuth, Proof, claimed_user, verify_basic
from xprov.config import Config
from xprov.inventory import Inventory
from xprov.mac import normalize_mac
from xprov.provisioning import Answer, Charge, NotFound, Provisioner, Refused
from xprov.ratelimit import BadAnswerLimiter, RepeatWindow
from xprov.uri import normalize_path
from xprov.vendors import VENDORS, FileRequest, identify

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MAC_IN_TEXT = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{2}[:\-.]?){5}[0-9a-f]{2}(?![0-9a-f])", re.I)


class Transport(enum.Enum):
    HTTP = "http"
    HTTPS = "https"
    TFTP = "tftp"


class Asker(NamedTuple):  # a tuple: made on every request, so cheap to build
    """One request as its transport saw it."""

    transport: Transport
    source: str  # the client's IP address
    # HTTP(S): the request-target's path as sent, without its query (Digest's `uri` must
    # match it; the file is named by its percent-normalised form, `file_path`). TFTP: the
    # file name as sent.
    path: str
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


def file_path(asker: Asker) -> str | None:
    """The path whose last segment names the file `asker` asks for; None: it names no file.

    HTTP(S): the request path percent-normalised, once, here (`xprov.uri.normalize_path`,
    RFC 3986 section 6.2.2.2), so `/%30015...cfg` is `/0015...cfg`, while Digest checks
    the path as sent (RFC 7616 section 3.4: `uri` is the request-target). TFTP: the file
    name as sent; it is not a URL (RFC 1350), so `%30` there is three characters."""
    if asker.transport is Transport.TFTP:
        return asker.path
    return normalize_path(asker.path)


Budget = tuple[str, str]  # (what the source asked over, its address or IPv6 /64)


def budget_of(asker: Asker) -> Budget:
    """Whose bad-answer budget a request spends. TFTP and HTTP(S) have separate ones: a UDP
    source address is trivially forged, so forged TFTP requests must never limit what the
    same address gets over TCP. An IPv6 source spends its /64's budget (one subscriber
    holds a whole /64, so its addresses cost an attacker nothing)."""
    kind = "tftp" if asker.transport is Transport.TFTP else "http"
    source = asker.source
    return kind, source if ":" not in source else _ipv6_budget(source)


@functools.lru_cache(maxsize=4096)
def _ipv6_budget(source: str) -> str:
    try:
        address = ipaddress.ip_address(source.split("%", 1)[0])
    except ValueError:
        return source
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class Gate:
    """The one authorization step in front of the provisioning core. Its budgets (the
    sources' tokens, the repeat window, Digest's nonce counts) outlive reloads."""

    def __init__(
        self, provisioner: Provisioner, policy: Policy, secret: bytes | None = None
    ) -> None:
        self.provisioner = provisioner
        self.digest = DigestAuth(secret or os.urandom(32), policy.nonce_lifetime)
        # Budget -> tokens; TFTP's budgets (forgeable sources) in a partition of their own,
        # which a flood of them can never flush HTTP's out of.
        self.sources = BadAnswerLimiter(policy.burst, policy.rate, partition=_transport)
        self.logins = BadAnswerLimiter(policy.burst, policy.rate)  # (Budget, user): HTTP only
        self.repeats = RepeatWindow(policy.repeat_window)  # (Budget, MAC) seen
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
        path = file_path(asker)
        request = identify(path, asker.user_agent) if path is not None else None
        if request is None:
            return NotFound("unknown file")
        if not request.spec.per_device:
            # No secret in it: for everyone. A name no model in the tables asks for is 404
            # and free: a new model is not an attack, and no name costs a cache entry.
            return self.provisioner.render(request)
        budget = budget_of(asker)
        refused = self._authorize(asker, request, budget, now)
        if refused is not None:
            return refused
        outcome = self.provisioner.render(request)
        if isinstance(outcome, NotFound):
            return replace(outcome, charge=self._miss(budget, request, outcome.reason, now))
        return outcome

    def _authorize(
        self, asker: Asker, request: FileRequest, budget: Budget, now: float
    ) -> Refused | None:
        """None: `asker` may have this per-device file. Every check before any look-up,
        so a refusal tells nothing about which MACs exist."""
        policy = self.policy
        blocked = self.sources.blocked(budget, now)
        if asker.transport is Transport.TFTP:
            if not policy.tftp_trusts(asker.source):
                return self._refuse(403, "per-device file over TFTP", request, budget, now)
            return _limited(request, self.sources, budget, now) if blocked else None
        if policy.bind_mac:
            if asker.certificate_macs is None:
                reason = "no device certificate (plain HTTP)"
                return self._refuse(403, reason, request, budget, now)
            if request.mac not in asker.certificate_macs:
                reason = "client certificate names another device"
                return self._refuse(403, reason, request, budget, now)
        if policy.digest:
            return self._credentials(asker, request, budget, blocked, now)
        if blocked and not policy.bind_mac:  # a certificate naming the MAC proves the phone
            return _limited(request, self.sources, budget, now)
        return None

    def _credentials(
        self, asker: Asker, request: FileRequest, budget: Budget, blocked: bool, now: float
    ) -> Refused | None:
        """HTTP authentication (RFC 7616, RFC 7617 over TLS only)."""
        header = asker.authorization
        if not header:
            return Refused(401, "no credentials", request, self._challenges(asker, now))
        accounts = self.provisioner.inputs.inventory.accounts
        # A phone's own account opens one phone, so it may log in from a source out of
        # tokens, within a budget of its own there; the shared user opens every phone (it
        # could enumerate them), so it never bypasses the source's limit.
        user = claimed_user(header)
        login = (budget, user) if user is not None and user in accounts else None
        if blocked and login is None:
            return _limited(request, self.sources, budget, now)
        if login is not None and self.logins.blocked(login, now):
            return _limited(request, self.logins, login, now)
        if header[:6].lower() == "basic ":
            if not (asker.transport is Transport.HTTPS and self.policy.basic_over_tls):
                reason = "Basic authentication without TLS"
                return self._failed_login(reason, asker, request, budget, login, blocked, now)
            verdict = verify_basic(header, accounts, self.policy.shared)
        else:
            verdict = self.digest.verify(
                header, asker.method, asker.path, asker.source, now, accounts, self.policy.shared
            )
        if verdict.proof in (Proof.STALE, Proof.REPLAYED):
            return Refused(401, verdict.reason, request, self._challenges(asker, now, stale=True))
        if verdict.proof is Proof.FAILED:
            return self._failed_login(verdict.reason, asker, request, budget, login, blocked, now)
        account = accounts.get(verdict.user or "")
        if account is not None and account.device != request.mac:
            return self._refuse(403, "credentials of another device", request, budget, now)
        return None

    def _challenges(self, asker: Asker, now: float, stale: bool = False) -> tuple[str, ...]:
        """WWW-Authenticate values: Digest, and Basic where it is accepted (RFC 9110 11.6.1)."""
        digest = self.digest.challenge(asker.source, now, stale)
        if asker.transport is Transport.HTTPS and self.policy.basic_over_tls:
            return digest, f'Basic realm="{self.digest.realm}", charset="UTF-8"'
        return (digest,)

    def _failed_login(
        self,
        reason: str,
        asker: Asker,
        request: FileRequest,
        budget: Budget,
        login: tuple[Budget, str | None] | None,
        blocked: bool,
        now: float,
    ) -> Refused:
        if login is not None:
            self.logins.spend(login, now)
        if blocked:
            return _limited(request, self.sources, budget, now)
        charge = self._charge(budget, reason, now)
        return Refused(401, reason, request, self._challenges(asker, now), charge)

    def _refuse(
        self, status: int, reason: str, request: FileRequest, budget: Budget, now: float
    ) -> Refused:
        """A refusal that could be a probe: charged once per MAC and window, like a miss."""
        if self.sources.blocked(budget, now):
            return _limited(request, self.sources, budget, now)
        return Refused(status, reason, request, charge=self._miss(budget, request, reason, now))

    def _miss(self, budget: Budget, request: FileRequest, reason: str, now: float) -> Charge:
        """An unknown device (or a refusal that names one): charged once per MAC and window,
        so phones retrying their missing files never lock out the office behind them."""
        # Only per-device files are charged (a shared file's miss is a new model): a MAC.
        if not self.repeats.first((budget, request.mac), now):
            return Charge.REPEAT
        return self._charge(budget, reason, now)

    def _charge(self, budget: Budget, reason: str, now: float) -> Charge:
        self.charged[reason] += 1
        return Charge.EXHAUSTED if self.sources.spend(budget, now) else Charge.CHARGED


def _transport(budget: Budget) -> str:
    return budget[0]


def _limited(request: FileRequest, limiter: BadAnswerLimiter, key: Hashable, now: float) -> Refused:
    return Refused(429, "rate limited", request, retry_after=limiter.seconds_to_token(key, now))


def allowed(source: str, networks: Sequence[Network]) -> bool:
    """An empty list allows everyone. An IPv6 zone ("%eth0") is not part of the address."""
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


def credential_problems(cfg: Config, inventory: Inventory) -> list[str]:
    """What in the config and the inventory together would lock phones out."""
    user, problems = cfg.auth.user, list[str]()
    if user is None:
        return problems
    if user in inventory.accounts:
        problems.append(f"auth.user: {user!r} is also a phone's http_user")
    relying = {
        r[0] for r in inventory.records.values() if not r[4]
    }  # vendors of shared-user phones
    for vendor in sorted(relying):
        problem = VENDORS[vendor].credentials_problem(user, cfg.auth.password)
        if problem is not None:
            problems.append(f"auth.password: {problem} ({vendor} phones use the shared user)")
    return problems


def notices(cfg: Config, inventory: Inventory | None = None) -> list[str]:
    """What the config's combination of listeners and [auth] means for phones' passwords,
    in words, for `xprov check-config` and the start-up log."""
    policy, auth = Policy.of(cfg), cfg.auth
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
    if not policy.digest and (auth.user is not None or auth.basic_over_tls):
        out.append('[auth] user and basic_over_tls do nothing while mode = "off"')
    if policy.digest and auth.basic_over_tls and cfg.https is None:
        out.append("[auth] basic_over_tls does nothing without [https]")
    for key, url in (("url", cfg.provisioning.url), ("second_url", cfg.provisioning.second_url)):
        if cfg.https is not None and url is not None and url.startswith("http://"):
            out.append(
                f"[provisioning] {key} is http://, and it is written into the files: phones "
                "move to plain HTTP after their first file (use https:// to keep them on TLS)"
            )
    if policy.bind_mac and cfg.http.listen:
        out.append("per-device files are refused over plain HTTP: [https] bind_mac is on")
    if policy.digest and inventory is not None:
        out += _account_notices(policy, inventory)
    if cfg.tftp is not None:
        out += _tftp_notices(policy, needs)
    return out


def _account_notices(policy: Policy, inventory: Inventory) -> list[str]:
    out = []
    locked = sorted(mac for mac, r in inventory.records.items() if not r[4])
    if locked and policy.shared is None:
        out.append(
            f"{len(locked)} phones have no http_user and there is no [auth] user: they "
            f"cannot log in for their per-device files ({_some(locked)})"
        )
    weak = sorted(mac for mac, r in inventory.records.items() if r[4] and len(r[5]) < 12)
    if weak:
        out.append(
            f"{len(weak)} phones have an http_password shorter than 12 characters, which "
            f"guesses from many addresses could find ({_some(weak)})"
        )
    return out


def _some(macs: list[str]) -> str:
    return ", ".join(macs[:5]) + (", ..." if len(macs) > 5 else "")


def _tftp_notices(policy: Policy, needs: list[str]) -> list[str]:
    trusted = policy.tftp_per_device_from
    if trusted is not None:
        where = ", ".join(map(str, trusted)) or "nowhere"
        everyone = sorted(f"every IPv{n.version} address" for n in trusted if n.prefixlen == 0)
        if everyone:
            where += f" (that is {' and '.join(everyone)}: anyone who reaches TFTP gets every "
            where += "phone's SIP passwords)"
        bypass = f" ({' and '.join(needs)} elsewhere)" if needs else ""
        return [f"per-device files over TFTP, without credentials, only to {where}{bypass}"]
    if needs:
        return [
            f"per-device files are refused over TFTP: {' and '.join(needs)}, and TFTP "
            "carries none (shared files are still served); to serve them to trusted "
            'provisioning networks only, set [tftp] per_device_from = ["CIDR", ...]'
        ]
    return []
