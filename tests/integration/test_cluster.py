"""Issue 16 end to end: two xprov instances (chicago, virginia) and `xprov witness` agree on
failover through a real 3-member etcd cluster, probing a real Kamailio, coturn and MariaDB at
each site, on loopback (tests/cluster_world.py; the same rules on an etcd in memory:
tests/unit/test_cluster_node.py).

One world serves the module: each test starts from `ClusterWorld.restore` (every process
running, every target up, every service at chicago, no decision key). Paths are cut with
nftables in a table of our own (`inet xprov_partition`, output hook), by the unix group each
observer and each etcd member runs in (`meta skgid`, ClusterWorld(groups=True)); the table
goes after every test, whatever happened. Two runs of this module at once would share that
table and those groups: run one at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.cluster_world import ETCD_GROUPS, GROUPS, MEMBER, SERVICES, ClusterWorld, Instance
from tests.drill_world import SITES
from tests.helpers import wait_for, xprov

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="groups and nftables need root")

CHICAGO, VIRGINIA = SITES
PHONES = 10  # synthetic phones: odd ones Yealink T46G (<mac>.cfg), even ones Linksys SPA504G
MONITOR = {"interval": 1.0, "timeout": 1.0, "fall": 3, "rise": 2}  # the world's defaults
LEASE_TTL = 5  # [cluster] lease_ttl in the world
# A target is down fall x interval + timeout after it dies (4 s); a decision then takes one
# CAS and one watch event. The bound is that and room for a busy 2-core machine.
DETECTION = MONITOR["fall"] * MONITOR["interval"] + MONITOR["timeout"]
SWITCH_SECONDS = DETECTION + 26
# A whole site: an etcd election (1-3 s) and the lost observer's lease on top.
SITE_SECONDS = DETECTION + LEASE_TTL + 40
# A cut must hold for longer than any observer needs to see the other side down.
HOLD_SECONDS = DETECTION + 4
SAMPLE_PAUSE = 0.2  # between two samples of a held condition (pacing, not synchronisation)
FIRST_PAUSE = 0.001  # between two connection attempts to a server that is starting
TABLE = "xprov_partition"


def phone_file(index: int) -> str:
    mac = f"0015{index:08x}"
    return f"{mac}.cfg" if index % 2 else f"{mac}.xml"


YEALINK = [phone_file(i) for i in (1, 3, 5)]
LINKSYS = [phone_file(i) for i in (0, 2, 4)]


def server(body: bytes, service: str) -> str:
    """The `service` ("sip", "stun") server a per-device file points a phone to: host:port."""
    text = body.decode()
    if text.startswith("<flat-profile>"):  # Linksys
        tag = "Proxy_1_" if service == "sip" else "STUN_Server"
        found = re.search(rf"<{tag} [^>]*>([^<]*)</{tag}>", text)
        assert found, text
        return found.group(1)
    values = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    host, port = {
        "sip": ("account.1.sip_server.1.address", "account.1.sip_server.1.port"),
        "stun": ("static.sip.nat_stun.server", "static.sip.nat_stun.port"),
    }[service]
    return f"{values[host]}:{values[port]}"


def address(world: ClusterWorld, service: str, site: str) -> str:
    peer: Any = world.peers[(service, site)]
    return f"{peer.host}:{peer.port}"


def active(instance: Instance) -> dict[str, str]:
    """Service -> the site this instance serves ({} while it does not answer)."""
    return dict((instance.state().get("selection") or {}).get("active") or {})


def everywhere(world: ClusterWorld, service: str, site: str) -> bool:
    return all(active(world.instances[name]).get(service) == site for name in SITES)


def metrics(instance: Instance) -> str:
    client = instance.admin()
    request = urllib.request.Request(
        f"{client.url}/metrics", headers={"Authorization": f"Bearer {client.token}"}
    )
    with urllib.request.urlopen(request, timeout=client.timeout) as reply:
        text: str = reply.read().decode()
    return text


def gauge(text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in metrics"
    return float(found.group(1))


def since(instance: Instance, event: str, at: float) -> list[dict[str, Any]]:
    return [e for e in instance.events(event) if e["at"] >= at]


def hold(
    sample: Callable[[], None], at_least: float, until: Callable[[], bool], deadline: float
) -> int:
    """Run `sample` (it asserts) over and over, for at least `at_least` seconds and until
    `until()` has been true once; fail past `deadline` seconds. The number of samples."""
    start, reached, samples = time.monotonic(), False, 0
    while True:
        sample()
        samples += 1
        reached = reached or until()
        elapsed = time.monotonic() - start
        if reached and elapsed >= at_least:
            return samples
        assert elapsed < deadline, f"the condition to end the hold not met in {deadline} s"
        time.sleep(SAMPLE_PAUSE)


def first_file(port: int, name: str, seconds: float) -> bytes:
    """`name` from loopback `port` over HTTP, asked every millisecond while nothing listens
    there (a phone's first request as the server starts): the first answer."""
    deadline = time.monotonic() + seconds
    for _ in range(int(seconds / FIRST_PAUSE)):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=5) as reply:
                body: bytes = reply.read()
                return body
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
        if time.monotonic() > deadline:
            break
        time.sleep(FIRST_PAUSE)
    raise AssertionError(f"nothing listened on {port} in {seconds} s")


