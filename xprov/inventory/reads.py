"""Which inventory reads to start and which result to keep, when databases may hang.

A read of a hung database holds its thread until the MySQL read timeout ends it. The read of
another site must not wait behind it: when the monitor switches `db`, the newly active
database is read at once, beside the stale read, and the stale read's result is dropped when
it finally returns. At most one read per site is in flight, so the threads are bounded by
the number of sites. Pure: no threads, no clock; the service calls it on the reactor.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    """What to do with a finished read's inventory."""

    APPLY = "apply"
    STALE_SITE = "stale_site"  # read from a database that is no longer the active one
    SUPERSEDED = "superseded"  # a read that started later was applied first


@dataclass
class InventoryReads:
    """Reads in flight, by database site, each with a ticket (the order they started in)."""

    running: dict[str, int] = field(default_factory=dict)  # site -> ticket of its read
    applied: int = 0  # ticket of the read whose inventory is serving (0: the one from a build)
    _tickets: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def begin(self, site: str) -> int | None:
        """A ticket for a new read of `site`; None while a read of `site` is still running
        (its answer will do: a second read of the same database would only queue behind it)."""
        if site in self.running:
            return None
        ticket = self.running[site] = next(self._tickets)
        return ticket

    def end(self, site: str, ticket: int, active_site: str) -> Verdict:
        """The read `ticket` of `site` is over; whether its inventory may replace the serving
        one: only if `site` is still the active database and no later read was applied."""
        if self.running.get(site) == ticket:
            del self.running[site]
        if site != active_site:
            return Verdict.STALE_SITE
        if ticket < self.applied:
            return Verdict.SUPERSEDED
        return Verdict.APPLY

    def applying(self, ticket: int) -> None:
        """The read `ticket`'s inventory now serves."""
        self.applied = max(self.applied, ticket)
