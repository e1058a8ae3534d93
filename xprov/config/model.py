"""What a configuration is: frozen dataclasses, one per TOML table, read by `sections.py`
and `sites.py`; `xprov.config.parse` returns a `Config` only when it has no problem.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xprov.problems import Problems

# [vars] names that hold a secret (a phone's admin password, a PIN): redacted from logs and
# given only to per-device templates, since shared files go to anyone who asks.
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|(?:^|_)pass(?:$|_)|pwd|secret|token|credential|psk|community"
    r"|(?:^|_)(?:keys?|pin)$",
    re.IGNORECASE,
)
Scalar = str | int | float | bool
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Problems):
    """The configuration is invalid; `problems` lists each one as 'key.path: what is wrong'."""


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SipService:
    host: str
    port: int
    transport: str
    expires: int
    tls_server_name: str | None = None  # for the TLS probe; default: host
    tls_ca: str | None = None  # CA file the TLS probe trusts; default: the system's


@dataclass(frozen=True)
class StunService:
    host: str
    port: int


@dataclass(frozen=True)
class DbService:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    tls: bool = False
    expect_read_only: bool | None = None  # checked by the probe when set


@dataclass(frozen=True)
class Site:
    name: str
    # service name (a row of monitor/registry.py) -> its config dataclass, None: not set
    services: Mapping[str, Any]

    def service(self, name: str) -> Any:
        """The config of service `name` at this site (e.g. a SipService); None: not set."""
        return self.services.get(name)

    @property
    def sip(self) -> SipService:
        return self.services["sip"]  # required: a Site is only built from a valid config

    @property
    def stun(self) -> StunService | None:
        return self.services.get("stun")

    @property
    def db(self) -> DbService | None:
        return self.services.get("db")


@dataclass(frozen=True)
class ProvisioningConfig:
    url: str
    poll_seconds: int
    # The other data centre's base URL: SPA profile rules fetch from it on a retry after a
    # failed resync (docs/deployment.md). None: off, and the files are as without it.
    second_url: str | None = None


@dataclass(frozen=True)
class HttpConfig:
    listen: tuple[Listen, ...]
    allow: tuple[Network, ...] = ()  # sources allowed to connect; empty: everyone


@dataclass(frozen=True)
class HttpsConfig:
    listen: tuple[Listen, ...]
    certificate: Path  # PEM: the server's certificate (and chain)
    private_key: Path
    client_ca: tuple[Path, ...]  # CA files of the phones' device certificates
    client_certificate: str  # "off", "optional" or "require"
    bind_mac: bool  # a per-device file only for the phone whose certificate names its MAC
    allow: tuple[Network, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    mode: str  # "off" or "digest": per-device files need credentials
    basic_over_tls: bool  # also accept Basic, on HTTPS only
    user: str | None  # credentials every phone may use (a phone's own in the inventory win)
    password: str = field(repr=False, default="")
    nonce_lifetime: float = 300.0


@dataclass(frozen=True)
class SecurityConfig:
    bad_answer_burst: int  # unknown devices and failed logins a source may cause at once...
    bad_answer_rate: float  # ...and per second after that
    header_timeout: float  # seconds for a connection to send a request (head and body)
    max_connections: int  # HTTP(S) connections at once, in all
    max_connections_per_source: int
    max_tftp_per_source: int  # TFTP transfers at once per source address
    repeat_window: float = 3600.0  # seconds in which a source's repeated miss costs nothing


@dataclass(frozen=True)
class TftpConfig:
    listen: tuple[Listen, ...]
    max_blksize: int
    max_windowsize: int
    timeout: float  # seconds before a retransmission, when the client asks for no timeout
    retries: int
    max_transfers: int
    allow: tuple[Network, ...] = ()
    # Networks that get per-device files over TFTP (which carries no credentials); None:
    # every allowed source unless [auth] or [https] bind_mac require proof, then nobody.
    per_device_from: tuple[Network, ...] | None = None


@dataclass(frozen=True)
class MonitorConfig:
    enabled: bool
    interval: float  # seconds between probe rounds
    fast_interval: float  # seconds between rounds while a target is changing state
    timeout: float  # each probe's deadline
    fall: int
    rise: int
    failback: str  # "manual" or "auto" (never automatic for db)
    hold_down: float  # seconds of continuous health before an automatic failback
    sip_down_codes: frozenset[int]  # final SIP replies that mean down (others: up)


@dataclass(frozen=True)
class AdminConfig:
    listen: tuple[Listen, ...]
    token: str = field(repr=False)
    allow: tuple[Network, ...] = ()
    page_refresh: float = 1.0  # seconds between two looks of the status page at /status
    server_names: frozenset[str] = frozenset()  # Host names the listener answers to


@dataclass(frozen=True)
class TemplatesConfig:
    dirs: tuple[Path, ...]


@dataclass(frozen=True)
class InventoryConfig:
    source: str  # "file" or "mysql" (the active site's [sites.<name>.db])
    path: Path | None  # the file source's phones file
    refresh: float  # seconds between MySQL reloads
    timeout: float  # connect, read and write timeout of the MySQL queries


@dataclass(frozen=True)
class LoggingConfig:
    format: str
    level: str


@dataclass(frozen=True)
class FailoverConfig:
    primary: str
    backup: str
    # per-device files name the other site as the phone's own second SIP server
    phone_redundancy: bool = False


@dataclass(frozen=True)
class PushConfig:
    """[push]: NOTIFY each phone after a switch (docs/phone-redundancy.md)."""

    enabled: bool = True
    rate: float = 100.0  # NOTIFYs per second at most, every phone once per switch
    contacts: str = "location"  # "location": the active db site's table; "file"
    contacts_file: Path | None = None  # contacts = "file": [[contacts]] user, uri
    location_table: str = "location"  # Kamailio usrloc's table (schema version 8)
    timeout: float = 5.0  # seconds the contacts query may take
    bind: str = "0.0.0.0"  # source address of the NOTIFYs (an ephemeral UDP port)
    services: tuple[str, ...] = ("sip", "stun")  # a switch of these pushes
    # SIP domains our phones register in, besides the sites' SIP hosts (location `domain`)
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClusterConfig:
    """[cluster]: how instances agree (issue 16). "standalone": this process decides alone."""

    mode: str  # "standalone" or "etcd"
    name: str  # this observer's name, unique in the cluster (default: the host name)
    endpoints: tuple[str, ...] = ()  # etcd client URLs, http:// or https://
    prefix: str = "/xprov/"  # every key the cluster writes is under it
    lease_ttl: int = 5  # seconds an observer's verdicts outlive its last renewal
    min_observers: int = 2  # votes a switch needs at least: one observer never decides alone
    timeout: float = 1.0  # seconds each etcd call may take before the next member is tried
    ca: Path | None = None  # CA of the etcd members' certificates (https endpoints)
    certificate: Path | None = None  # our client certificate and key, if etcd asks for one
    private_key: Path | None = None
    user: str | None = None  # etcd authentication
    password: str = field(repr=False, default="")


STANDALONE = ClusterConfig("standalone", "")


@dataclass(frozen=True)
class Config:
    path: Path
    provisioning: ProvisioningConfig
    http: HttpConfig
    https: HttpsConfig | None  # None: no HTTPS
    tftp: TftpConfig | None  # None: no TFTP
    templates: TemplatesConfig
    inventory: InventoryConfig
    logging: LoggingConfig
    failover: FailoverConfig
    auth: AuthConfig
    security: SecurityConfig
    monitor: MonitorConfig
    admin: AdminConfig | None  # None: no admin API
    sites: Mapping[str, Site]
    vars: Mapping[str, Scalar]
    cluster: ClusterConfig = STANDALONE
    push: PushConfig | None = None  # None: no push after a switch

    def secrets(self) -> list[str]:
        """Every secret value in this config, for log redaction."""
        secrets = [s.db.password for s in self.sites.values() if s.db and s.db.password]
        secrets += [self.auth.password] if self.auth.password else []
        secrets += [self.cluster.password] if self.cluster.password else []
        secrets += [str(v) for k, v in self.vars.items() if secret_name(k) and str(v)]
        return secrets + ([self.admin.token] if self.admin else [])

    @property
    def shared_vars(self) -> dict[str, Scalar]:
        """The [vars] a shared file's template sees: every one but the secrets."""
        return {k: v for k, v in self.vars.items() if not secret_name(k)}


def secret_name(name: str) -> bool:
    """Does this variable name say it holds a secret ('admin_password', 'voicemail_pin')?"""
    return _SECRET_NAME.search(name) is not None