class Nft:
    """Our nftables table: rules on the output hook (every packet a local process sends)."""

    @staticmethod
    def apply(rules: list[str]) -> None:
        Nft.remove()
        body = "\n".join(rules)
        ruleset = (
            f"table inet {TABLE} {{\n chain output {{\n"
            f"  type filter hook output priority 0; policy accept;\n{body}\n }}\n}}\n"
        )
        subprocess.run(["nft", "-f", "-"], input=ruleset, text=True, check=True, timeout=30)

    @staticmethod
    def remove() -> None:
        subprocess.run(["nft", "delete", "table", "inet", TABLE], capture_output=True, timeout=30)

    @staticmethod
    def dropped() -> int:
        """Packets dropped so far by our rules' counters."""
        done = subprocess.run(
            ["nft", "list", "table", "inet", TABLE], capture_output=True, text=True, timeout=30
        )
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", done.stdout))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterWorld]:
    Nft.remove()
    cluster = ClusterWorld(tmp_path_factory.mktemp("cluster"), PHONES, MONITOR, groups=True)
    try:
        yield cluster.start()
    finally:
        Nft.remove()
        cluster.stop()


@pytest.fixture
def fresh(world: ClusterWorld) -> Iterator[ClusterWorld]:
    """The world as it started: every process running, all at chicago, no decision key."""
    world.restore()
    try:
        yield world
    finally:
        Nft.remove()


def gid(world: ClusterWorld, group: str) -> int:
    return world.gids[group]


def ports(world: ClusterWorld, site: str) -> list[int]:
    """Every port a site's services and etcd member listen on."""
    member = world.etcd.members[MEMBER[site]]
    peer_port = int(member.peer.rsplit(":", 1)[1])
    services = [world.peers[(service, site)].port for service in SERVICES]  # type: ignore[attr-defined]
    return [*services, member.client_port, peer_port]


def partition_rules(world: ClusterWorld) -> list[str]:
    """Chicago and virginia cut from each other, both still reaching the witness.

    A side's processes may not send to the other side's ports (its probes, its etcd calls,
    its member's raft traffic); and a connection both sides' processes have sent on (the
    raft stream one member dialed and the other answers on) is marked by both and dropped.
    """
    mark = {CHICAGO: "0x00100000", VIRGINIA: "0x00200000"}
    rules = []
    for site in SITES:
        groups = ", ".join(str(gid(world, g[site])) for g in (GROUPS, ETCD_GROUPS))
        other = next(s for s in SITES if s != site)
        targets = ", ".join(str(p) for p in ports(world, other))
        rules.append(f"  meta skgid {{ {groups} }} ct mark set ct mark or {mark[site]}")
        rules.append(
            f"  meta skgid {{ {groups} }} meta l4proto {{ tcp, udp }} th dport {{ {targets} }}"
            " counter drop"
        )
    rules.append("  ct mark and 0x00300000 == 0x00300000 counter drop")
    return rules


