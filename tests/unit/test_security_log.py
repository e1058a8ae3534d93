"""The `security` log lines are bounded per reason (break-it pass: a source reconnecting in
a loop wrote 10,000 lines in 7 s; forged TFTP sources 21 MB per 100,000 datagrams)."""

from __future__ import annotations

from typing import Any

from xprov.security_log import BURST, MAX_REASONS, PER_SECOND, BoundedLog


class Lines:
    def __init__(self) -> None:
        self.written: list[tuple[str, dict[str, Any]]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.written.append((event, fields))


def test_each_reason_writes_its_burst_then_its_rate_and_counts_the_rest() -> None:
    now = [0.0]
    lines = Lines()
    log = BoundedLog(lines, burst=3, per_second=0.5, clock=lambda: now[0])
    results = [
        log.write("security", reason="too many connections", client=f"c{n}") for n in range(10)
    ]
    assert results == [True] * 3 + [False] * 7
    assert [f["client"] for _, f in lines.written] == ["c0", "c1", "c2"]
    # another reason has its own budget: a flood of one never hides the others
    assert log.write("security", reason="wrong admin token", client="admin")
    assert lines.written[-2] == ("security_suppressed", {"counts": {"too many connections": 7}})
    assert lines.written[-1] == ("security", {"reason": "wrong admin token", "client": "admin"})
    assert log.suppressed == {}
    now[0] = 1.99
    assert not log.write("security", reason="too many connections", client="late")
    now[0] = 2.0  # one line back after 1 / per_second
    assert log.write("security", reason="too many connections", client="later")
    assert lines.written[-2:] == [
        ("security_suppressed", {"counts": {"too many connections": 1}}),
        ("security", {"reason": "too many connections", "client": "later"}),
    ]


def test_a_flood_is_bounded_at_the_rate() -> None:
    """100,000 events in 100 s write BURST lines, then PER_SECOND a second (and as many
    summaries), never one per event."""
    now = [0.0]
    lines = Lines()
    log = BoundedLog(lines, clock=lambda: now[0])
    for n in range(100_000):
        now[0] = n / 1000
        log.write("security", reason="unknown device", client="10.0.0.1")
    events = [event for event, _ in lines.written]
    after_the_burst = int(100 * PER_SECOND)  # the last event is at 99.999 s: one short
    assert events.count("security") == BURST + after_the_burst - 1
    assert events.count("security_suppressed") == after_the_burst - 1


def test_reasons_are_bounded_too() -> None:
    log = BoundedLog(Lines())
    for n in range(MAX_REASONS * 2):
        log.write("security", reason=f"reason {n}")
    assert len(log.lines) == MAX_REASONS


def test_reset_fills_every_budget() -> None:
    log = BoundedLog(Lines(), burst=1, clock=lambda: 0.0)
    log.write("security", reason="r")
    assert not log.write("security", reason="r")
    log.reset()
    assert log.suppressed == {} and log.write("security", reason="r")


def test_the_default_logger_is_the_security_component(log_events) -> None:
    """fail2ban matches `"component": "xprov.security"`."""
    BoundedLog(clock=lambda: 0.0).write("security", reason="wrong admin token", client="x")
    (event,) = [e for e in log_events() if e["event"] == "security"]
    assert (event["component"], event["reason"], event["client"]) == (
        "xprov.security",
        "wrong admin token",
        "x",
    )
