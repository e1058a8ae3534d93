"""Rate limiting of bad answers per source address: a token bucket each.

Every answer that tells a stranger something went wrong (an unknown MAC, a failed login)
costs its source a token; a source without tokens is refused everything until the bucket
refills. Enumerating MACs then costs hours, while a phone that asks for its own files never
spends a token. Pure: the caller passes the time. Bounded: the least recently seen sources
are forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict


class BadAnswerLimiter:
    def __init__(self, burst: float, per_second: float, max_sources: int = 100_000) -> None:
        self.burst, self.per_second, self.max_sources = burst, per_second, max_sources
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when

    def _tokens(self, source: str, now: float) -> float:
        tokens, when = self._buckets.get(source, (self.burst, now))
        return min(self.burst, tokens + (now - when) * self.per_second)

    def blocked(self, source: str, now: float) -> bool:
        """Out of tokens: refuse this source everything for now."""
        return source in self._buckets and self._tokens(source, now) < 1.0

    def spend(self, source: str, now: float) -> bool:
        """A bad answer for `source`; True if this one emptied its bucket."""
        tokens = self._tokens(source, now) - 1.0
        self._buckets[source] = (max(0.0, tokens), now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return tokens < 1.0 <= tokens + 1.0

    def __len__(self) -> int:
        return len(self._buckets)
