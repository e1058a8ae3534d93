"""Convergence: which selection generation each phone last fetched, and when.

After a switch an operator wants to know when the failover is complete: how many of the
phones that poll regularly have already fetched a file rendered with the new selection,
and which are still waiting. Pure: the caller passes the time.
"""

from __future__ import annotations

from typing import Any

REGULAR_POLLS = 3  # a phone seen within this many poll intervals polls regularly


class Convergence:
    def __init__(self) -> None:
        # mac -> (generation fetched last, first fetch of that generation, last fetch)
        self.seen: dict[str, tuple[int, float, float]] = {}
        self.began: dict[int, float] = {}  # generation -> when a switch made it current

    def switched(self, generation: int, now: float) -> None:
        self.began[generation] = now

    def fetched(self, mac: str, generation: int, now: float) -> None:
        last = self.seen.get(mac)
        if last is None or last[0] != generation:
            self.seen[mac] = (generation, now, now)
        else:
            self.seen[mac] = (generation, last[1], now)

    def report(self, generation: int, now: float, poll_seconds: float) -> dict[str, Any]:
        """Phones that polled in the window before `generation` began (or, when nothing
        switched yet, before now) and how many of them have fetched it since."""
        began = self.began.get(generation)  # None: the first selection, no switch yet
        window = REGULAR_POLLS * poll_seconds
        since = (now if began is None else began) - window
        regular = converged = silent = 0
        delays: list[float] = []  # after the switch, until each phone's first fetch
        for fetched, first, last in self.seen.values():
            current = fetched >= generation
            if last < since and not (current and began is not None):
                continue  # not polling lately (a phone that fetched the new one counts)
            regular += 1
            if current:
                converged += 1
                if began is not None:
                    delays.append(first - began)
            elif last < now - window:
                silent += 1  # polled before, not for REGULAR_POLLS intervals: gone quiet
        delays.sort()
        waiting = regular - silent  # the phones still expected
        return {
            "generation": generation,
            "since": began,
            "regular_phones": regular,
            "fetched": converged,
            "pending": waiting - converged,
            "silent": silent,
            "percent": round(100.0 * converged / waiting, 1) if waiting else 100.0,
            "p50_s": round(delays[len(delays) // 2], 1) if delays else None,
            "slowest_s": round(delays[-1], 1) if delays else None,
        }
