"""What every transport reports about each answer: counted for metrics, recorded for
convergence, and logged when an operator needs to know (render failures, and a `security`
event for every refusal charged to its source, for fail2ban).
Cheap on the hot path: a counter increment and a dict update per request."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from xprov.convergence import Convergence
from xprov.logs import get_logger
from xprov.provisioning import Answer, Charge, Failed, NotFound, Refused, Served
from xprov.security_log import SECURITY, BoundedLog
from xprov.vendors import MAX_USER_AGENT

log = get_logger("xprov.request")
# A phone of a model xprov does not know yet asks for its model's file: not an attack, but
# worth an operator's attention; a stranger decides how many, so the lines are bounded.
UNKNOWN_MODELS = BoundedLog(log, level="info")
# A template that fails for some file fails on every request for it: one line per failure
# reason is the news, a line per request a flood (break-it pass: 3,000 lines in 2.5 s).
RENDER_FAILURES = BoundedLog(log, level="error")


class Observer:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        # (transport, vendor, kind, status) -> answers
        self.requests: Counter[tuple[str, str, str, str]] = Counter()
        self.refusals: Counter[tuple[int, str]] = Counter()  # (status, reason) -> refusals
        self.convergence = Convergence()

    def outcome(
        self, answer: Answer, transport: str, client: str, user_agent: str | None = None
    ) -> None:
        if isinstance(answer, Served):
            self.served(answer, transport)
        else:
            self.refused(answer, transport, client, user_agent)

    def served(self, outcome: Served, transport: str) -> None:
        """Counted; a phone's own file (the one that carries the active sites) is what makes
        it converged: a shared file names the phone only by a User-Agent hint anyone can
        send, and holds no site (break-it pass)."""
        request = outcome.request
        self.requests[(transport, request.vendor, request.kind, "served")] += 1
        if outcome.mac is not None and request.spec.per_device:
            self.convergence.fetched(outcome.mac, outcome.selection_generation, self.clock())

    def refused(
        self,
        outcome: NotFound | Failed | Refused,
        transport: str,
        client: str,
        user_agent: str | None = None,
    ) -> None:
        """Counted; a render failure logged; a charged refusal is a security event; a new
        model's file logged with the User-Agent that names the model (an info line)."""
        request = outcome.request
        vendor, kind = (request.vendor, request.kind) if request else ("", "")
        if isinstance(outcome, Failed):
            self.requests[(transport, vendor, kind, "failed")] += 1
            RENDER_FAILURES.write(
                "render_failed",
                reason=outcome.error.reason,
                transport=transport,
                client=client,
                file=outcome.request.name,
                template=outcome.error.template,
                line=outcome.error.line,
            )
            return
        if isinstance(outcome, Refused):
            self.requests[(transport, vendor, kind, "refused")] += 1
            self.refusals[(outcome.status, outcome.reason)] += 1
        else:
            self.requests[(transport, vendor, kind, "not_found")] += 1
            if request is not None and request.spec.per_model and request.model is None:
                UNKNOWN_MODELS.write(
                    "unknown_model",
                    reason="no model in the table",
                    file=request.name,
                    client=client,
                    transport=transport,
                    user_agent=user_agent[:MAX_USER_AGENT] if user_agent is not None else None,
                )
        if outcome.charge in (Charge.CHARGED, Charge.EXHAUSTED):
            who = {"client": client, "mac": request.mac if request else None}
            SECURITY.write("security", **who, transport=transport, reason=outcome.reason)
            if outcome.charge is Charge.EXHAUSTED:
                limited = "rate limited: per-device files refused until its budget refills"
                SECURITY.write("security", **who, transport=transport, reason=limited)
