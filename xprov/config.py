"""Read and validate the TOML configuration into frozen dataclasses.

Every problem is collected with its key path, so `xprov check-config` lists them all at once
and a wrong config never starts a half-configured server.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from xprov.logs import secret_problem
from xprov.monitor import registry
from xprov.problems import Problems

SERVICES = registry.services()  # the names, for the command line: the registry's table
MIN_SHARED_PASSWORD = 8
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# [vars] names that hold a secret (a phone's admin password, a PIN): redacted from logs and
# given only to per-device templates, since shared files go to anyone who asks.
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|(?:^|_)pass(?:$|_)|pwd|secret|token|credential|psk|community"
    r"|(?:^|_)(?:keys?|pin)$",
    re.IGNORECASE,
)
Scalar = str | int | float | bool
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
T = TypeVar("T")


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

    def secrets(self) -> list[str]:
        """Every secret value in this config, for log redaction."""
        secrets = [s.db.password for s in self.sites.values() if s.db and s.db.password]
        secrets += [self.auth.password] if self.auth.password else []
        secrets += [str(v) for k, v in self.vars.items() if secret_name(k) and str(v)]
        return secrets + ([self.admin.token] if self.admin else [])

    @property
    def shared_vars(self) -> dict[str, Scalar]:
        """The [vars] a shared file's template sees: every one but the secrets."""
        return {k: v for k, v in self.vars.items() if not secret_name(k)}


def secret_name(name: str) -> bool:
    """Does this variable name say it holds a secret ('admin_password', 'voicemail_pin')?"""
    return _SECRET_NAME.search(name) is not None


_REQUIRED: Any = object()


