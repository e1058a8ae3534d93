"""Convergence tracking and the reactor lag meter, without sockets."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from xprov.convergence import Convergence
from xprov.lag import LagMeter

POLL = 60.0


def test_convergence_counts_regular_pollers_after_a_switch() -> None:
    c = Convergence()
    for i in range(10):  # ten phones poll every minute
        c.fetched(f"phone{i}", 1, 100.0 + i)
    c.fetched("stale", 1, -1000.0)  # has not polled for ages: not regular
    before = c.report(1, 150.0, POLL)
    assert (before["regular_phones"], before["fetched"], before["percent"]) == (10, 10, 100.0)
    c.switched(2, 200.0)
    for i in range(4):
        c.fetched(f"phone{i}", 2, 205.0 + i * 10)
        c.fetched(f"phone{i}", 2, 265.0 + i * 10)  # a second poll does not move the first
    report = c.report(2, 240.0, POLL)
    assert report["regular_phones"] == 10
    assert (report["fetched"], report["pending"], report["percent"]) == (4, 6, 40.0)
    assert report["slowest_s"] == 35.0 and report["p50_s"] == 25.0
    assert report["since"] == 200.0


def test_phones_gone_quiet_after_a_switch_are_silent_not_pending_forever() -> None:
    """The break-it pass left 20 phones "pending" for ten minutes after they stopped polling:
    a phone unheard of for REGULAR_POLLS intervals is counted apart, out of the percentage."""
    c = Convergence()
    for i in range(4):
        c.fetched(f"phone{i}", 1, 100.0 + i)  # polled before the switch at 120
    c.switched(2, 120.0)
    c.fetched("phone0", 2, 130.0)
    at_180 = c.report(2, 180.0, POLL)  # within one poll: everyone may still come
    assert (at_180["fetched"], at_180["pending"], at_180["silent"]) == (1, 3, 0)
    assert at_180["percent"] == 25.0
    # phone1 last heard at 101: silent once 180 s (3 polls) have passed, i.e. after 281
    at_281 = c.report(2, 281.0, POLL)
    assert (at_281["pending"], at_281["silent"]) == (3, 0)
    at_282 = c.report(2, 281.5, POLL)
    assert (at_282["pending"], at_282["silent"], at_282["regular_phones"]) == (2, 1, 4)
    late = c.report(2, 1000.0, POLL)
    assert (late["fetched"], late["pending"], late["silent"], late["percent"]) == (1, 0, 3, 100.0)
    c.fetched("phone2", 2, 1001.0)  # a silent phone that comes back is converged
    back = c.report(2, 1002.0, POLL)
    assert (back["fetched"], back["silent"], back["regular_phones"]) == (2, 2, 4)


def test_a_phone_that_boots_after_the_switch_counts_as_converged() -> None:
    c = Convergence()
    c.switched(2, 10.0)
    c.fetched("new", 2, 11.0)
    assert c.report(2, 12.0, POLL)["fetched"] == 1


def test_report_before_any_switch_has_no_delays() -> None:
    c = Convergence()
    c.fetched("a", 1, 900.0)
    c.fetched("a", 1, 960.0)
    c.fetched("b", 1, 950.0)
    assert c.report(1, 1000.0, POLL) == {
        "generation": 1,
        "since": None,
        "regular_phones": 2,
        "fetched": 2,
        "pending": 0,
        "silent": 0,
        "percent": 100.0,
        "p50_s": None,
        "slowest_s": None,
    }


@pytest.mark.parametrize(("last_fetch", "regular"), [(820.0, 1), (819.9, 0), (999.0, 1)])
def test_before_any_switch_a_regular_phone_polled_within_three_intervals_of_now(
    last_fetch: float, regular: int
) -> None:
    c = Convergence()
    c.fetched("phone", 1, last_fetch)
    report = c.report(1, 1000.0, POLL)
    assert (report["regular_phones"], report["fetched"]) == (regular, regular)


@pytest.mark.parametrize(("last_fetch", "pending"), [(20.0, 1), (19.9, 0), (199.0, 1)])
def test_after_a_switch_a_regular_phone_polled_within_three_intervals_before_it(
    last_fetch: float, pending: int
) -> None:
    c = Convergence()
    c.fetched("phone", 1, last_fetch)
    c.switched(2, 200.0)
    report = c.report(2, 200.0, POLL)  # at the switch: a regular phone is waited for
    assert (report["regular_phones"], report["pending"]) == (pending, pending)
    report = c.report(2, 1000.0, POLL)  # long after: unheard of since, it has gone quiet
    assert (report["regular_phones"], report["pending"], report["silent"]) == (
        pending,
        0,
        pending,
    )


def test_report_after_a_switch() -> None:
    c = Convergence()
    c.fetched("gone", 1, -500.0)  # stopped polling long before the switch
    c.fetched("a", 1, 90.0)
    c.fetched("b", 1, 95.0)
    c.fetched("c", 1, 80.0)  # has not fetched the new selection yet
    c.switched(2, 100.0)
    for now in (109.54, 169.54, 229.54):  # later polls do not move the first fetch
        c.fetched("a", 2, now)
    c.fetched("b", 2, 112.37)
    assert c.report(2, 240.0, POLL) == {
        "generation": 2,
        "since": 100.0,
        "regular_phones": 3,
        "fetched": 2,
        "pending": 1,
        "silent": 0,
        "percent": 66.7,
        "p50_s": 12.4,
        "slowest_s": 12.4,
    }


def test_no_phone_at_all_is_fully_converged() -> None:
    c = Convergence()
    c.switched(2, 100.0)
    report = c.report(2, 110.0, POLL)
    assert (report["regular_phones"], report["pending"], report["percent"]) == (0, 0, 100.0)
    assert report["p50_s"] is None and report["slowest_s"] is None


def test_a_new_switch_resets_the_count_and_the_delays() -> None:
    c = Convergence()
    c.switched(2, 100.0)
    for mac in ("a", "b"):
        c.fetched(mac, 2, 110.0)
        c.fetched(mac, 2, 450.0)
    c.switched(3, 500.0)
    report = c.report(3, 510.0, POLL)
    assert (report["fetched"], report["pending"], report["percent"]) == (0, 2, 0.0)
    assert (report["since"], report["p50_s"], report["slowest_s"]) == (500.0, None, None)
    c.fetched("b", 3, 530.0)
    report = c.report(3, 540.0, POLL)
    assert (report["fetched"], report["pending"], report["slowest_s"]) == (1, 1, 30.0)


def test_a_phone_on_the_new_selection_counts_even_if_the_clock_stepped_back() -> None:
    c = Convergence()
    c.switched(2, 1000.0)
    c.fetched("phone", 2, 500.0)  # the wall clock went back by more than the window
    report = c.report(2, 510.0, POLL)
    assert (report["regular_phones"], report["fetched"]) == (1, 1)


def test_lag_meter_measures_lateness() -> None:
    clock = Clock()
    meter = LagMeter(clock, interval=0.025)
    meter.start()
    for _ in range(40):
        clock.advance(0.025)
    assert meter.max_s == 0.0
    clock.advance(0.3)  # the reactor was busy for 300 ms
    assert round(meter.max_s, 3) == 0.275
    assert round(meter.recent_max_s(), 3) == 0.275
    for _ in range(round(70 / 0.025)):  # a minute and more of an idle reactor
        clock.advance(0.025)
    assert meter.recent_max_s() < 0.275  # the stall left the window
    meter.stop()
    assert clock.getDelayedCalls() == []


def test_a_phone_already_on_a_newer_selection_counts_as_fetched() -> None:
    convergence = Convergence()
    convergence.fetched("a", 1, 50.0)
    convergence.switched(2, 100.0)
    convergence.fetched("a", 3, 110.0)  # a second switch it saw before the report
    report = convergence.report(2, 120.0, 60.0)
    assert (report["fetched"], report["pending"], report["percent"]) == (1, 0, 100.0)
