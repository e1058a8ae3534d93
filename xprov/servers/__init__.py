"""The transports (HTTP and HTTPS, TFTP, the admin API) and what they share."""

from __future__ import annotations

from xprov.guard import Guard
from xprov.logs import get_logger

security = get_logger("xprov.security")


def charge(guard: Guard, source: str, mac: str | None, reason: str, now: float) -> None:
    """A bad answer: one security event (for fail2ban), one token of the source's budget."""
    security.warning("security", client=source, mac=mac, reason=reason)
    if guard.bad_answer(source, now, reason):
        security.warning(
            "security",
            client=source,
            mac=mac,
            reason="rate limited: every request refused until its budget refills",
        )
