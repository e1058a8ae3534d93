"""What every transport reports about each answer: counted for metrics, recorded for
convergence, and logged when an operator needs to know (render failures).
Cheap on the hot path: a counter increment and a dict update per request."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from xprov.convergence import Convergence
from xprov.logs import get_logger
from xprov.provisioning import Failed, NotFound, Outcome, Served

log = get_logger("xprov.request")


class Observer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # (transport, vendor, kind, status) -> answers
        self.requests: Counter[tuple[str, str, str, str]] = Counter()
        self.convergence = Convergence()

    def outcome(self, outcome: Outcome, transport: str, client: str) -> None:
        if isinstance(outcome, Served):
            self.served(outcome, transport)
        else:
            self.refused(outcome, transport, client)

    def served(self, outcome: Served, transport: str) -> None:
        request = outcome.request
        self.requests[(transport, request.vendor, request.kind, "served")] += 1
        if outcome.mac is not None:
            self.convergence.fetched(outcome.mac, outcome.selection_generation, self.clock())

    def refused(self, outcome: NotFound | Failed, transport: str, client: str) -> None:
        """Counted; a render failure logged. An unknown device is the transport's to report:
        it is a security event, charged to the source."""
        request = outcome.request
        vendor, kind = (request.vendor, request.kind) if request else ("", "")
        if isinstance(outcome, Failed):
            self.requests[(transport, vendor, kind, "failed")] += 1
            log.error(
                "render_failed",
                transport=transport,
                client=client,
                file=outcome.request.name,
                template=outcome.error.template,
                line=outcome.error.line,
                reason=outcome.error.reason,
            )
            return
        self.requests[(transport, vendor, kind, "not_found")] += 1
