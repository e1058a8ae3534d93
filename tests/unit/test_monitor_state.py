"""The fall/rise state machine and the switch rule, without clock or sockets."""

from __future__ import annotations

import pytest

from xprov.monitor.state import (
    Cause,
    Decision,
    Health,
    Policy,
    ProbeResult,
    TargetState,
    Transition,
    all_failing,
    decide,
)

OK = ProbeResult(True, 0.001, "200 OK")
FAIL = ProbeResult(False, 1.0, "timeout")
REFUSED = ProbeResult(False, 0.001, "connection refused")
UNKNOWN, UP, DOWN = Health.UNKNOWN, Health.UP, Health.DOWN
MANUAL = Policy("manual", 300)
AUTO = Policy("auto", 30)


def state(name: str = "sip@chicago", results: str = "", start: float = 0.0) -> TargetState:
    """A target fed with results, one per second: 'o' success, 'x' failure."""
    target = TargetState(name, fall=3, rise=2, since=start)
    for i, mark in enumerate(results):
        target.record(OK if mark == "o" else FAIL, start + i + 1)
    return target


def test_starts_unknown_then_up_after_rise() -> None:
    target = state()
    assert target.health is Health.UNKNOWN and target.in_transition()
    assert target.record(OK, 1) is None
    transition = target.record(OK, 2)
    assert transition is not None and transition.after is Health.UP
    assert transition.before is Health.UNKNOWN and transition.duration == 2
    assert not target.in_transition()


def test_down_after_fall_consecutive_failures() -> None:
    target = state(results="oo")
    assert target.record(FAIL, 3) is None
    assert target.in_transition()
    assert target.record(FAIL, 4) is None
    transition = target.record(FAIL, 5)
    assert transition is not None and transition.after is Health.DOWN
    assert transition.reason == "3 consecutive failures, last: timeout"
    assert target.failing_since == 3


def test_a_single_lost_probe_changes_nothing() -> None:
    target = state(results="ooxoxoxxo")
    assert target.health is Health.UP
    assert [t.after for t in target.transitions] == [Health.UP]


def test_flapping_never_reaches_down_or_up() -> None:
    up = state(results="oo" + "xxo" * 10)
    assert up.health is Health.UP
    down = state(results="xxx" + "oxx" * 10)
    assert down.health is Health.DOWN
    assert len(down.transitions) == 1


def test_recovery_needs_rise_successes() -> None:
    target = state(results="ooxxx")
    assert target.health is Health.DOWN
    target.record(OK, 6)
    assert target.health is Health.DOWN and target.in_transition()
    target.record(OK, 7)
    assert target.health is Health.UP
    assert target.healthy_since == 6


@pytest.mark.parametrize(
    ("results", "health", "in_transition"),
    [
        ("", UNKNOWN, True),
        ("o", UNKNOWN, True),  # rise - 1
        ("oo", UP, False),  # rise
        ("ooxx", UP, True),  # fall - 1
        ("ooxxx", DOWN, False),  # fall
        ("ooxxxo", DOWN, True),  # rise - 1
        ("ooxxxoo", UP, False),  # rise
        ("xx", UNKNOWN, True),  # fall - 1 from the start
        ("xxx", DOWN, False),  # fall from the start
    ],
)
def test_health_after_fall_and_rise_results(
    results: str, health: Health, in_transition: bool
) -> None:
    target = state(results=results)
    assert (target.health, target.in_transition()) == (health, in_transition)


def test_counts_every_result_and_the_current_runs() -> None:
    target = state(results="ooxoxxo")
    assert (target.total_ok, target.total_failed) == (4, 3)
    assert (target.successes, target.failures, target.last) == (1, 0, OK)


def test_transitions_say_what_when_why_and_after_how_long() -> None:
    target = state("stun@virginia", "ooxxxoo", start=100.0)
    assert list(target.transitions) == [
        Transition("stun@virginia", UNKNOWN, UP, 102.0, "2 consecutive successes", 2.0),
        Transition("stun@virginia", UP, DOWN, 105.0, "3 consecutive failures, last: timeout", 3.0),
        Transition("stun@virginia", DOWN, UP, 107.0, "2 consecutive successes", 2.0),
    ]
    assert target.since == 107.0


def sites(primary: str, backup: str) -> dict[str, TargetState]:
    return {"chicago": state("sip@chicago", primary), "virginia": state("sip@virginia", backup)}


def test_switch_when_the_active_site_is_down_and_the_backup_up() -> None:
    decision = decide(
        "sip", "chicago", ["chicago", "virginia"], sites("ooxxx", "ooooo"), MANUAL, now=5
    )
    assert decision is not None and decision.to == "virginia"
    assert "sip at chicago down (3 consecutive failures, last: timeout)" in decision.reason


def test_switch_reason_names_the_latest_fall() -> None:
    chicago = state("sip@chicago", "ooxxxoo")
    for now in (8, 9, 10):
        chicago.record(REFUSED, now)
    states = {"chicago": chicago, "virginia": state("sip@virginia", "oo")}
    assert decide("sip", "chicago", ["chicago", "virginia"], states, MANUAL, now=10) == Decision(
        "sip",
        "virginia",
        "sip at chicago down (3 consecutive failures, last: connection refused); virginia up",
    )


def test_no_switch_while_the_active_site_is_merely_failing() -> None:
    assert (
        decide("sip", "chicago", ["chicago", "virginia"], sites("oooxx", "ooooo"), MANUAL, now=5)
        is None
    )


