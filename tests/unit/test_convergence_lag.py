"""Convergence tracking and the reactor lag meter, without sockets."""

from __future__ import annotations

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


def test_a_phone_that_boots_after_the_switch_counts_as_converged() -> None:
    c = Convergence()
    c.switched(2, 10.0)
    c.fetched("new", 2, 11.0)
    assert c.report(2, 12.0, POLL)["fetched"] == 1


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
