"""What the monitor keeps for the operator (status page, `xprov status`): the strip of recent
probe results per target, the last switches, since when a service is on its site, and who
chose it by hand. Pure parts first, then through the monitor on a `task.Clock`."""

from __future__ import annotations

from tests.unit.test_monitor_loop import World
from xprov.monitor.history import SWITCHES_KEPT, History, ManualChoice, Switch
from xprov.monitor.state import (
    RECENT_KEPT,
    Cause,
    ProbeResult,
    Recent,
    TargetState,
    outcome_of,
)


def test_each_result_is_one_outcome_on_the_strip() -> None:
    assert outcome_of(ProbeResult(True, 0.01, "200 OK")) == "up"
    assert outcome_of(ProbeResult(False, 0.01, "503 Service Unavailable")) == "down"
    assert outcome_of(ProbeResult(False, 1.0, "timeout", timed_out=True)) == "timeout"
    # no reply by the deadline, ICMP errors seen: still a timeout (they prove nothing)
    assert (
        outcome_of(ProbeResult(False, 1.0, "no reply; ICMP port unreachable seen", timed_out=True))
        == "timeout"
    )
    local = ProbeResult(False, 0.0, "out of file descriptors (EMFILE)", Cause.LOCAL)
    assert outcome_of(local) == "not made"
    # "not made" wins over a deadline: it says nothing about the target
    assert outcome_of(ProbeResult(False, 1.0, "x", Cause.LOCAL, timed_out=True)) == "not made"


def test_the_strip_keeps_the_last_results_in_order_up_to_its_bound() -> None:
    target = TargetState("sip@chicago", fall=3, rise=2, since=0.0)
    results = [
        ProbeResult(True, 0.002, "200 OK"),
        ProbeResult(False, 1.0, "timeout", timed_out=True),
        ProbeResult(False, 0.003, "refused"),
    ]
    for i in range(RECENT_KEPT + 7):
        target.record(results[i % 3], 100.0 + i)
    assert len(target.recent) == RECENT_KEPT
    first = 7  # the oldest seven went
    assert target.recent[0] == Recent(100.0 + first, ("up", "timeout", "down")[first % 3], 1.0)
    assert target.recent[-1].at == 100.0 + RECENT_KEPT + 6
    assert [r.outcome for r in list(target.recent)[:3]] == ["timeout", "down", "up"]


def test_a_result_not_made_is_on_the_strip_but_counts_nothing() -> None:
    target = TargetState("db@chicago", fall=3, rise=2, since=0.0)
    target.record(ProbeResult(False, 0.0, "EMFILE", Cause.LOCAL), 5.0)
    assert [(r.at, r.outcome) for r in target.recent] == [(5.0, "not made")]
    assert (target.failures, target.successes) == (0, 0)


def switch(at: float, service: str = "sip", after: str = "virginia") -> Switch:
    return Switch(at, service, "chicago", after, "auto", "down", 3.0, 2)


def test_history_keeps_the_last_switches_and_when_each_service_moved() -> None:
    history = History(started=50.0)
    assert history.since("sip") == 50.0  # never moved: since the start
    for i in range(SWITCHES_KEPT + 3):
        history.switched(switch(100.0 + i))
    assert len(history.switches) == SWITCHES_KEPT
    assert history.switches[0].at == 103.0 and history.switches[-1].at == 100.0 + SWITCHES_KEPT + 2
    assert history.since("sip") == 100.0 + SWITCHES_KEPT + 2
    assert history.since("stun") == 50.0
    assert switch(1.0).as_json() == {
        "at": 1.0,
        "service": "sip",
        "before": "chicago",
        "after": "virginia",
        "by": "auto",
        "reason": "down",
        "detection_s": 3.0,
        "generation": 2,
    }


