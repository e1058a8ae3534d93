"""Read and validate the TOML configuration into frozen dataclasses.

Every problem is collected with its key path, so `xprov check-config` lists them all at once
and a wrong config never starts a half-configured server. The dataclasses are in `model.py`,
the typed table reader in `table.py`, the tables' readers in `sections.py` and `sites.py`;
every public name is importable from here.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from xprov.config.cluster import read_cluster
from xprov.config.model import (
    AdminConfig,
    AuthConfig,
    ClusterConfig,
    Config,
    ConfigError,
    DbService,
    FailoverConfig,
    HttpConfig,
    HttpsConfig,
    InventoryConfig,
    Listen,
    LoggingConfig,
    MonitorConfig,
    Network,
    ProvisioningConfig,
    PushConfig,
    Scalar,
    SecurityConfig,
    SipService,
    Site,
    StunService,
    TemplatesConfig,
    TftpConfig,
    secret_name,
)
from xprov.config.push import read_push
from xprov.config.sections import (
    MIN_SHARED_PASSWORD,
    read_admin,
    read_auth,
    read_http,
    read_https,
    read_inventory,
    read_logging,
    read_monitor,
    read_provisioning,
    read_security,
    read_templates,
    read_tftp,
    read_vars,
)
from xprov.config.sites import read_db, read_failover, read_sip, read_sites, read_stun
from xprov.config.table import Table, parse_listen
from xprov.monitor import registry

__all__ = [
    "MIN_SHARED_PASSWORD",
    "SERVICES",
    "AdminConfig",
    "AuthConfig",
    "ClusterConfig",
    "Config",
    "ConfigError",
    "DbService",
    "FailoverConfig",
    "HttpConfig",
    "HttpsConfig",
    "InventoryConfig",
    "Listen",
    "LoggingConfig",
    "MonitorConfig",
    "Network",
    "ProvisioningConfig",
    "PushConfig",
    "Scalar",
    "SecurityConfig",
    "SipService",
    "Site",
    "StunService",
    "Table",
    "TemplatesConfig",
    "TftpConfig",
    "load",
    "overlap",
    "parse",
    "parse_listen",
    "read_db",
    "read_sip",
    "read_stun",
    "secret_name",
]

SERVICES = registry.services()  # the names, for the command line: the registry's table


def parse(data: Mapping[str, Any], path: Path) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem."""
    problems: list[str] = []
    root = Table(data, "", problems)
    base = path.parent
    sites = read_sites(root, base)
    http = read_http(root)
    config = Config(
        path=path,
        provisioning=read_provisioning(root),
        http=http,
        https=read_https(root, base),
        tftp=read_tftp(root),
        templates=read_templates(root, base),
        inventory=read_inventory(root, base),
        logging=read_logging(root),
        failover=read_failover(root, sites),
        auth=read_auth(root, base),
        security=read_security(root),
        monitor=read_monitor(root),
        admin=read_admin(root, base, http),
        sites=sites,
        vars=read_vars(root.table("vars", required=False)),
        cluster=read_cluster(root, base),
        push=read_push(root, base),
    )
    if config.https and config.https.bind_mac:
        for key, url in (
            ("url", config.provisioning.url),
            ("second_url", config.provisioning.second_url or ""),
        ):
            if url.startswith("http://"):
                problems.append(
                    f"provisioning.{key}: phones fetch their files from this http:// URL, and "
                    "[https] bind_mac refuses per-device files over plain HTTP: use https://"
                )
    if config.cluster.mode == "etcd" and not config.monitor.enabled:
        problems.append(
            "cluster.mode: etcd needs the monitor ([monitor] enabled = true): "
            "every instance is an observer"
        )
    problems += shared_addresses(config)
    if config.inventory.source == "mysql":
        for name, site in sites.items():
            if site.db is None:
                problems.append(f"sites.{name}.db: missing (inventory source is mysql)")
    root.finish()
    if problems:
        raise ConfigError(problems)
    return config


def shared_addresses(config: Config) -> list[str]:
    """Problems: two TCP listeners (`[http]`, `[https]`, `[admin]` listen) whose addresses
    overlap, which the second bind would refuse (EADDRINUSE) at start or at a reload."""
    tcp = [("http.listen", x) for x in config.http.listen]
    tcp += [("https.listen", x) for x in (config.https.listen if config.https else ())]
    tcp += [("admin.listen", x) for x in (config.admin.listen if config.admin else ())]
    problems = []
    for i, (where, address) in enumerate(tcp):
        for other, earlier in tcp[:i]:
            if (where, other) == ("admin.listen", "http.listen") and address == earlier:
                continue  # read_admin says so ("the admin API needs its own")
            if overlap(address, earlier):
                problems.append(
                    f"{where}: {address} overlaps {other} {earlier} (the same port, and the "
                    "same address or any address): each listener needs an address of its own"
                )
    return problems


def overlap(a: Listen, b: Listen) -> bool:
    """Whether sockets bound to `a` and `b` take the same connections: the same port, and
    the same address, or any address (0.0.0.0, ::) and one of its family (`::` takes IPv4
    too: Twisted leaves IPV6_V6ONLY off)."""
    if a.port != b.port:
        return False
    x, y = ipaddress.ip_address(a.host), ipaddress.ip_address(b.host)
    if x == y:
        return True
    return any(
        wild.is_unspecified and (wild.version == 6 or other.version == 4)
        for wild, other in ((x, y), (y, x))
    )


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
