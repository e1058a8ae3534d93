"""What the push's parts exchange: where a phone is reached, and what its NOTIFY got."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# What one NOTIFY came to: a 2xx ("ok"); no final answer by Timer F ("timeout", RFC 3261
# section 17.1.2.2); a final answer other than 2xx ("error", its code kept); a 401/407 we
# could not answer, or answered and got again ("unauthorized"); not sent at all: an
# address we cannot send to ("unreachable").
Outcome = Literal["ok", "timeout", "error", "unauthorized", "unreachable"]


@dataclass(frozen=True)
class Contact:
    """Where one phone's line is reached, from the softswitch's location table or the
    operator's list."""

    user: str  # the SIP user (the inventory line's `user`)
    uri: str  # where the NOTIFY goes: "sip:1001@192.0.2.10:5062" (the received address
    #   when the registrar recorded one, else the Contact as registered)
    vendor: str | None = None  # "yealink" / "linksys": which Event; None: not in inventory
    mac: str | None = None
    # the line's digest credentials, for a phone that challenges the NOTIFY (SPA
    # Auth_Resync-Reboot); never logged
    credentials: tuple[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    code: int | None  # the final status code, if one came
    detail: str  # "200 OK", "timeout after 32 s", ... never a secret
    attempts: int  # requests sent (1, or 2 after a challenge), retransmissions not counted