class _Table:
    """A TOML table being read: checks types, records problems under its key path and,
    once read, reports the keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data, self.path, self.problems = data, path, problems
        self.seen: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key(key)}: {message}")

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.problem(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python, never in a config file
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problem(key, f"expected {names}, got {_TYPE_NAMES.get(type(value), 'value')}")
            return None if default is _REQUIRED else default
        return value

    def text(self, key: str, default: Any = _REQUIRED, choices: tuple[str, ...] = ()) -> Any:
        value = self.get(key, str, default)
        if isinstance(value, str) and choices and value not in choices:
            self.problem(key, f"{value!r} is not one of {', '.join(choices)}")
            return None
        if isinstance(value, str) and _CONTROL.search(value):
            self.problem(key, "contains a control character")
            return None
        if isinstance(value, str) and not value and default is _REQUIRED:
            self.problem(key, "must not be empty")
            return None
        return value

    def integer(self, key: str, default: Any, lo: int, hi: int) -> Any:
        value = self.get(key, int, default)
        if isinstance(value, int) and not lo <= value <= hi:
            self.problem(key, f"{value} is out of range {lo}..{hi}")
            return None
        return value

    def number(self, key: str, default: Any, lo: float, hi: float) -> Any:
        value = self.get(key, (int, float), default)
        if isinstance(value, int | float) and not lo <= value <= hi:
            self.problem(key, f"{value} is out of range {lo}..{hi}")
            return None
        return None if value is None else float(value)

    def port(self, key: str, default: Any = _REQUIRED) -> Any:
        return self.integer(key, default, 1, 65535)

    def table(self, key: str, required: bool = True) -> _Table | None:
        value = self.get(key, dict, _REQUIRED if required else None)
        return _Table(value, self.key(key), self.problems) if isinstance(value, dict) else None

    def items(self, key: str, read: Callable[[Any, str], T | None]) -> tuple[T, ...]:
        """A list whose items `read(item, key_path)` turns into values (None: a problem)."""
        values = self.get(key, list, [])
        out = [read(item, f"{self.key(key)}[{i}]") for i, item in enumerate(values or ())]
        return tuple(v for v in out if v is not None)

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.seen):
            self.problem(key, "unknown key")


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


def parse_listen(text: Any, where: str, problems: list[str]) -> Listen | None:
    """'127.0.0.1:8080' or '[::1]:8080': an IP literal and a port."""
    if not isinstance(text, str):
        problems.append(f"{where}: expected a string like '127.0.0.1:8080'")
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        problems.append(f"{where}: {text!r} is not ADDRESS:PORT with an IP address")
        return None
    if not sep or not 1 <= number <= 65535:
        problems.append(f"{where}: bad port in {text!r} (1..65535)")
        return None
    return Listen(host, number)


def _listeners(table: _Table, default: Listen) -> tuple[Listen, ...]:
    if "listen" not in table.data:
        table.seen.add("listen")
        return (default,)
    before = len(table.problems)
    listen = table.items("listen", lambda v, where: parse_listen(v, where, table.problems))
    if not listen and len(table.problems) == before:
        table.problem("listen", "needs at least one address")
    return listen


def _string_item(problems: list[str]) -> Callable[[Any, str], str | None]:
    def read(value: Any, where: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        problems.append(f"{where}: expected a non-empty string")
        return None

    return read


def _vars(table: _Table | None) -> Mapping[str, Scalar]:
    if table is None:
        return MappingProxyType({})
    out = {}
    for key in table.data:
        value = table.get(key, (str, int, float, bool))
        if isinstance(value, str) and _CONTROL.search(value):
            table.problem(key, "contains a control character")
        elif value is not None and secret_name(key) and (problem := secret_problem(str(value))):
            table.problem(key, f"{problem}; a name like this one marks a secret")
        elif value is not None:
            out[key] = value
    return MappingProxyType(out)


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (base / path).resolve()


def _read_secret(table: _Table, base: Path) -> str:
    """`password`, or `password_file` (first line) so the secret can live outside the config."""
    password = table.get("password", str, None)
    secret_file = table.get("password_file", str, None)
    if password is not None and secret_file is not None:
        table.problem("password_file", "give either password or password_file, not both")
    if secret_file is not None:
        try:
            lines = _resolve(base, secret_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            table.problem("password_file", f"cannot read: {type(exc).__name__}")
            return ""
        if not lines or not lines[0].strip():
            table.problem("password_file", "is empty (the password is its first line)")
            return ""
        password = lines[0].strip()
    if password and (problem := secret_problem(password)):
        table.problem("password_file" if secret_file is not None else "password", problem)
    return password or ""


def read_sip(t: _Table, base: Path) -> SipService:
    transport = t.text("transport", "udp", ("udp", "tcp", "tls"))
    return SipService(
        host=t.text("host"),
        port=t.port("port", 5061 if transport == "tls" else 5060),
        transport=transport,
        expires=t.integer("expires", 600, 30, 86400),
        tls_server_name=t.text("tls_server_name", None),
        tls_ca=t.text("tls_ca", None),
    )


def read_stun(t: _Table, base: Path) -> StunService:
    return StunService(host=t.text("host"), port=t.port("port", 3478))


def read_db(t: _Table, base: Path) -> DbService:
    return DbService(
        host=t.text("host"),
        port=t.port("port", 3306),
        database=t.text("database"),
        user=t.text("user"),
        password=_read_secret(t, base),
        tls=t.get("tls", bool, False),
        expect_read_only=t.get("expect_read_only", bool, None),
    )


def _site(name: str, t: _Table, base: Path) -> Site:
    services: dict[str, Any] = {}
    for kind in registry.SERVICE_TYPES:
        sub = t.table(kind.name, required=kind.required)
        services[kind.name] = kind.reader(sub, base) if sub else None
        if sub:
            sub.finish()
    t.finish()
    return Site(name, MappingProxyType(services))


def _sites(root: _Table, base: Path) -> Mapping[str, Site]:
    table = root.table("sites")
    if table is None:
        return MappingProxyType({})
    sites = {}
    for name in table.data:
        sub = table.table(name)
        if sub is not None:
            sites[name] = _site(name, sub, base)
    for service in (kind.name for kind in registry.SERVICE_TYPES if not kind.required):
        have = sorted(n for n, s in sites.items() if s.service(service) is not None)
        if have and len(have) != len(sites):
            missing = sorted(set(sites) - set(have))
            root.problems.append(
                f"sites: {service} is set for {', '.join(have)} but missing "
                f"for {', '.join(missing)} (every site needs the same services)"
            )
    return MappingProxyType(sites)


def _failover(root: _Table, sites: Mapping[str, Site]) -> FailoverConfig:
    t = root.table("failover")
    if t is None:
        return FailoverConfig("", "")
    primary, backup = t.text("primary"), t.text("backup")
    for key, name in (("primary", primary), ("backup", backup)):
        if name and name not in sites:
            t.problem(key, f"site {name!r} is not defined under [sites]")
    if primary and primary == backup:
        t.problem("backup", "must be a different site from primary")
    t.finish()
    return FailoverConfig(primary, backup)


def _provisioning(root: _Table) -> ProvisioningConfig:
    t = root.table("provisioning")
    if t is None:
        return ProvisioningConfig("", 60)
    url = t.text("url")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            t.problem("url", f"{url!r} is not an http:// or https:// URL with a host")
        elif parts.query or parts.fragment:
            t.problem("url", "must not have a query or fragment")
        elif parts.username is not None or parts.password is not None:
            t.problem(
                "url",
                "must not hold credentials: it is written into shared files that anyone may "
                "fetch (give phones their credentials in [auth] and the inventory)",
            )
    poll = t.integer("poll_seconds", 60, 60, 86400)
    t.finish()
    return ProvisioningConfig(url=(url or "").rstrip("/"), poll_seconds=poll)


def _templates(root: _Table, base: Path) -> TemplatesConfig:
    t = root.table("templates")
    if t is None:
        return TemplatesConfig(())
    before = len(t.problems)
    names = t.items("dirs", _string_item(t.problems))
    if not names and len(t.problems) == before:
        t.problem("dirs", "needs at least one directory")
    dirs = []
    for i, name in enumerate(names):
        path = _resolve(base, name)
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            t.problems.append(f"{t.key('dirs')}[{i}]: {str(path)!r} is not a readable directory")
        dirs.append(path)
    t.finish()
    return TemplatesConfig(tuple(dirs))


def _inventory(root: _Table, base: Path) -> InventoryConfig:
    t = root.table("inventory")
    if t is None:
        return InventoryConfig("file", None, 60.0, 10.0)
    source = t.text("source", "file", ("file", "mysql"))
    path = None
    if source == "file":
        path = _resolve(base, t.text("path"))
        if not os.access(path, os.R_OK) or not path.is_file():
            t.problem("path", f"{str(path)!r} is not a readable file")
    elif "path" in t.data:
        t.problem("path", 'only for source = "file"')
    config = InventoryConfig(
        source=source,
        path=path,
        refresh=t.number("refresh", 60.0, 1, 86400) or 60.0,
        timeout=t.number("timeout", 10.0, 0.5, 300) or 10.0,
    )
    t.finish()
    return config


def _logging(root: _Table) -> LoggingConfig:
    t = root.table("logging", required=False) or _Table({}, "logging", root.problems)
    fmt = t.text("format", "json", ("json", "console"))
    level = t.text("level", "info", ("debug", "info", "warning", "error"))
    t.finish()
    return LoggingConfig(fmt, level)


def _network(problems: list[str]) -> Callable[[Any, str], Network | None]:
    def read(value: Any, where: str) -> Network | None:
        try:
            return ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            problems.append(f"{where}: {value!r} is not an address or CIDR network")
            return None

    return read


def _allow(t: _Table) -> tuple[Network, ...]:
    return t.items("allow", _network(t.problems))


def _http(root: _Table) -> HttpConfig:
    t = root.table("http")
    if t is None:
        return HttpConfig(())
    config = HttpConfig(_listeners(t, Listen("127.0.0.1", 8080)), _allow(t))
    t.finish()
    return config


def _readable(t: _Table, key: str, base: Path, value: Any) -> Path:
    path = _resolve(base, value) if isinstance(value, str) and value else Path()
    if isinstance(value, str) and value and not (path.is_file() and os.access(path, os.R_OK)):
        t.problems.append(f"{t.key(key)}: {str(path)!r} is not a readable file")
    return path


def _https(root: _Table, base: Path) -> HttpsConfig | None:
    t = root.table("https", required=False)
    if t is None:
        return None
    listen = _listeners(t, Listen("127.0.0.1", 8443))
    certificate = _readable(t, "certificate", base, t.text("certificate"))
    key = _readable(t, "private_key", base, t.text("private_key"))
    cas = tuple(
        _readable(t, f"client_ca[{i}]", base, name)
        for i, name in enumerate(t.items("client_ca", _string_item(t.problems)))
    )
    mode = t.text("client_certificate", "require" if cas else "off", ("off", "optional", "require"))
    if mode != "off" and not cas:
        t.problem("client_certificate", "needs client_ca: the CAs that issue phones' certificates")
    bind = t.get("bind_mac", bool, bool(cas))
    if bind and not cas:
        t.problem("bind_mac", "needs client_ca: only a verified certificate names a device")
    config = HttpsConfig(listen, certificate, key, cas, mode or "off", bool(bind), _allow(t))
    t.finish()
    return config


def _auth(root: _Table, base: Path) -> AuthConfig:
    t = root.table("auth", required=False) or _Table({}, "auth", root.problems)
    mode = t.text("mode", "off", ("off", "digest"))
    user = t.text("user", None)
    password = _read_secret(t, base) if user is not None else ""
    if user is None and ("password" in t.data or "password_file" in t.data):
        t.seen.update(("password", "password_file"))
        t.problem("user", "missing (the password belongs to a user)")
    elif user is not None and (not user.strip() or ":" in user):
        t.problem("user", "must be a name without ':' (RFC 7617)")
    elif user is not None and len(password.strip()) < MIN_SHARED_PASSWORD:
        # This user opens every phone's file: an empty password would open them to anyone.
        t.problem(
            "password", f"must be at least {MIN_SHARED_PASSWORD} characters (it opens every phone)"
        )
    config = AuthConfig(
        mode or "off",
        t.get("basic_over_tls", bool, False),
        user,
        password,
        t.number("nonce_lifetime", 300.0, 10, 86400) or 300.0,
    )
    t.finish()
    return config


def _security(root: _Table) -> SecurityConfig:
    t = root.table("security", required=False) or _Table({}, "security", root.problems)
    config = SecurityConfig(
        bad_answer_burst=t.integer("bad_answer_burst", 20, 1, 100_000),
        bad_answer_rate=t.number("bad_answer_rate", 0.1, 0.0001, 10_000) or 0.1,
        header_timeout=t.number("header_timeout", 10.0, 0.5, 300) or 10.0,
        max_connections=t.integer("max_connections", 10_000, 1, 1_000_000),
        max_connections_per_source=t.integer("max_connections_per_source", 64, 1, 100_000),
        max_tftp_per_source=t.integer("max_tftp_per_source", 8, 1, 100_000),
        repeat_window=t.number("repeat_window", 3600.0, 0, 86400),
    )
    t.finish()
    return config


def _tftp(root: _Table) -> TftpConfig | None:
    t = root.table("tftp", required=False)
    if t is None:
        return None
    timeout = t.number("timeout", 1.0, 0.1, 255)
    config = TftpConfig(
        listen=_listeners(t, Listen("127.0.0.1", 6969)),
        max_blksize=t.integer("max_blksize", 1468, 8, 65464),
        max_windowsize=t.integer("max_windowsize", 64, 1, 64),
        timeout=float(timeout or 1.0),
        retries=t.integer("retries", 5, 1, 20),
        max_transfers=t.integer("max_transfers", 1000, 1, 100_000),
        allow=_allow(t),
        per_device_from=_per_device_from(t),
    )
    t.finish()
    return config


def _per_device_from(t: _Table) -> tuple[Network, ...] | None:
    """None when the key is absent: its absence has a meaning of its own (see TftpConfig)."""
    if "per_device_from" not in t.data:
        t.seen.add("per_device_from")
        return None
    return t.items("per_device_from", _network(t.problems))


def _monitor(root: _Table) -> MonitorConfig:
    t = root.table("monitor", required=False) or _Table({}, "monitor", root.problems)
    interval = t.number("interval", 1.0, 0.1, 3600)
    timeout = t.number("timeout", 1.0, 0.1, 60)
    fast = t.number("fast_interval", interval, 0.1, 3600)
    if interval and timeout and timeout > interval:
        t.problem("timeout", f"must not exceed interval ({interval} s): rounds never overlap")
    if fast and timeout and interval and not timeout <= fast <= interval:
        t.problem("fast_interval", f"must be within timeout..interval ({timeout}..{interval})")
    codes = t.items("sip_down_codes", _status_code(t.problems))
    config = MonitorConfig(
        enabled=t.get("enabled", bool, True),
        interval=interval or 1.0,
        fast_interval=fast or interval or 1.0,
        timeout=timeout or 1.0,
        fall=t.integer("fall", 3, 1, 100),
        rise=t.integer("rise", 2, 1, 100),
        failback=t.text("failback", "manual", ("manual", "auto")),
        hold_down=t.number("hold_down", 300.0, 0, 86400),
        sip_down_codes=frozenset(codes)
        if "sip_down_codes" in t.data
        else frozenset({408, 500, 503, 504}),
    )
    t.finish()
    return config


def _status_code(problems: list[str]) -> Callable[[Any, str], int | None]:
    def read(value: Any, where: str) -> int | None:
        if isinstance(value, int) and not isinstance(value, bool) and 200 <= value <= 699:
            return value
        problems.append(f"{where}: expected a SIP final status code (200..699)")
        return None

    return read


def _admin(root: _Table, base: Path, http: HttpConfig) -> AdminConfig | None:
    t = root.table("admin", required=False)
    if t is None:
        return None
    listen = _listeners(t, Listen("127.0.0.1", 8081))
    given = t.get("token", str, None)
    token_file = t.get("token_file", str, None)
    token = given
    if token_file is not None:
        try:
            token = _resolve(base, token_file).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            t.problem("token_file", f"cannot read: {type(exc).__name__}")
    if (given is None) == (token_file is None):
        t.problem("token", "give exactly one of token or token_file")
    elif token is not None and len(token) < 16:
        t.problem("token", "must be at least 16 characters")
    for address in set(listen) & set(http.listen):
        t.problem("listen", f"{address} is a phones' listener: the admin API needs its own")
    allow = _allow(t)
    t.finish()
    return AdminConfig(listen, token or "", allow)


def parse(data: Mapping[str, Any], path: Path) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem."""
    problems: list[str] = []
    root = _Table(data, "", problems)
    base = path.parent
    sites = _sites(root, base)
    http = _http(root)
    config = Config(
        path=path,
        provisioning=_provisioning(root),
        http=http,
        https=_https(root, base),
        tftp=_tftp(root),
        templates=_templates(root, base),
        inventory=_inventory(root, base),
        logging=_logging(root),
        failover=_failover(root, sites),
        auth=_auth(root, base),
        security=_security(root),
        monitor=_monitor(root),
        admin=_admin(root, base, http),
        sites=sites,
        vars=_vars(root.table("vars", required=False)),
    )
    if config.https and config.https.bind_mac and config.provisioning.url.startswith("http://"):
        problems.append(
            "provisioning.url: phones fetch their files from this http:// URL, and "
            "[https] bind_mac refuses per-device files over plain HTTP: use https://"
        )
    if config.inventory.source == "mysql":
        for name, site in sites.items():
            if site.db is None:
                problems.append(f"sites.{name}.db: missing (inventory source is mysql)")
    root.finish()
    if problems:
        raise ConfigError(problems)
    return config


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    file = Path(path).resolve()
    try:
        with file.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{file}: not valid TOML: {exc}"]) from None
    return parse(data, file)
