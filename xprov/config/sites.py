"""The `[sites]` tables and `[failover]`: each site's services, one table per row of
`monitor/registry.py` (its reader is named there: `read_sip`, `read_stun`, `read_db`), and
the primary and backup among the sites.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from xprov.config.model import DbService, FailoverConfig, SipService, Site, StunService
from xprov.config.table import Table, read_secret
from xprov.monitor import registry


def read_sip(t: Table, base: Path) -> SipService:
    transport = t.text("transport", "udp", ("udp", "tcp", "tls"))
    return SipService(
        host=t.text("host"),
        port=t.port("port", 5061 if transport == "tls" else 5060),
        transport=transport,
        expires=t.integer("expires", 600, 30, 86400),
        tls_server_name=t.text("tls_server_name", None),
        tls_ca=t.text("tls_ca", None),
    )


def read_stun(t: Table, base: Path) -> StunService:
    return StunService(host=t.text("host"), port=t.port("port", 3478))


def read_db(t: Table, base: Path) -> DbService:
    return DbService(
        host=t.text("host"),
        port=t.port("port", 3306),
        database=t.text("database"),
        user=t.text("user"),
        password=read_secret(t, base),
        tls=t.get("tls", bool, False),
        expect_read_only=t.get("expect_read_only", bool, None),
    )


def _site(name: str, t: Table, base: Path) -> Site:
    services: dict[str, Any] = {}
    for kind in registry.SERVICE_TYPES:
        sub = t.table(kind.name, required=kind.required)
        services[kind.name] = kind.reader(sub, base) if sub else None
        if sub:
            sub.finish()
    t.finish()
    return Site(name, MappingProxyType(services))


def read_sites(root: Table, base: Path) -> Mapping[str, Site]:
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


def read_failover(root: Table, sites: Mapping[str, Site]) -> FailoverConfig:
    t = root.table("failover")
    if t is None:
        return FailoverConfig("", "")
    primary, backup = t.text("primary"), t.text("backup")
    for key, name in (("primary", primary), ("backup", backup)):
        if name and name not in sites:
            t.problem(key, f"site {name!r} is not defined under [sites]")
    if primary and primary == backup:
        t.problem("backup", "must be a different site from primary")
    redundancy = t.get("phone_redundancy", bool, False)
    t.finish()
    return FailoverConfig(primary, backup, redundancy is True)
