"""[push]: a SIP NOTIFY to each phone after a switch, so it fetches its file now instead of at
its next poll (issue 18; docs/phone-redundancy.md)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from xprov.config.model import PushConfig
from xprov.config.table import Table, resolve, string_item
from xprov.monitor import registry

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # a MySQL identifier, unquoted


def read_push(root: Table, base: Path) -> PushConfig | None:
    t = root.table("push", required=False)
    if t is None:
        return None
    enabled = t.get("enabled", bool, True)
    rate = t.number("rate", 100.0, 1.0, 10_000.0)
    contacts = t.get("contacts", str, "location")
    if contacts not in ("location", "file"):
        t.problem("contacts", 'expected "location" or "file"')
    given = t.get("contacts_file", str, None)
    if (contacts == "file") != (given is not None):
        t.problem("contacts_file", 'give it exactly when contacts = "file"')
    table = t.get("location_table", str, "location")
    if isinstance(table, str) and not _TABLE_NAME.fullmatch(table):
        t.problem("location_table", "expected a table name (letters, digits, _)")
    timeout = t.number("timeout", 5.0, 0.1, 60.0)
    bind = t.get("bind", str, "0.0.0.0")
    try:
        ipaddress.ip_address(bind)
    except (TypeError, ValueError):
        t.problem("bind", "expected an IP address")
    services = t.get("services", list, ["sip", "stun"])
    phone_facing = registry.template_services()
    if not isinstance(services, list) or not all(s in phone_facing for s in services):
        t.problem("services", f"expected a list of {', '.join(phone_facing)}")
        services = []
    domains = t.items("domains", string_item(t.problems))
    t.finish()
    return PushConfig(
        enabled=enabled is True,
        rate=100.0 if rate is None else rate,
        contacts=contacts if isinstance(contacts, str) else "location",
        contacts_file=resolve(base, given) if isinstance(given, str) else None,
        location_table=table if isinstance(table, str) else "location",
        timeout=5.0 if timeout is None else timeout,
        bind=bind if isinstance(bind, str) else "0.0.0.0",
        services=tuple(dict.fromkeys(services)),
        domains=tuple(d.lower() for d in domains),
    )