def test_never_switch_to_a_site_that_is_down_or_unknown() -> None:
    for backup in ("ooxxx", "x", "o", ""):
        decision = decide(
            "sip", "chicago", ["chicago", "virginia"], sites("ooxxx", backup), MANUAL, now=5
        )
        assert decision == Decision("sip", None, "sip at chicago down and no other site is up")


def test_everything_down_at_once() -> None:
    states = [
        state(f"{s}@{site}", "ooxxx")
        for s in ("sip", "stun", "db")
        for site in ("chicago", "virginia")
    ]
    assert all_failing(states)
    states[3].record(OK, 6)
    assert not all_failing(states)
    assert not all_failing([])
    assert not all_failing([state("sip@chicago")])  # never probed: not known to fail


def test_manual_choice_stands() -> None:
    assert (
        decide(
            "sip",
            "chicago",
            ["chicago", "virginia"],
            sites("ooxxx", "ooooo"),
            MANUAL,
            now=5,
            manual=True,
        )
        is None
    )


def test_manual_failback_policy_stays_on_the_backup() -> None:
    assert (
        decide("sip", "virginia", ["chicago", "virginia"], sites("oo" * 50, "oo"), MANUAL, now=100)
        is None
    )


def test_auto_failback_after_hold_down() -> None:
    states = sites("xxx" + "o" * 40, "o" * 43)  # the primary healthy since t=4
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=33) is None
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=34) == Decision(
        "sip", "chicago", "sip at chicago healthy for 30 s (hold-down 30 s)"
    )


@pytest.mark.parametrize("primary", ["xxxo", "o"])  # down, unknown: successes short of rise
def test_no_auto_failback_to_a_primary_not_up(primary: str) -> None:
    states = sites(primary, "oooo")
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=1000) is None


def test_failback_cancelled_by_a_relapse() -> None:
    primary = state("sip@chicago", "xxx" + "o" * 20)
    backup = state("sip@virginia", "o" * 23)
    primary.record(FAIL, 24)  # one failure: still up, but its run of health is broken
    primary.record(OK, 25)
    assert primary.health is Health.UP and primary.healthy_since == 25
    states = {"chicago": primary, "virginia": backup}
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=40) is None
    decision = decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=55)
    assert decision is not None and decision.to == "chicago"


def test_database_never_fails_back_automatically() -> None:
    states = {"chicago": state("db@chicago", "o" * 100), "virginia": state("db@virginia", "oo")}
    assert decide("db", "virginia", ["chicago", "virginia"], states, AUTO, now=1000) is None


def test_backup_failing_while_active_returns_to_a_healthy_primary() -> None:
    decision = decide(
        "sip", "virginia", ["chicago", "virginia"], sites("ooooo", "ooxxx"), MANUAL, now=5
    )
    assert decision is not None and decision.to == "chicago"


def test_failover_goes_to_the_first_healthy_site_in_the_configured_order() -> None:
    states = {
        "chicago": state("sip@chicago", "ooxxx"),
        "zurich": state("sip@zurich", "ooooo"),
        "austin": state("sip@austin", "ooooo"),
    }
    decision = decide("sip", "chicago", ["chicago", "zurich", "austin"], states, MANUAL, now=5)
    assert decision is not None and decision.to == "zurich"


NOT_MADE = ProbeResult(False, 0.0, "out of file descriptors (EMFILE)", Cause.LOCAL)


@pytest.mark.parametrize("before", ["oo", "ooxx", "ooxxx", "o", "xx", ""])
def test_a_probe_not_made_is_no_observation_of_the_target(before: str) -> None:
    """Out of descriptors is ours: however often, the target neither falls nor rises."""
    target = state(results=before)
    counts = (target.health, target.failures, target.successes, target.total_failed)
    for now in range(len(before) + 1, len(before) + 11):  # more than fall or rise
        assert target.record(NOT_MADE, now) is None
    assert (target.health, target.failures, target.successes, target.total_failed) == counts
    assert target.last == NOT_MADE and len(target.transitions) == len(
        state(results=before).transitions
    )


def test_runs_go_on_across_probes_not_made() -> None:
    target = state(results="oox")
    target.record(NOT_MADE, 4)
    target.record(FAIL, 5)
    target.record(NOT_MADE, 6)
    transition = target.record(FAIL, 7)  # the third failure: not made ones in between
    assert transition is not None and transition.after is Health.DOWN
    assert target.failing_since == 3


def test_a_probe_not_made_breaks_the_health_run_an_automatic_failback_waits_for() -> None:
    chicago = state("sip@chicago", "xxx" + "o" * 40)  # healthy since t=4
    chicago.record(NOT_MADE, 44)
    assert chicago.health is Health.UP and chicago.healthy_since is None
    states = {"chicago": chicago, "virginia": state("sip@virginia", "o" * 44)}
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=44) is None
    chicago.record(OK, 45)  # observed again: the hold-down starts over
    assert chicago.healthy_since == 45
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=74) is None
    assert decide("sip", "virginia", ["chicago", "virginia"], states, AUTO, now=75) is not None


def test_probes_not_made_everywhere_suspend_switching() -> None:
    states = [state(f"sip@{site}", "oo") for site in ("chicago", "virginia")]
    for target in states:
        target.record(NOT_MADE, 3)
    assert all_failing(states)  # blind: nothing may switch
