"""The monitor loop on task.Clock: rounds on a fixed schedule, judged together, switches
applied to the active sites, manual control."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from xprov.config import MonitorConfig
from xprov.monitor.loop import ManualChoiceError, Monitor, Target
from xprov.monitor.probe import NotMade, run_probe
from xprov.selection import ActiveSites

SERVICES = ("sip", "stun", "db")
SITES = ("chicago", "virginia")


def settings(**changes) -> MonitorConfig:
    base = dict(
        enabled=True,
        interval=1.0,
        fast_interval=1.0,
        timeout=1.0,
        fall=3,
        rise=2,
        failback="manual",
        hold_down=300.0,
        sip_down_codes=frozenset({503}),
    )
    return MonitorConfig(**{**base, **changes})


class World:
    """Targets whose behaviour the test sets: 'up', 'down' (refused at once), 'hang' or
    'starved' (the probe cannot be made)."""

    def __init__(self, **changes) -> None:
        self.clock = Clock()
        self.behaviour = {f"{s}@{site}": "up" for s in SERVICES for site in SITES}
        self.probed: list[tuple[float, str]] = []
        targets = [
            Target(s, site, f"fake {s}", self._probe(f"{s}@{site}"))
            for s in SERVICES
            for site in SITES
        ]
        self.active = ActiveSites(SITES, "chicago")
        self.monitor = Monitor(targets, self.active, list(SITES), settings(**changes), self.clock)

    def _probe(self, name: str):
        def probe():
            self.probed.append((self.clock.seconds(), name))

            def attempt(done):
                behaviour = self.behaviour[name]
                if behaviour == "up":
                    done.callback((True, "200 OK"))
                elif behaviour == "down":
                    done.callback((False, "ICMP port unreachable"))
                elif behaviour == "starved":  # this process out of descriptors
                    done.callback(NotMade("out of file descriptors (EMFILE)"))
                return lambda: None

            return run_probe(attempt, 1.0, self.clock)

        return probe

    def run(self, seconds: float, step: float = 0.25) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)

    def state(self, name: str) -> str:
        return self.monitor.states[name].health.value


@pytest.fixture
def world() -> World:
    w = World()
    w.monitor.start()
    w.run(3)  # everything known up
    return w


def test_rounds_keep_a_fixed_schedule_even_when_probes_hang(world: World) -> None:
    world.behaviour["sip@chicago"] = "hang"
    start = len(world.probed)
    world.run(5)
    times = sorted({t for t, name in world.probed[start:] if name == "sip@virginia"})
    assert times == [4.0, 5.0, 6.0, 7.0, 8.0]


def test_killed_primary_switches_after_fall_rounds(world: World, log_events) -> None:
    generation = world.active.current.generation
    world.behaviour["sip@chicago"] = "down"  # killed after the round of t=3: refused at once
    world.run(2.75)
    assert world.active.current.site_of("sip") == "chicago"  # two failures (t=4, 5): not yet
    world.run(0.5)
    assert world.active.current.site_of("sip") == "virginia"  # third failing round, t=6
    assert world.active.current.generation == generation + 1
    assert dict(world.active.current.active) == {
        "sip": "virginia",
        "stun": "chicago",
        "db": "chicago",
    }
    (switch,) = [e for e in log_events() if e["event"] == "switch"]
    assert switch["service"] == "sip" and switch["before"] == "chicago"
    assert switch["after"] == "virginia" and switch["by"] == "auto"
    assert switch["detection_s"] == 2.0  # first failure at t=4, switch at t=6
    assert switch["failed_probes"] == {"consecutive": 3, "last": "ICMP port unreachable"}
    assert "3 consecutive failures" in switch["reason"]
    (down,) = [e for e in log_events() if e["event"] == "target_state" and e["after"] == "down"]
    assert down["target"] == "sip@chicago" and down["last"] == "ICMP port unreachable"


def test_hung_primary_switches_at_the_deadline_of_the_third_round(world: World) -> None:
    world.behaviour["stun@chicago"] = "hang"
    world.run(3.75)
    assert world.active.current.site_of("stun") == "chicago"
    world.run(0.5)  # the round of t=6 is judged at its deadline, t=7
    assert world.active.current.site_of("stun") == "virginia"


def test_a_single_lost_probe_switches_nothing(world: World) -> None:
    for _ in range(5):
        world.behaviour["sip@chicago"] = "hang"
        world.run(1)
        world.behaviour["sip@chicago"] = "up"
        world.run(1)
    assert world.active.current.generation == 1
    assert world.state("sip@chicago") == "up"


def test_both_sites_down_switches_nothing(world: World, log_events) -> None:
    world.behaviour["sip@chicago"] = world.behaviour["sip@virginia"] = "down"
    world.run(10)
    assert world.active.current.generation == 1
    holds = [e for e in log_events() if e["event"] == "switch_impossible"]
    assert len(holds) == 1 and holds[0]["reason"] == "sip at chicago down and no other site is up"


def test_everything_down_at_once_switches_nothing(world: World, log_events) -> None:
    for name in world.behaviour:
        world.behaviour[name] = "down"
    world.run(10)
    assert world.active.current.generation == 1
    assert world.monitor.blind
    events = [e["event"] for e in log_events()]
    assert events.count("switching_suspended") == 1 and "switch" not in events
    world.behaviour["sip@virginia"] = "up"  # the backup answers again: the rule applies
    world.run(3)
    assert not world.monitor.blind
    assert world.active.current.site_of("sip") == "virginia"
    assert events.count("switching_suspended") == 1


def test_fast_interval_while_in_transition() -> None:
    w = World(fast_interval=0.5, timeout=0.5)
    w.monitor.start()
    w.run(3)
    start = len(w.probed)
    w.run(2)
    steady = [t for t, n in w.probed[start:] if n == "sip@virginia"]
    assert len(steady) == 2  # 1 s apart while stable
    w.behaviour["sip@chicago"] = "down"
    start = len(w.probed)
    w.run(1.5)
    fast = [t for t, n in w.probed[start:] if n == "sip@virginia"]
    assert len(fast) == 3  # 0.5 s apart once a target starts failing
    assert w.active.current.site_of("sip") == "virginia"


def test_manual_failover_is_kept_until_released(world: World) -> None:
    world.monitor.failover("sip", "virginia")
    assert world.active.current.site_of("sip") == "virginia"
    world.behaviour["sip@virginia"] = "down"  # the rule would go back: the operator's choice wins
    world.run(10)
    assert world.active.current.site_of("sip") == "virginia"
    assert world.monitor.status()["services"]["sip"]["manual"] == "virginia"
    world.monitor.failback("sip")
    assert world.active.current.site_of("sip") == "chicago"
    assert world.monitor.manual == {}


def test_manual_choices_are_checked(world: World) -> None:
    world.behaviour["sip@virginia"] = "down"
    world.run(4)
    with pytest.raises(ManualChoiceError, match="sip at virginia is down"):
        world.monitor.failover("sip", "virginia")
    world.monitor.failover("sip", "virginia", force=True)
    assert world.active.current.site_of("sip") == "virginia"
    with pytest.raises(ManualChoiceError, match="no site 'denver'"):
        world.monitor.failover("sip", "denver")
    with pytest.raises(ManualChoiceError, match="unknown service"):
        world.monitor.failback("ntp")
    world.behaviour["sip@chicago"] = "down"
    world.run(4)
    with pytest.raises(ManualChoiceError, match="sip at chicago is down"):
        world.monitor.failback("sip")


def test_manual_failback_mode_stays_on_the_backup_after_recovery(world: World) -> None:
    world.behaviour["sip@chicago"] = "down"
    world.run(3)
    assert world.active.current.site_of("sip") == "virginia"
    world.behaviour["sip@chicago"] = "up"
    world.run(600)
    assert world.active.current.site_of("sip") == "virginia"


def test_auto_failback_after_hold_down_and_relapse_cancels_it() -> None:
    w = World(failback="auto", hold_down=10.0)
    w.monitor.start()
    w.run(3)
    w.behaviour["sip@chicago"] = "down"
    w.run(3)
    assert w.active.current.site_of("sip") == "virginia"
    w.behaviour["sip@chicago"] = "up"
    w.run(8)
    w.behaviour["sip@chicago"] = "hang"  # one lost probe: the hold-down starts again
    w.run(1)
    w.behaviour["sip@chicago"] = "up"
    w.run(9)
    assert w.active.current.site_of("sip") == "virginia"
    w.run(3)
    assert w.active.current.site_of("sip") == "chicago"


def test_stop_ends_the_rounds(world: World) -> None:
    world.monitor.stop()
    count = len(world.probed)
    world.run(5)
    assert len(world.probed) == count


def test_a_starved_monitor_fails_nothing_over(world: World, log_events) -> None:
    """The issue: phones held every descriptor, every probe failed with EMFILE, every target
    went down. Probes not made are no verdict: targets stay up, nothing switches."""
    for name in ("sip@chicago", "stun@chicago", "sip@virginia"):
        world.behaviour[name] = "starved"
    world.run(10)
    assert world.active.current.generation == 1
    assert {world.state(name) for name in world.behaviour} == {"up"}
    target = world.monitor.status()["targets"]["sip@chicago"]
    assert target["state"] == "up" and target["consecutive_failures"] == 0
    assert target["last"]["cause"] == "local"
    assert target["last"]["detail"] == "out of file descriptors (EMFILE)"
    (warning,) = [e for e in log_events() if e["event"] == "probes_not_made"]
    assert warning["level"] == "warning"
    assert warning["targets"] == ["sip@chicago", "sip@virginia", "stun@chicago"]
    assert warning["reason"] == "out of file descriptors (EMFILE)"
    assert not [e for e in log_events() if e["event"] in ("target_state", "switch")]
    for name in world.behaviour:
        world.behaviour[name] = "up"
    world.run(2)
    (back,) = [e for e in log_events() if e["event"] == "probes_made_again"]
    assert back["targets"] == ["sip@chicago", "sip@virginia", "stun@chicago"]
    assert world.monitor.status()["targets"]["sip@chicago"]["last"]["cause"] == "target"


def test_a_starved_target_still_falls_on_its_own_failures(world: World) -> None:
    """Rounds not made in between neither hide nor add failures of the target."""
    for behaviour in ("down", "starved", "down", "starved", "starved", "down"):
        world.behaviour["sip@chicago"] = behaviour
        world.run(1)
    assert world.state("sip@chicago") == "down"
    assert world.active.current.site_of("sip") == "virginia"


def test_a_failback_to_the_active_site_moves_and_counts_nothing(world: World, log_events) -> None:
    """Break-it pass: a failback of a service already on its primary counted a switch."""
    generation = world.active.current.generation
    world.monitor.failback("sip")
    assert world.active.current.generation == generation
    assert sum(world.monitor.switches.values()) == 0
    events = [e["event"] for e in log_events()]
    assert "switch" not in events and "switch_not_needed" in events


def test_a_new_probe_deadline_keeps_what_the_monitor_knows(world: World) -> None:
    """Break-it pass: a reload changing [monitor] timeout reset every target to unknown, so
    nothing could switch for a few rounds."""
    kept = [
        Target(t.service, t.site, t.description, t.probe, (t.spec, 0.5))
        for t in world.monitor.targets
    ]
    world.monitor.reconfigure(kept, list(SITES), settings(timeout=0.5))
    assert {world.state(t.name) for t in kept} == {"up"}
    moved = [Target(t.service, t.site, t.description, t.probe, ("elsewhere", 0.5)) for t in kept]
    world.monitor.reconfigure(moved, list(SITES), settings(timeout=0.5))
    assert {world.state(t.name) for t in moved} == {"unknown"}  # a new address: a new target
