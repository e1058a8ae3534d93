"""The readers of the config's top-level tables other than `[sites]` and `[failover]`
(`sites.py`): each turns its table into its dataclass of `model.py`, recording every
problem under its key path, and applies the defaults of a table or key left out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from xprov.config.model import (
    AdminConfig,
    AuthConfig,
    HttpConfig,
    HttpsConfig,
    InventoryConfig,
    Listen,
    LoggingConfig,
    MonitorConfig,
    Network,
    ProvisioningConfig,
    Scalar,
    SecurityConfig,
    TemplatesConfig,
    TftpConfig,
    secret_name,
)
from xprov.config.table import (
    CONTROL,
    Table,
    allow,
    listeners,
    network,
    read_credentials,
    read_secret_file,
    readable,
    resolve,
    secret_file_problem,
    string_item,
)
from xprov.logs import secret_problem

MIN_SHARED_PASSWORD = 8  # [auth]'s shared user opens every phone's file


def read_provisioning(root: Table) -> ProvisioningConfig:
    t = root.table("provisioning")
    if t is None:
        return ProvisioningConfig("", 60)
    url = t.text("url")
    if url:
        _check_base_url(t, "url", url)
    second = t.text("second_url", None)
    if second:
        _check_base_url(t, "second_url", second)
        if url and second.rstrip("/") == url.rstrip("/"):
            t.problem("second_url", "must name the other data centre, not url again")
    elif second is not None:
        t.problem("second_url", "must not be empty (leave it out for none)")
    poll = t.integer("poll_seconds", 60, 60, 86400)
    t.finish()
    return ProvisioningConfig(
        url=(url or "").rstrip("/"),
        poll_seconds=poll,
        second_url=second.rstrip("/") if second else None,
    )


def _check_base_url(t: Table, key: str, url: str) -> None:
    """A base URL written into the files: http(s) with a host, nothing after the path."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        t.problem(key, f"{url!r} is not an http:// or https:// URL with a host")
    elif parts.query or parts.fragment:
        t.problem(key, "must not have a query or fragment")
    elif parts.username is not None or parts.password is not None:
        t.problem(
            key,
            "must not hold credentials: it is written into shared files that anyone may "
            "fetch (give phones their credentials in [auth] and the inventory)",
        )


def read_templates(root: Table, base: Path) -> TemplatesConfig:
    t = root.table("templates")
    if t is None:
        return TemplatesConfig(())
    before = len(t.problems)
    names = t.items("dirs", string_item(t.problems))
    if not names and len(t.problems) == before:
        t.problem("dirs", "needs at least one directory")
    dirs = []
    for i, name in enumerate(names):
        path = resolve(base, name)
        if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
            t.problems.append(f"{t.key('dirs')}[{i}]: {str(path)!r} is not a readable directory")
        dirs.append(path)
    t.finish()
    return TemplatesConfig(tuple(dirs))


def read_inventory(root: Table, base: Path) -> InventoryConfig:
    t = root.table("inventory")
    if t is None:
        return InventoryConfig("file", None, 60.0, 10.0)
    source = t.text("source", "file", ("file", "mysql"))
    path = None
    if source == "file":
        path = resolve(base, t.text("path"))
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


def read_logging(root: Table) -> LoggingConfig:
    t = root.table("logging", required=False) or Table({}, "logging", root.problems)
    fmt = t.text("format", "json", ("json", "console"))
    level = t.text("level", "info", ("debug", "info", "warning", "error"))
    t.finish()
    return LoggingConfig(fmt, level)


def read_http(root: Table) -> HttpConfig:
    t = root.table("http")
    if t is None:
        return HttpConfig(())
    config = HttpConfig(listeners(t, Listen("127.0.0.1", 8080)), allow(t))
    t.finish()
    return config


