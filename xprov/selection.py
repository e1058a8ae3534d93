"""Which site is active for each service, with a generation that grows on every switch.

The monitor (or an operator) drives `ActiveSites.switch`, the one call that swaps the whole
selection at once: a request sees either the old selection or the new one, never a mix.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

from xprov.config import Config
from xprov.monitor import registry
from xprov.vendors.base import ServerOrder


@dataclass(frozen=True)
class Selection:
    generation: int
    active: Mapping[str, str]  # service -> site name

    def site_of(self, service: str) -> str:
        return self.active[service]


Listener = Callable[[Selection, Selection], None]


class ActiveSites:
    """Holds the current Selection; `switch` replaces it atomically."""

    def __init__(self, sites: Collection[str], primary: str) -> None:
        self.sites = frozenset(sites)
        self.current = Selection(1, MappingProxyType(dict.fromkeys(registry.services(), primary)))
        self._listeners: list[Listener] = []

    def reconfigure(self, sites: Collection[str], primary: str) -> Selection:
        """New site names (a reload): a service whose site is gone returns to the primary."""
        self.sites = frozenset(sites)
        gone = {s: primary for s, site in self.current.active.items() if site not in self.sites}
        return self.switch(gone)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def switch(self, changes: Mapping[str, str]) -> Selection:
        """Point each service in `changes` at its site; one new generation for all of them."""
        for service, site in changes.items():
            if service not in self.current.active:
                raise ValueError(f"unknown service {service!r}")
            if site not in self.sites:
                raise ValueError(f"unknown site {site!r}")
        old = self.current
        active = {**old.active, **changes}
        if active == dict(old.active):
            return old
        self.current = Selection(old.generation + 1, MappingProxyType(active))
        for listener in self._listeners:
            listener(old, self.current)
        return self.current


def service_variables(config: Config, selection: Selection) -> dict[str, Any]:
    """Template variables of each phone-facing service at its active site: those the
    registry's table marks `templates` (`db` stays out: phones never need it, and it holds
    a password)."""
    out: dict[str, Any] = {}
    for service in registry.template_services():
        name = selection.site_of(service)
        values = config.sites[name].service(service)
        out[service] = None if values is None else {**asdict(values), "site": name}
    return out


def sip_servers(config: Config, selection: Selection, order: ServerOrder) -> list[dict[str, Any]]:
    """Every site's SIP values, each the shape of the `sip` template variable (with `site`),
    for a phone's own list of servers ([failover] phone_redundancy). `order` is the
    vendor's (`ServerOrder`): CONFIGURED is [failover] primary, backup, then any other site
    by name, the same list whatever the selection; ACTIVE_FIRST moves the SIP service's
    active site to the front of that list. Computed here, once per vendor, so a template
    only walks the list (docs/phone-redundancy.md, "Phone keys")."""
    failover = config.failover
    names = [name for name in (failover.primary, failover.backup) if name in config.sites]
    names += sorted(set(config.sites) - set(names))
    if order is ServerOrder.ACTIVE_FIRST:
        active = selection.site_of("sip")
        names = [active, *(name for name in names if name != active)]
    return [{**asdict(config.sites[name].sip), "site": name} for name in names]