# -- 1. the primary softswitch lost ------------------------------------------------------


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_primary_softswitch_lost_every_instance_serves_the_backup(
    fresh: ClusterWorld, how: str
) -> None:
    """Kamailio at chicago killed (SIGKILL) or hung (SIGSTOP): one decision (epoch 1) moves
    sip to virginia on every instance, which serve the same bytes; stun and db stay."""
    world, kamailio = fresh, fresh.peers[("sip", CHICAGO)]
    at = time.time()
    if how == "killed":
        kamailio.kill()
    else:
        kamailio.pause()
    wait_for(lambda: everywhere(world, "sip", VIRGINIA), SWITCH_SECONDS, "sip at virginia")

    for name in (YEALINK[0], LINKSYS[0]):
        bodies = {i: world.instances[i].fetch(name) for i in SITES}
        assert bodies[CHICAGO] == bodies[VIRGINIA], name
        assert server(bodies[CHICAGO], "sip") == address(world, "sip", VIRGINIA)
        assert server(bodies[CHICAGO], "stun") == address(world, "stun", CHICAGO)

    # every observer has seen the majority (and so judged with it): still one decision
    def all_see_it_down() -> bool:
        observers = world.instances[CHICAGO].state()["cluster"]["observers"]
        return set(observers) == {*SITES, "witness"} and all(
            seen["targets"]["sip@chicago"] == "down" for seen in observers.values()
        )

    wait_for(all_see_it_down, SWITCH_SECONDS, "every observer's vote on sip@chicago")
    decisions = world.decisions()
    assert set(decisions) == {"sip"}
    assert (decisions["sip"]["site"], decisions["sip"]["epoch"]) == (VIRGINIA, 1)
    assert decisions["sip"]["manual"] is False
    written = [e for i in world.instances.values() for e in since(i, "decision_written", at)]
    assert [(e["service"], e["epoch"]) for e in written] == [("sip", 1)]
    for name in SITES:
        status = world.instances[name].state()
        assert status["selection"]["active"] == {"sip": VIRGINIA, "stun": CHICAGO, "db": CHICAGO}
        assert set(status["cluster"]["decisions"]) == {"sip"}
        assert [e["service"] for e in since(world.instances[name], "switch", at)] == ["sip"]


# -- 2. the whole primary site lost -------------------------------------------------------


def member_id(world: ClusterWorld, n: int) -> str:
    status = world.etcd.status(n)
    assert status is not None
    return format(int(status["header"]["member_id"]), "x")


def lead(world: ClusterWorld, n: int) -> None:
    """Make etcd member `n` the leader (etcdctl move-leader)."""
    if world.etcd.wait_leader() != n:
        world.etcd.etcdctl("move-leader", member_id(world, n))
    wait_for(lambda: world.etcd.wait_leader() == n, 30, f"m{n} leading")


@pytest.mark.parametrize("chicago_leads", [True, False], ids=["m0-leader", "m0-follower"])
def test_primary_site_lost_the_survivor_switches_every_service(
    fresh: ClusterWorld, chicago_leads: bool
) -> None:
    """Chicago's Kamailio, coturn, MariaDB, instance and etcd member killed together, with
    member 0 the etcd leader or not: virginia switches sip, stun and db, and serves every
    phone virginia's servers."""
    world = fresh
    lead(world, MEMBER[CHICAGO] if chicago_leads else MEMBER[VIRGINIA])
    at = world.lose_site(CHICAGO)
    survivor = world.instances[VIRGINIA]
    wait_for(
        lambda: active(survivor) == dict.fromkeys(SERVICES, VIRGINIA),
        SITE_SECONDS,
        "every service at virginia",
    )
    assert world.etcd.wait_leader() != MEMBER[CHICAGO]
    decisions = world.decisions()
    assert {s: (d["site"], d["epoch"], d["manual"]) for s, d in decisions.items()} == {
        s: (VIRGINIA, 1, False) for s in SERVICES
    }
    assert sorted(e["service"] for e in since(survivor, "switch", at)) == sorted(SERVICES)
    for name in YEALINK + LINKSYS:
        body = survivor.fetch(name)
        assert server(body, "sip") == address(world, "sip", VIRGINIA), name
        assert server(body, "stun") == address(world, "stun", VIRGINIA), name


# -- 3. a partition between the data centres ---------------------------------------------


