"""The phones' own SIP timers, as data with their sources: how long a simulated phone waits on
a SIP server that does not answer before it gives up and tries its second one (issue 18,
docs/phone-redundancy.md "Drill"; the fact sheet's sections 1.4 and 2.3). Pure."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timers:
    """One firmware's UDP transaction timers, seconds (RFC 3261 section 17.1.2.2): a
    non-INVITE request (REGISTER, OPTIONS) is sent again after T1, 2*T1, ... capped at T2
    (Timer E), and given up at Timer F; the phone then sends it to its next server.
    `concurrent`: the phone holds a registration at its second server all along (Yealink
    `fallback.redundancy_type = 0`), so calls to it reach it without any wait."""

    t1: float
    t2: float
    timer_f: float
    source: str

    def retransmissions(self) -> list[float]:
        """Seconds after the first send at which the request is sent again, before Timer F
        (T1 0.5, T2 4, F 32: 0.5, 1.5, 3.5, 7.5, 11.5, ... 31.5)."""
        out, at, interval = [], 0.0, self.t1
        while at + interval < self.timer_f:
            at += interval
            out.append(at)
            interval = min(2 * interval, self.t2)
        return out


# Yealink: T1 0.5 s, T2 4 s; one unanswered UDP request gives up after 64*T1 = 32 s. Whether
# `retry_counts` (3) counts retransmissions inside it or whole new transactions is not
# documented: one transaction is modelled (the fact sheet's lower bound; up to 3 x 32 s if
# it meant transactions).
YEALINK = Timers(
    0.5,
    4.0,
    32.0,
    "Yealink SIP-T41P guide p.23: T1 0.5 s, T2 4 s, a request gives up after 64*T1 = 32 s "
    "(fact sheet 1.4; RFC 3261 section 17.1.2.2)",
)

# Cisco SPA300/500 and SPA112/122: Timer F 16 s (non-INVITE, which covers REGISTER); then
# the next entry of the static SRV list (p=1). The SPA232D's guide says 32 s: models differ.
SPA = Timers(
    0.5,
    4.0,
    16.0,
    "Cisco SPA300/500 administration guide: T1 0.5 s, T2 4 s, Timer F 16 s "
    "(fact sheet 2.3; SPA112/122 16 s too, SPA232D 32 s)",
)

FIRMWARE: dict[str, Timers] = {"yealink": YEALINK, "linksys": SPA}


def timers_of(vendor: str) -> Timers:
    """The timers of `vendor`'s firmware ("yealink", "linksys"). KeyError: another vendor."""
    return FIRMWARE[vendor]
