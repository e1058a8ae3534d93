"""Issue 16: observers agreeing through etcd, on `task.Clock` with an etcd in memory (the
same node against a real 3-member etcd: tests/integration/test_cluster.py)."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from tests.memory_etcd import MemoryEtcd
from xprov.cluster.agreement import Choice, Verdict
from xprov.cluster.etcd import EtcdError, Event, EventKind, KeyValue
from xprov.cluster.node import Link, Node
from xprov.config import ClusterConfig, MonitorConfig
from xprov.monitor.loop import ManualChoiceError, Monitor, Target
from xprov.monitor.state import Health
from xprov.selection import ActiveSites

UP, DOWN, UNKNOWN = Health.UP, Health.DOWN, Health.UNKNOWN
SITES = ["chicago", "virginia"]
SETTINGS = MonitorConfig(True, 1.0, 0.5, 0.5, 3, 2, "manual", 300.0, frozenset({503}))


def monitor(clock: Clock) -> Monitor:
    targets = [
        Target("sip", site, f"sip udp {site}", lambda: succeed(None), (site,)) for site in SITES
    ]
    return Monitor(targets, ActiveSites(SITES, "chicago"), SITES, SETTINGS, clock)


class Observer:
    def __init__(self, etcd: MemoryEtcd, clock: Clock, name: str, role: str = "instance"):
        self.client = etcd.client()
        self.monitor = monitor(clock)
        settings = ClusterConfig("etcd", name, ("http://127.0.0.1:2379",), lease_ttl=5, timeout=1.0)
        self.node = Node(self.client, settings, self.monitor, clock, role, lambda: "abc123")
        self.node.start()

    def sees(self, chicago: Health, virginia: Health) -> None:
        self.node.observed(
            {
                "sip@chicago": Verdict(chicago, 0.0, f"chicago {chicago.value}"),
                "sip@virginia": Verdict(virginia, 0.0, f"virginia {virginia.value}"),
            }
        )

    @property
    def active(self) -> str:
        return self.monitor.active.current.site_of("sip")


class World:
    """A 3-observer cluster: an instance per data centre (`a`, `b`) and a witness (`w`)."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.etcd = MemoryEtcd(self.clock)
        self.a = Observer(self.etcd, self.clock, "chicago")
        self.b = Observer(self.etcd, self.clock, "virginia")
        self.w = Observer(self.etcd, self.clock, "witness", "witness")
        self.all = (self.a, self.b, self.w)


@pytest.fixture
def world() -> World:
    return World()


def decision(etcd: MemoryEtcd) -> Choice | None:
    kv = etcd.kvs.get(b"/xprov/decision/sip")
    return None if kv is None else Choice.decode(kv.value)


def test_every_observer_publishes_under_its_lease(world: World) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    assert sorted(a.node.observers) == ["chicago", "virginia", "witness"]
    value = json.loads(world.etcd.kvs[b"/xprov/observer/witness"].value)
    assert value["role"] == "witness" and value["targets"]["sip@chicago"]["health"] == "up"
    assert all(o.node.link is Link.OK for o in (a, b, w)) and decision(world.etcd) is None


def test_one_observer_never_decides_alone(world: World) -> None:
    """The first to publish is a majority of one: `min_observers` (2) votes are needed."""
    a, b, _w = world.all
    a.sees(DOWN, UP)
    assert decision(world.etcd) is None and a.active == "chicago"
    b.sees(DOWN, UP)
    assert decision(world.etcd) is not None and a.active == "virginia"


def test_a_partition_between_the_data_centres_switches_nothing(world: World) -> None:
    a, b, w = world.all
    a.sees(UP, DOWN)
    b.sees(DOWN, UP)
    w.sees(UP, UP)
    assert decision(world.etcd) is None
    assert (a.active, b.active, w.active) == ("chicago", "chicago", "chicago")


