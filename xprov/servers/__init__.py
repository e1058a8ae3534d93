"""The transports. What they share: how a provisioning outcome is reported."""

from __future__ import annotations

from xprov.logs import get_logger
from xprov.provisioning import Failed, NotFound, Outcome

log = get_logger("xprov.request")


def report(outcome: Outcome, transport: str, client: str) -> None:
    """Log what an operator needs: unknown devices and render failures, not every hit."""
    if isinstance(outcome, Failed):
        log.error(
            "render_failed",
            transport=transport,
            client=client,
            file=outcome.request.name,
            template=outcome.error.template,
            line=outcome.error.line,
            reason=outcome.error.reason,
        )
    elif isinstance(outcome, NotFound) and outcome.request is not None:
        log.info(
            "unknown_device",
            transport=transport,
            client=client,
            file=outcome.request.name,
            mac=outcome.request.mac,
            reason=outcome.reason,
        )
