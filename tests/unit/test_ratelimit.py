"""The bad-answer token buckets and the repeat window, at their exact boundaries (explicit
times: no clock, no sleeps)."""

from __future__ import annotations

import pytest

from xprov.ratelimit import BadAnswerLimiter, RepeatWindow


def emptied(burst: float = 3, per_second: float = 0.5) -> BadAnswerLimiter:
    """A limiter whose key "k" spent its whole burst at t=0."""
    limiter = BadAnswerLimiter(burst, per_second)
    for _ in range(int(burst)):
        limiter.spend("k", 0.0)
    return limiter


def test_only_the_spend_that_empties_the_bucket_reports_it() -> None:
    limiter = BadAnswerLimiter(burst=3, per_second=0.5)
    assert [limiter.spend("k", 0.0) for _ in range(5)] == [False, False, True, False, False]


def test_a_bucket_never_goes_below_empty() -> None:
    """Bad answers while blocked do not dig a hole: one token is back after 1/rate."""
    limiter = emptied()
    for _ in range(10):
        limiter.spend("k", 0.0)
    assert limiter.blocked("k", 1.99) and not limiter.blocked("k", 2.0)


@pytest.mark.parametrize(
    ("now", "seconds", "blocked"),
    [
        (0.0, 2, True),  # empty: one token is 1 / 0.5 s away
        (0.5, 2, True),  # 0.25 of a token: 1.5 s, rounded up
        (1.0, 1, True),
        (1.9, 1, True),  # a tenth of a second still counts as a whole one
        (2.0, 0, False),  # exactly one token
        (100.0, 0, False),
    ],
)
def test_tokens_refill_at_the_rate(now: float, seconds: int, blocked: bool) -> None:
    limiter = emptied(per_second=0.5)
    assert limiter.seconds_to_token("k", now) == seconds
    assert limiter.blocked("k", now) is blocked


def test_a_key_never_seen_has_its_burst_and_is_not_blocked() -> None:
    limiter = BadAnswerLimiter(burst=0.5, per_second=0.1)  # less than one token, even
    assert not limiter.blocked("new", 0.0)
    assert BadAnswerLimiter(burst=3, per_second=0.1).seconds_to_token("new", 0.0) == 0


def test_a_bucket_refills_up_to_its_burst_only() -> None:
    limiter = emptied(burst=3, per_second=0.5)
    assert [limiter.spend("k", 1000.0) for _ in range(3)] == [False, False, True]
    assert limiter.blocked("k", 1000.0)


def test_a_partial_refill_counts_from_the_last_bad_answer() -> None:
    limiter = BadAnswerLimiter(burst=3, per_second=0.5)
    # 3 - 1 = 2 left; 2 + 0.5 - 1 = 1.5 left; 1.5 - 1 = 0.5 left: empty
    assert [limiter.spend("k", t) for t in (0.0, 1.0, 1.0)] == [False, False, True]
    assert limiter.blocked("k", 1.0) and limiter.seconds_to_token("k", 1.0) == 1
    assert not limiter.blocked("k", 2.0)


def test_the_least_recently_charged_source_is_forgotten_first() -> None:
    limiter = BadAnswerLimiter(burst=1, per_second=0.001, max_sources=2)
    limiter.spend("a", 0.0)
    limiter.spend("b", 0.0)
    limiter.spend("a", 1.0)  # a is charged again: b is now the oldest
    limiter.spend("c", 2.0)
    assert len(limiter) == 2
    assert limiter.blocked("a", 2.0) and limiter.blocked("c", 2.0)
    assert not limiter.blocked("b", 2.0)  # forgotten: a full bucket again


def test_a_limiter_remembers_a_hundred_thousand_sources_by_default() -> None:
    limiter = BadAnswerLimiter(burst=1, per_second=0.001)
    for i in range(100_001):
        limiter.spend(i, 0.0)
    assert len(limiter) == 100_000
    assert not limiter.blocked(0, 0.0) and limiter.blocked(1, 0.0)


@pytest.mark.parametrize(
    ("now", "first"),
    [(0.0, False), (599.9, False), (600.0, True), (5000.0, True)],
)
def test_a_repeat_is_free_for_exactly_the_window(now: float, first: bool) -> None:
    window = RepeatWindow(window=600)
    assert window.first("k", 0.0) is True
    assert window.first("k", now) is first


def test_a_repeat_window_counts_from_the_first_sighting() -> None:
    """Repeats do not extend the window: a phone polling every minute pays once per window."""
    window = RepeatWindow(window=600)
    assert [window.first("k", t) for t in (0.0, 300.0, 599.0, 600.0, 900.0)] == [
        True,
        False,
        False,
        True,
        False,
    ]


def test_expired_keys_are_dropped_from_the_oldest_end() -> None:
    window = RepeatWindow(window=10)
    window.first("a", 0.0)
    window.first("b", 5.0)
    window.first("c", 9.0)
    assert window.first("d", 10.0) is True
    assert len(window) == 3  # a expired; b, c and d are within the window
    assert window.first("b", 14.9) is False and window.first("c", 14.9) is False
    assert window.first("b", 15.0) is True


def test_the_oldest_keys_are_forgotten_first_beyond_the_bound() -> None:
    window = RepeatWindow(window=600, max_keys=2)
    for key in "abc":
        window.first(key, 0.0)
    assert len(window) == 2
    assert window.first("c", 1.0) is False and window.first("b", 1.0) is False
    assert window.first("a", 1.0) is True  # forgotten: charged again, never less


def test_a_repeat_window_remembers_a_hundred_thousand_keys_by_default() -> None:
    window = RepeatWindow(window=600)
    for i in range(100_001):
        window.first(i, 0.0)
    assert len(window) == 100_000
    assert window.first(1, 0.0) is False and window.first(0, 0.0) is True


def test_a_full_partition_forgets_only_its_own_keys() -> None:
    """Break-it pass: 110,000 forged TFTP sources flushed a drained HTTP source out of the
    shared table, and it got a fresh budget. Each partition is bounded on its own."""
    limiter = BadAnswerLimiter(burst=1, per_second=0.001, max_sources=3, partition=lambda k: k[0])
    limiter.spend(("http", "a"), 0.0)
    limiter.spend(("http", "b"), 0.0)
    for n in range(1000):  # a flood of forged sources fills TFTP's partition, many times over
        limiter.spend(("tftp", str(n)), 0.0)
    assert limiter.blocked(("http", "a"), 1.0) and limiter.blocked(("http", "b"), 1.0)
    assert len(limiter) == 2 + 3
    assert [limiter.blocked(("tftp", str(n)), 1.0) for n in (996, 997, 998, 999)] == [
        False,  # forgotten: the oldest of its own partition
        True,
        True,
        True,
    ]
    limiter.spend(("http", "c"), 0.0)
    limiter.spend(("http", "d"), 0.0)  # HTTP's partition full: its own oldest goes
    assert not limiter.blocked(("http", "a"), 1.0) and limiter.blocked(("http", "b"), 1.0)
    assert len(limiter) == 3 + 3


def test_one_partition_by_default() -> None:
    limiter = BadAnswerLimiter(burst=1, per_second=0.001, max_sources=2)
    for key in (("http", "a"), ("tftp", "b"), ("tftp", "c")):
        limiter.spend(key, 0.0)
    assert not limiter.blocked(("http", "a"), 1.0) and len(limiter) == 2