def test_the_majority_decides_once_and_every_observer_applies_it(world: World) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    a.sees(DOWN, UP)  # one vote: nothing
    assert decision(world.etcd) is None and a.active == "chicago"
    b.sees(DOWN, UP)  # two of three
    choice = decision(world.etcd)
    assert choice is not None and (choice.site, choice.epoch, choice.manual) == (
        "virginia",
        1,
        False,
    )
    assert choice.by in ("chicago", "virginia", "witness")  # whoever saw the majority first
    w.sees(DOWN, UP)  # agrees with the key already written: no second write
    assert decision(world.etcd) == choice
    assert (a.active, b.active, w.active) == ("virginia", "virginia", "virginia")
    assert a.monitor.switches[("sip", "cluster")] == 1


def test_a_lost_site_is_carried_by_the_survivors(world: World) -> None:
    """Chicago's instance stops renewing its lease: its verdicts go with it."""
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    a.client.reachable = False  # the whole site, its instance included, is gone
    world.clock.advance(6)  # past the lease TTL: the survivors' renewals expire the lost lease
    assert "chicago" not in b.node.observers
    b.sees(DOWN, UP)
    assert decision(world.etcd) is None  # 1 of 2 live observers
    w.sees(DOWN, UP)
    assert decision(world.etcd) is not None and (b.active, w.active) == ("virginia", "virginia")
    assert a.active == "chicago" and a.node.link is Link.LOST  # it saw none of it


def test_without_etcd_an_observer_keeps_the_last_decision_and_says_so(
    world: World, log_events
) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(DOWN, UP)
    assert a.active == "virginia"
    a.client.reachable = False
    world.clock.advance(2)  # a renewal fails
    lost = [e for e in log_events() if e["event"] == "agreement_lost"]
    assert a.node.link is Link.LOST and [e["observer"] for e in lost] == ["chicago"]
    assert "the last decision stands" in lost[0]["effect"]
    a.sees(UP, DOWN)  # alone, it would switch back: it does not
    assert a.active == "virginia" and a.node.status()["agreement"] == "lost"
    with pytest.raises(ManualChoiceError, match="use --local"):
        a.node.failover("sip", "chicago")
    a.client.reachable = True
    world.clock.advance(2)
    assert a.node.link is Link.OK and a.active == "virginia"


def test_a_manual_choice_is_a_decision_for_every_instance_and_survives_a_restart(
    world: World,
) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    done = a.node.failover("sip", "virginia")
    assert done.called and (a.active, b.active, w.active) == ("virginia",) * 3
    choice = decision(world.etcd)
    assert choice is not None and choice.manual and choice.by == "operator via chicago"
    for observer in (a, b, w):
        observer.sees(DOWN, UP)
        observer.sees(UP, UP)  # the rule never moves a manual choice
    assert decision(world.etcd) == choice
    b.node.stop()
    restarted = Observer(world.etcd, world.clock, "virginia")
    assert restarted.active == "virginia"  # read from the key at start
    b.node.failback("sip")
    assert (a.active, restarted.active) == ("chicago", "chicago")
    assert decision(world.etcd) is not None and not decision(world.etcd).manual


def test_a_manual_choice_of_a_site_the_majority_does_not_see_up_is_refused(world: World) -> None:
    a, b, w = world.all
    a.sees(UP, DOWN)
    b.sees(UP, DOWN)
    w.sees(UP, UP)
    with pytest.raises(ManualChoiceError, match="sip at virginia is down"):
        a.node.failover("sip", "virginia")
    assert decision(world.etcd) is None
    a.node.failover("sip", "virginia", force=True)
    assert b.active == "virginia"


def test_a_local_override_holds_on_one_instance_until_released(world: World) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    with pytest.raises(ManualChoiceError, match="sip at virginia is unknown to this instance"):
        a.node.local_failover("sip", "virginia")  # its own probes have not seen it up
    a.node.local_failover("sip", "virginia", force=True)
    assert (a.active, b.active) == ("virginia", "chicago")
    assert a.node.status()["local_overrides"] == {"sip": "virginia"}
    a.node.local_failover("sip", None)
    assert a.active == "chicago"