def test_partition_between_data_centres_switches_nothing(fresh: ClusterWorld) -> None:
    """Chicago and virginia lose sight of each other (probes and etcd), the witness sees
    both: each instance's own probes see the other site down, yet the agreed view never
    does, both keep serving chicago for every service and no decision key is written."""
    world = fresh
    # the leader in one data centre: the other one's member loses it, and its instance
    # must go through the witness's member
    lead(world, MEMBER[VIRGINIA])
    at = time.time()
    Nft.apply(partition_rules(world))
    samples: list[dict[str, Any]] = []

    def sample() -> None:
        for name in SITES:
            status = world.instances[name].state()
            if not status:  # an admin request lost to a busy machine: no sample
                continue
            samples.append(status)
            assert status["selection"]["active"] == dict.fromkeys(SERVICES, CHICAGO), name
            cluster = status["cluster"]
            assert cluster["decisions"] == {}, name
            assert "down" not in cluster["agreed"].values(), (name, cluster["agreed"])
        assert world.decisions() == {}

    def each_sees_the_other_down() -> bool:
        for name in SITES:
            other = next(s for s in SITES if s != name)
            targets = world.instances[name].state().get("monitor", {}).get("targets", {})
            if any(targets.get(f"{s}@{other}", {}).get("state") != "down" for s in SERVICES):
                return False
        return True

    hold(sample, HOLD_SECONDS, each_sees_the_other_down, HOLD_SECONDS + SITE_SECONDS)
    assert Nft.dropped() > 0  # the cut was real
    assert {s["cluster"]["name"] for s in samples} == set(SITES)
    for instance in world.instances.values():
        assert since(instance, "decision_written", at) == []
        assert since(instance, "switch", at) == []
    # healed: every observer's published verdicts are all up again (a late put of the
    # partition's "the other site is down" once stayed in etcd for good)
    Nft.remove()
    wait_for(world.agreed, SITE_SECONDS, "every observer's verdicts up again")


# -- 4. etcd unreachable from one instance -----------------------------------------------


def test_instance_cut_from_etcd_keeps_the_last_decision(fresh: ClusterWorld) -> None:
    """Virginia's instance cannot reach any etcd member: it says it has no agreement (status,
    log, metric, `xprov status`), never switches alone (not even when its own probes see
    chicago's Kamailio down while the others switch), refuses a cluster-wide failover with
    the hint to use --local, takes a --local one; healed, it follows the decision again."""
    world = fresh
    cut, other = world.instances[VIRGINIA], world.instances[CHICAGO]
    clients = ", ".join(str(m.client_port) for m in world.etcd.members)
    at = time.time()
    Nft.apply(
        [f"  meta skgid {gid(world, GROUPS[VIRGINIA])} tcp dport {{ {clients} }} counter drop"]
    )
    wait_for(
        lambda: cut.state().get("cluster", {}).get("agreement") == "lost",
        SWITCH_SECONDS,
        "virginia without agreement",
    )
    assert len(since(cut, "agreement_lost", at)) == 1
    assert gauge(metrics(cut), "xprov_cluster_agreement") == 0
    assert gauge(metrics(other), "xprov_cluster_agreement") == 1
    text = xprov(cut.config, "status")
    assert text.returncode == 0 and "NO AGREEMENT" in text.stdout, text.stdout

    killed = time.time()
    world.peers[("sip", CHICAGO)].kill()
    wait_for(lambda: active(other).get("sip") == VIRGINIA, SWITCH_SECONDS, "chicago at virginia")

    def sample() -> None:
        status = cut.state()
        assert status["selection"]["active"] == dict.fromkeys(SERVICES, CHICAGO)
        assert status["cluster"]["agreement"] == "lost"

    def own_probes_see_it_down() -> bool:
        return cut.state()["monitor"]["targets"]["sip@chicago"]["state"] == "down"

    # its own verdict is down for several rounds, and it still serves chicago
    hold(sample, DETECTION + 3 * MONITOR["interval"], own_probes_see_it_down, SITE_SECONDS)
    assert since(cut, "switch", killed) == [] and since(cut, "decision_written", at) == []
    assert world.decisions()["sip"]["site"] == VIRGINIA
    assert server(cut.fetch(YEALINK[0]), "sip") == address(world, "sip", CHICAGO)

    refused = xprov(cut.config, "failover", "sip", "--to", VIRGINIA)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "refused (409)" in refused.stderr and "--local" in refused.stderr, refused.stderr
    assert "no agreement" in refused.stderr
    assert active(cut)["sip"] == CHICAGO and world.decisions()["sip"]["epoch"] == 1

    local = xprov(cut.config, "failover", "stun", "--to", VIRGINIA, "--local")
    assert local.returncode == 0, local.stderr
    assert active(cut) == {"sip": CHICAGO, "stun": VIRGINIA, "db": CHICAGO}
    assert cut.state()["cluster"]["local_overrides"] == {"stun": VIRGINIA}
    assert active(other)["stun"] == CHICAGO and "stun" not in world.decisions()
    assert server(cut.fetch(LINKSYS[0]), "stun") == address(world, "stun", VIRGINIA)
    text = xprov(cut.config, "status")
    assert "LOCAL OVERRIDE: stun at virginia on this instance only" in text.stdout, text.stdout

    assert Nft.dropped() > 0
    healed = time.time()
    Nft.remove()

    def rejoined() -> bool:
        status = cut.state()
        return status.get("cluster", {}).get("agreement") == "ok" and status["selection"][
            "active"
        ] == {"sip": VIRGINIA, "stun": VIRGINIA, "db": CHICAGO}

    # its watch may apply the decision a moment before a renewal says the link is back
    wait_for(rejoined, SITE_SECONDS, "virginia agreeing and applying the decision")
    status = cut.state()["cluster"]
    assert status["decisions"]["sip"]["epoch"] == 1
    assert status["local_overrides"] == {"stun": VIRGINIA}
    assert len(since(cut, "agreement_regained", healed)) == 1
    assert gauge(metrics(cut), "xprov_cluster_agreement") == 1
    assert "NO AGREEMENT" not in xprov(cut.config, "status").stdout
    released = xprov(cut.config, "failback", "stun", "--local")
    assert released.returncode == 0, released.stderr
    assert active(cut) == {"sip": VIRGINIA, "stun": CHICAGO, "db": CHICAGO}
    assert world.decisions()["sip"]["epoch"] == 1 and "stun" not in world.decisions()