def test_manual_choices_are_kept_until_released_or_forgotten() -> None:
    history = History(started=0.0)
    history.chosen("sip", ManualChoice(10.0, "admin 127.0.0.1"))
    history.chosen("stun", ManualChoice(11.0, "admin ::1"))
    assert history.manual["sip"] == ManualChoice(10.0, "admin 127.0.0.1")
    history.chosen("sip", None)
    assert "sip" not in history.manual
    history.chosen("sip", None)  # releasing twice is no error
    history.forget({"db"})
    assert history.manual == {}


def test_the_monitors_status_carries_the_strip_the_switches_and_the_manual_choice() -> None:
    world = World()
    world.monitor.start()
    world.run(3)
    world.behaviour["sip@chicago"] = "hang"
    world.run(5)
    status = world.monitor.status()
    target = status["targets"]["sip@chicago"]
    assert (target["service"], target["site"]) == ("sip", "chicago")
    outcomes = [outcome for _, outcome, _ in target["recent"]]
    assert outcomes[:3] == ["up", "up", "up"] and "timeout" in outcomes
    at, outcome, latency_ms = target["recent"][-1]
    assert outcome == "timeout" and latency_ms == 1000.0 and at <= world.clock.seconds()
    [moved] = status["switches"]
    assert (moved["service"], moved["before"], moved["after"], moved["by"]) == (
        "sip",
        "chicago",
        "virginia",
        "auto",
    )
    assert moved["detection_s"] is not None and moved["generation"] == 2
    sip = status["services"]["sip"]
    assert (sip["primary"], sip["sites"], sip["since"]) == (
        "chicago",
        ["chicago", "virginia"],
        moved["at"],
    )
    assert status["services"]["stun"]["since"] == 0.0  # never moved: since the monitor started
    world.behaviour["sip@chicago"] = "up"
    world.run(3)
    world.monitor.failover("stun", "virginia", by="admin 10.0.0.9")
    stun = world.monitor.status()["services"]["stun"]
    assert (stun["manual"], stun["manual_by"], stun["manual_at"]) == (
        "virginia",
        "admin 10.0.0.9",
        world.clock.seconds(),
    )
    world.monitor.failback("stun")
    stun = world.monitor.status()["services"]["stun"]
    assert (stun["manual"], stun["manual_by"], stun["manual_at"]) == (None, None, None)
    assert [s["by"] for s in world.monitor.status()["switches"]] == ["auto", "operator", "operator"]


def test_a_probe_settled_by_its_deadline_is_a_timeout_and_an_answer_is_not() -> None:
    from twisted.internet.task import Clock

    from xprov.monitor.probe import run_probe

    clock, results = Clock(), []
    run_probe(lambda done: lambda: None, 1.0, clock).addCallback(results.append)
    clock.advance(1.0)
    run_probe(lambda done: done.callback((False, "503")) or (lambda: None), 1.0, clock).addCallback(
        results.append
    )
    [silent, refused] = results
    assert (silent.ok, silent.detail, silent.timed_out, outcome_of(silent)) == (
        False,
        "timeout",
        True,
        "timeout",
    )
    assert (refused.timed_out, outcome_of(refused)) == (False, "down")


def test_a_remote_servers_words_are_cleaned_and_bounded() -> None:
    """The break-it pass forged a SIP 503 whose reason phrase was 1,500 characters with a
    right-to-left override: it became the service's "why", the switch reason and the log."""
    from xprov.monitor.errors import DETAIL_LENGTH, printable
    from xprov.monitor.probe import result_of

    assert printable("503 Service Unavailable") == "503 Service Unavailable"
    assert printable("503 a\u202eb\x1b[31mc\u200bd\ne") == "503 a?b?[31mc?d?e"
    long = printable("503 " + "x" * 1500)
    assert len(long) == DETAIL_LENGTH and long.endswith("...") and long.startswith("503 xx")
    assert printable("é ünïcode 日本") == "é ünïcode 日本"  # letters of any script stay
    result = result_of((False, "503 \u202eevil" + "y" * 500), 0.01)
    assert result.detail.startswith("503 ?evil") and len(result.detail) == DETAIL_LENGTH