def test_concurrent_writers_make_one_change(world: World, log_events) -> None:
    """Both instances decide from the same view at once: the second CAS loses. The writer
    logs its write even when the watch brought the decision before the write's answer."""
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(DOWN, UP)
    written = [e for e in log_events() if e["event"] == "decision_written"]
    assert [(e["service"], e["epoch"]) for e in written] == [("sip", 1)]
    puts = [kv for kv in world.etcd.kvs.values() if kv.key == b"/xprov/decision/sip"]
    assert len(puts) == 1 and decision(world.etcd) is not None and decision(world.etcd).epoch == 1


def test_an_unreadable_decision_is_logged_and_ignored(world: World, log_events) -> None:
    a = world.a
    world.etcd.put(b"/xprov/decision/sip", b"virginia please", 0)
    unreadable = [e for e in log_events() if e["event"] == "decision_unreadable"]
    assert a.active == "chicago" and len(unreadable) == 3  # one per observer


def test_status_shows_observers_and_whether_inventories_agree(world: World) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    status = a.node.status()
    assert status["inventories_agree"] is True and status["observers"]["witness"]["role"] == (
        "witness"
    )
    assert status["agreed"] == {"sip@chicago": "up", "sip@virginia": "up"}
    b.node.inventory = lambda: "def456"
    b.node.published = None
    b.sees(UP, UP)
    assert a.node.status()["inventories_agree"] is False


@pytest.mark.parametrize("reachable", [True, False])
def test_a_starting_node_tells_when_it_knows_what_to_serve(world: World, reachable: bool) -> None:
    """The moment a starting instance lets phones in (xprov/service.py): the decisions read
    and applied, or etcd found unreachable (the primary then stands); at once afterwards."""
    for observer in world.all:
        observer.sees(DOWN, UP)
    client, watched = world.etcd.client(), monitor(world.clock)
    client.reachable = reachable
    settings = ClusterConfig("etcd", "virginia", ("http://127.0.0.1:2379",), lease_ttl=5)
    node = Node(client, settings, watched, world.clock, "instance")
    known: list[str] = []
    node.when_known(lambda: known.append(watched.active.current.site_of("sip")))
    assert known == []  # not started: nothing known
    node.start()
    assert known == (["virginia"] if reachable else ["chicago"])
    node.when_known(lambda: known.append("at once"))
    assert known[1:] == ["at once"]


def test_a_renewal_older_than_an_answered_one_says_nothing_of_the_link(world: World) -> None:
    """Renewals overlap while etcd members time out: the late failure of one made before the
    link came back must not mark it lost again (tests/integration/test_cluster.py found it),
    nor a late reply about a lease since replaced expire the new one."""
    a = world.a
    for observer in world.all:
        observer.sees(UP, UP)
    pending: list[tuple[int, Deferred[int]]] = []

    def keepalive(lease: int) -> Deferred[int]:
        pending.append((lease, Deferred()))
        return pending[-1][1]

    a.client.keepalive = keepalive  # type: ignore[method-assign]
    world.clock.advance(2)  # a renewal, hanging on silent members
    world.clock.advance(2)  # the next one, answered first
    (lease, older), (_, newer) = pending
    newer.callback(5)
    older.errback(EtcdError("no etcd member answered"))
    assert a.node.link is Link.OK and a.node.lease == lease
    world.clock.advance(2)
    a.node.lease = lease + 1  # a new lease meanwhile: a late "expired" for the old one
    pending[-1][1].callback(0)
    assert a.node.lease == lease + 1 and a.node.link is Link.OK