def read_https(root: Table, base: Path) -> HttpsConfig | None:
    t = root.table("https", required=False)
    if t is None:
        return None
    listen = listeners(t, Listen("127.0.0.1", 8443))
    certificate = readable(t, "certificate", base, t.text("certificate"))
    key = readable(t, "private_key", base, t.text("private_key"))
    cas = tuple(
        readable(t, f"client_ca[{i}]", base, name)
        for i, name in enumerate(t.items("client_ca", string_item(t.problems)))
    )
    mode = t.text("client_certificate", "require" if cas else "off", ("off", "optional", "require"))
    if mode != "off" and not cas:
        t.problem("client_certificate", "needs client_ca: the CAs that issue phones' certificates")
    bind = t.get("bind_mac", bool, bool(cas))
    if bind and not cas:
        t.problem("bind_mac", "needs client_ca: only a verified certificate names a device")
    config = HttpsConfig(listen, certificate, key, cas, mode or "off", bool(bind), allow(t))
    t.finish()
    return config


def read_auth(root: Table, base: Path) -> AuthConfig:
    t = root.table("auth", required=False) or Table({}, "auth", root.problems)
    mode = t.text("mode", "off", ("off", "digest"))
    user, password = read_credentials(t, base)
    if user is not None and (not user.strip() or ":" in user):
        t.problem("user", "must be a name without ':' (RFC 7617)")
    elif (
        user is not None
        and len(password.strip()) < MIN_SHARED_PASSWORD
        and not t.failed("password_file")  # already said: unreadable or empty
    ):
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


def read_security(root: Table) -> SecurityConfig:
    t = root.table("security", required=False) or Table({}, "security", root.problems)
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


def read_tftp(root: Table) -> TftpConfig | None:
    t = root.table("tftp", required=False)
    if t is None:
        return None
    timeout = t.number("timeout", 1.0, 0.1, 255)
    config = TftpConfig(
        listen=listeners(t, Listen("127.0.0.1", 6969)),
        max_blksize=t.integer("max_blksize", 1468, 8, 65464),
        max_windowsize=t.integer("max_windowsize", 64, 1, 64),
        timeout=float(timeout or 1.0),
        retries=t.integer("retries", 5, 1, 20),
        max_transfers=t.integer("max_transfers", 1000, 1, 100_000),
        allow=allow(t),
        per_device_from=_per_device_from(t),
    )
    t.finish()
    return config


def _per_device_from(t: Table) -> tuple[Network, ...] | None:
    """None when the key is absent: its absence has a meaning of its own (see TftpConfig)."""
    if "per_device_from" not in t.data:
        t.seen.add("per_device_from")
        return None
    return t.items("per_device_from", network(t.problems))


def read_monitor(root: Table) -> MonitorConfig:
    t = root.table("monitor", required=False) or Table({}, "monitor", root.problems)
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


def read_admin(root: Table, base: Path, http: HttpConfig) -> AdminConfig | None:
    t = root.table("admin", required=False)
    if t is None:
        return None
    listen = listeners(t, Listen("127.0.0.1", 8081))
    given = t.get("token", str, None)
    token_file = t.get("token_file", str, None)
    token = given
    if token_file is not None:
        try:
            token = read_secret_file(resolve(base, token_file)).strip()
        except (OSError, ValueError) as exc:
            t.problem("token_file", secret_file_problem(exc))
            token = None
    if (given is None) == (token_file is None):
        t.problem("token", "give exactly one of token or token_file")
    elif token is not None and len(token) < 16 and not t.failed("token_file"):
        t.problem("token", "must be at least 16 characters")
    for address in set(listen) & set(http.listen):
        t.problem("listen", f"{address} is a phones' listener: the admin API needs its own")
    allowed = allow(t)
    page_refresh = t.number("page_refresh", 1.0, 0.2, 60.0)  # None: a problem was noted
    names = t.items("server_names", string_item(t.problems))
    t.finish()
    return AdminConfig(
        listen,
        token or "",
        allowed,
        1.0 if page_refresh is None else page_refresh,
        frozenset(n.lower() for n in names),
    )


def read_vars(table: Table | None) -> Mapping[str, Scalar]:
    if table is None:
        return MappingProxyType({})
    out = {}
    for key in table.data:
        value = table.get(key, (str, int, float, bool))
        if isinstance(value, str) and CONTROL.search(value):
            table.problem(key, "contains a control character")
        elif value is not None and secret_name(key) and (problem := secret_problem(str(value))):
            table.problem(key, f"{problem}; a name like this one marks a secret")
        elif value is not None:
            out[key] = value
    return MappingProxyType(out)