# -- 5. manual failover -------------------------------------------------------------------


def test_manual_failover_is_applied_by_all_and_survives_a_restart(fresh: ClusterWorld) -> None:
    """`xprov failover` through chicago's instance moves both; one to a site the majority sees
    down is refused with the reason; a restarted instance serves the manual choice from its
    first answer, before its own probes know anything."""
    world = fresh
    chicago, virginia = world.instances[CHICAGO], world.instances[VIRGINIA]
    done = xprov(chicago.config, "failover", "sip", "--to", VIRGINIA)
    assert done.returncode == 0, done.stderr
    wait_for(lambda: everywhere(world, "sip", VIRGINIA), SWITCH_SECONDS, "sip at virginia")
    decision = world.decisions()["sip"]
    assert (decision["site"], decision["epoch"], decision["manual"]) == (VIRGINIA, 1, True)
    assert decision["by"] == "operator via chicago"
    bodies = {name: world.instances[name].fetch(YEALINK[0]) for name in SITES}
    assert bodies[CHICAGO] == bodies[VIRGINIA]
    assert server(bodies[CHICAGO], "sip") == address(world, "sip", VIRGINIA)

    world.peers[("stun", VIRGINIA)].kill()
    wait_for(
        lambda: chicago.state()["cluster"]["agreed"]["stun@virginia"] == "down",
        SWITCH_SECONDS,
        "stun@virginia down by majority",
    )
    refused = xprov(chicago.config, "failover", "stun", "--to", VIRGINIA)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "refused (409): stun at virginia is down" in refused.stderr, refused.stderr
    assert "use force" in refused.stderr
    assert set(world.decisions()) == {"sip"} and everywhere(world, "stun", CHICAGO)

    restarted = time.time()
    virginia.stop()
    with ThreadPoolExecutor(1) as pool:
        # asking from before it listens: the first file it serves, however early
        first = pool.submit(first_file, virginia.http, YEALINK[0], SWITCH_SECONDS)
        virginia.start()
        assert server(first.result(SWITCH_SECONDS), "sip") == address(world, "sip", VIRGINIA)
    served: list[str] = []

    def caught_up() -> bool:
        """Its phones' files from the first one on (their sip server noted), until its
        status says it follows the cluster again."""
        served.append(server(virginia.fetch(YEALINK[0]), "sip"))
        return virginia.state().get("cluster", {}).get("agreement") == "ok"

    wait_for(caught_up, SWITCH_SECONDS, "virginia back in the cluster")
    assert set(served) == {address(world, "sip", VIRGINIA)}, served
    status = virginia.state()
    assert status["selection"]["active"] == {"sip": VIRGINIA, "stun": CHICAGO, "db": CHICAGO}
    assert status["cluster"]["decisions"]["sip"]["manual"] is True
    # the decision read from etcd moved it, never its own probes
    switches = since(virginia, "switch", restarted)
    assert [(e["service"], e["by"]) for e in switches] == [("sip", "operator")]
    assert "decision 1 by operator via chicago" in switches[0]["reason"]
    assert virginia.fetch(YEALINK[0]) == chicago.fetch(YEALINK[0])
