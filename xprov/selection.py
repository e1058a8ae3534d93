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
