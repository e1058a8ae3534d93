"""What the monitor did, kept for the operator (the status page, `xprov status`): the last
switches and, per service, since when it has been on its active site and who chose it by hand.

Pure and bounded: `SWITCHES_KEPT` switches, one entry per service; times are epoch seconds
from the monitor's clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

# The switches shown (oldest dropped first): a day of flapping would otherwise grow without
# bound; the log keeps every one.
SWITCHES_KEPT = 20


@dataclass(frozen=True)
class Switch:
    at: float  # epoch seconds
    service: str
    before: str  # site
    after: str  # site
    by: str  # "auto", "operator" or "cluster"
    reason: str
    detection_s: float | None  # first failed probe of `before` to the switch; None: not a failure
    generation: int  # the selection's generation after the switch

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ManualChoice:
    at: float  # epoch seconds
    by: str  # who asked, e.g. "admin 127.0.0.1" (the admin API's client)


class History:
    def __init__(self, started: float) -> None:
        self.started = started  # before any switch, a service has been on its site since then
        self.switches: deque[Switch] = deque(maxlen=SWITCHES_KEPT)
        self._since: dict[str, float] = {}
        self.manual: dict[str, ManualChoice] = {}  # service -> the operator's choice in force

    def switched(self, switch: Switch) -> None:
        self.switches.append(switch)
        self._since[switch.service] = switch.at

    def since(self, service: str) -> float:
        """When `service` moved to its active site (the monitor's start if it never moved)."""
        return self._since.get(service, self.started)

    def chosen(self, service: str, choice: ManualChoice | None) -> None:
        """An operator's choice for `service` (None: released)."""
        if choice is None:
            self.manual.pop(service, None)
        else:
            self.manual[service] = choice

    def forget(self, services: set[str]) -> None:
        """Manual choices of services no longer chosen (a reload removed their site)."""
        for service in set(self.manual) - services:
            del self.manual[service]