def test_an_old_verdict_of_ours_applied_late_is_published_again(world: World, log_events) -> None:
    """A put that timed out on a member cut from the leader can be applied after a later
    one, once healed (tests/integration/test_cluster.py found a partition's "virginia down"
    left in etcd for good): the next round says the current verdicts again."""
    a, b, _w = world.all
    a.sees(UP, DOWN)  # during a partition
    old = world.etcd.kvs[b"/xprov/observer/chicago"].value
    a.sees(UP, UP)  # healed
    lease = world.etcd.kvs[b"/xprov/observer/chicago"].lease
    world.etcd.put(b"/xprov/observer/chicago", old, lease)  # the old put, applied late
    assert b.node.observers["chicago"].verdicts["sip@virginia"].health is DOWN
    stale = [e for e in log_events() if e["event"] == "observer_key_stale"]
    assert [e["observer"] for e in stale] == ["chicago"]
    a.sees(UP, UP)  # the next round: the same verdicts, published again
    assert b.node.observers["chicago"].verdicts["sip@virginia"].health is UP
    puts = world.etcd.revision
    a.sees(UP, UP)  # and then only changes, as before
    assert world.etcd.revision == puts


def test_a_bad_decision_value_never_freezes_the_service(world: World, log_events) -> None:
    """Break-it pass: garbage (or a site that does not exist, or an old epoch) in a decision
    key froze the service's failover: every CAS against it lost. The last good decision
    stands, status says why, and the next decision replaces the bad value."""
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    for value in (b"garbage", Choice("mars", 9, "x", "y", True, 1.0).encode()):
        world.etcd.put(b"/xprov/decision/sip", value, 0)
        assert a.active == "chicago" and "sip" in a.node.status()["unreadable_decisions"]
    for observer in (a, b, w):
        observer.sees(DOWN, UP)
    choice = decision(world.etcd)
    assert choice is not None and choice.site == "virginia" and a.active == "virginia"
    assert a.node.status()["unreadable_decisions"] == {}
    world.etcd.put(
        b"/xprov/decision/sip", Choice("chicago", 1, "replay", "y", False, 1.0).encode(), 0
    )
    assert a.active == "virginia"  # an epoch not above the last is not applied


def test_one_bad_key_costs_no_other_event_of_its_batch(world: World) -> None:
    a = world.a
    good = Choice("virginia", 1, "operator chose virginia", "op", True, 1.0)
    broken = KeyValue(b"/xprov/decision/sip", b"\xff", 5, 5, 0)
    fine = KeyValue(b"/xprov/decision/sip", good.encode(), 6, 5, 0)
    a.node._take([Event(EventKind.PUT, broken), Event(EventKind.PUT, fine)])
    assert a.active == "virginia"


def test_keys_not_under_a_lease_or_badly_named_are_no_observers(world: World) -> None:
    """Break-it pass: lease-less keys counted as live observers for ever (and could block
    a majority); a forged key's texts reached terminals unchecked."""
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    forged = {
        "role": "instance",
        "targets": {"sip@chicago": {"health": "down", "since": 0, "reason": ""}},
    }
    world.etcd.put(b"/xprov/observer/evil", json.dumps(forged).encode(), 0)
    world.etcd.put(b"/xprov/observer/", json.dumps(forged).encode(), 7)
    assert sorted(a.node.observers) == ["chicago", "virginia", "witness"]
    with pytest.raises(ValueError, match="control character"):
        Choice.decode(Choice("chicago", 1, "fine\x1b[2J", "x", False, 1.0).encode())
    with pytest.raises(ValueError, match="epoch"):
        Choice.decode(b'{"site":"chicago","epoch":"7","reason":"","by":"","manual":false,"at":1}')


def test_our_own_key_deleted_by_hand_is_published_again(world: World) -> None:
    a, b, w = world.all
    for observer in (a, b, w):
        observer.sees(UP, UP)
    world.etcd.delete(b"/xprov/observer/chicago")
    a.sees(UP, UP)
    assert b"/xprov/observer/chicago" in world.etcd.kvs
