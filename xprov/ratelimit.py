"""Budgets of bad answers: a token bucket per key, and a window that forgives repeats.

Every answer that tells a stranger something went wrong (an unknown MAC, a failed login)
costs its source a token; a source without tokens is refused what could tell it more until
the bucket refills. Enumerating MACs then costs hours, while a phone that asks for its own
files never spends a token. Pure: the caller passes the time. Bounded: the least recently
used keys are forgotten first.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

Buckets = OrderedDict[Hashable, tuple[float, float]]  # key -> (tokens, when), oldest first


class BadAnswerLimiter:
    """A token bucket per key (a source address, or a source and a user name).

    Keys live in partitions (`partition(key)`; one partition by default), each bounded by
    `max_sources` on its own: forgetting the least recently used key of a full partition
    never touches another, so a flood of forged TFTP sources (UDP: free to forge) can never
    make the limiter forget an HTTP source (TCP: a real address) it has drained."""

    def __init__(
        self,
        burst: float,
        per_second: float,
        max_sources: int = 100_000,
        partition: Callable[[Any], Hashable] = lambda key: None,
    ) -> None:
        self.burst, self.per_second, self.max_sources = burst, per_second, max_sources
        self.partition = partition
        self._partitions: dict[Hashable, Buckets] = {}

    def _bucket(self, key: Hashable) -> Buckets:
        return self._partitions.setdefault(self.partition(key), OrderedDict())

    def _tokens(self, key: Hashable, now: float) -> float:
        tokens, when = self._bucket(key).get(key, (self.burst, now))
        return min(self.burst, tokens + (now - when) * self.per_second)

    def blocked(self, key: Hashable, now: float) -> bool:
        """Out of tokens: refuse this key what could tell it more, for now."""
        return key in self._bucket(key) and self._tokens(key, now) < 1.0

    def seconds_to_token(self, key: Hashable, now: float) -> int:
        """Whole seconds until `key` has a token again (0: it has one)."""
        missing = 1.0 - self._tokens(key, now)
        return 0 if missing <= 0 else max(1, math.ceil(missing / self.per_second))

    def spend(self, key: Hashable, now: float) -> bool:
        """A bad answer for `key`; True if this one emptied its bucket."""
        tokens = self._tokens(key, now) - 1.0
        buckets = self._bucket(key)
        buckets[key] = (max(0.0, tokens), now)
        buckets.move_to_end(key)
        while len(buckets) > self.max_sources:
            buckets.popitem(last=False)
        return tokens < 1.0 <= tokens + 1.0

    def __len__(self) -> int:
        return sum(map(len, self._partitions.values()))


class RepeatWindow:
    """Keys seen in the last `window` seconds, so a repeat is not charged twice.

    An office behind one NAT address whose unprovisioned phones ask for their missing files
    on every poll costs one token per phone and window, not one per request; a scan of new
    MACs costs one each. Bounded: the oldest keys are forgotten first (a forgotten repeat
    costs one token again, never less)."""

    def __init__(self, window: float, max_keys: int = 100_000) -> None:
        self.window, self.max_keys = window, max_keys
        self._seen: OrderedDict[Hashable, float] = OrderedDict()  # key -> first seen, in order

    def first(self, key: Hashable, now: float) -> bool:
        """True if `key` was not seen within the window (and remember it from `now`)."""
        seen = self._seen
        while seen:  # expire from the oldest end
            oldest, when = next(iter(seen.items()))
            if now - when < self.window:
                break
            del seen[oldest]
        if key in seen:
            return False
        seen[key] = now
        while len(seen) > self.max_keys:
            seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
