"""xprov.cluster.etcd against real etcd 3.4 members on loopback (tests/etcd.py), on a Twisted
reactor the test turns itself: reads and writes, compare-and-swap, leases, watches, the member
the client talks to killed or frozen, authentication, TLS, the reply bound.

Every test ends with its clients closed and nothing left in the reactor (no socket, no timer).
"""

from __future__ import annotations

import os
import ssl
import time
from pathlib import Path

import pytest
from twisted.internet.task import LoopingCall

from tests.certs import authority, issued
from tests.etcd import EtcdCluster, HandReactor
from tests.helpers import free_port
from xprov.cluster.etcd import (
    MAX_REPLY_BYTES,
    Etcd,
    EtcdError,
    Event,
    EventKind,
    KeyValue,
)

pytestmark = pytest.mark.peers

TIMEOUT = 1.0  # seconds per call and member (the default is 2)
WRITES = 20  # keys the writer puts in a fault test, 5 of them before the fault
PASSWORD = "etcd-Root-Secret-42"


@pytest.fixture
def hand():
    hand = HandReactor()
    yield hand
    hand.close()


@pytest.fixture
def etcd(etcd_cluster: EtcdCluster):
    yield etcd_cluster
    etcd_cluster.heal()


@pytest.fixture
def connect(hand: HandReactor):
    """Make clients; after the test, close them and check the reactor is left clean."""
    clients: list[Etcd] = []

    def connect(endpoints: list[str], **options) -> Etcd:
        client = Etcd(hand.reactor, endpoints, options.pop("timeout", TIMEOUT), **options)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        hand.result(client.close())
    try:
        hand.until(lambda: not hand.left(), 10, "clean reactor")
    except AssertionError:
        raise AssertionError(f"left in the reactor after close: {hand.left()}") from None


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> bytes:
    return f"/xprov-test/{request.node.name}/".encode()


def put_all(hand: HandReactor, client: Etcd, keys: list[bytes]) -> tuple[dict[int, bytes], int]:
    """Put each key (its value: the key); a put the cluster refused (an election) is made
    again, within 30 s. The revision of each put that succeeded, and the refusals."""
    done, refused = {}, 0
    deadline = time.monotonic() + 30
    for key in keys:
        while True:
            try:
                done[hand.result(client.put(key, key))] = key
                break
            except EtcdError:
                refused += 1
                assert time.monotonic() < deadline, "the cluster refused puts for 30 s"
    return done, refused


def test_put_read_replace_delete(etcd, hand, connect, prefix) -> None:
    client = connect(etcd.endpoints)
    first = hand.result(client.put(prefix + b"a", b"1"))
    second = hand.result(client.put(prefix + b"b", b"\x00\xff binary"))
    hand.result(client.put(prefix[:-1] + b"-outside", b"x"))  # shares all but the last byte

    snapshot = hand.result(client.read_prefix(prefix))
    assert snapshot.revision >= second > first
    assert snapshot.kvs == {
        prefix + b"a": KeyValue(prefix + b"a", b"1", first, first, 0),
        prefix + b"b": KeyValue(prefix + b"b", b"\x00\xff binary", second, second, 0),
    }
    assert hand.result(client.replace(prefix + b"a", b"2", first - 1)) is False
    assert hand.result(client.replace(prefix + b"a", b"2", first)) is True
    assert hand.result(client.replace(prefix + b"new", b"n", 0)) is True  # absent: taken
    assert hand.result(client.replace(prefix + b"new", b"m", 0)) is False  # present now
    deleted = hand.result(client.delete(prefix + b"a"))

    after = hand.result(client.read_prefix(prefix))
    assert after.revision == deleted
    assert {key: kv.value for key, kv in after.kvs.items()} == {
        prefix + b"b": b"\x00\xff binary",
        prefix + b"new": b"n",
    }
    assert hand.result(client.read_prefix(prefix + b"none/")).kvs == {}


def test_racing_replaces_one_wins(etcd, hand, connect, prefix) -> None:
    """Two instances, through two members, replace the same revision of a key: one wins."""
    key = prefix + b"leader"
    one = connect(etcd.endpoints)
    other = connect(etcd.endpoints[1:] + etcd.endpoints[:1])
    revision = hand.result(one.put(key, b"nobody"))

    racing = [one.replace(key, b"one", revision), other.replace(key, b"other", revision)]
    results = [hand.result(call) for call in racing]

    assert sorted(results) == [False, True]
    winner = b"one" if results[0] else b"other"
    assert hand.result(one.read_prefix(prefix)).kvs[key].value == winner


def test_a_lease_kept_alive_holds_its_key_the_other_expires(etcd, hand, connect, prefix) -> None:
    client = connect(etcd.endpoints)
    kept, dropped = hand.result(client.grant(2)), hand.result(client.grant(2))
    hand.result(client.put(prefix + b"kept", b"k", kept))
    hand.result(client.put(prefix + b"dropped", b"d", dropped))
    assert hand.result(client.keepalive(kept)) == 2  # the full TTL again, seconds
    snapshot = hand.result(client.read_prefix(prefix))
    assert snapshot.kvs[prefix + b"kept"].lease == kept
    seen: list[Event] = []
    watch = client.watch(prefix, snapshot.revision + 1, seen.extend)
    keeping = LoopingCall(client.keepalive, kept)
    keeping.clock = hand.reactor
    keeping.start(0.5)

    hand.until(lambda: seen, 15, "the dropped lease's expiry")

    keeping.stop()
    assert [(event.kind, event.kv.key) for event in seen] == [
        (EventKind.DELETE, prefix + b"dropped")
    ]
    assert list(hand.result(client.read_prefix(prefix)).kvs) == [prefix + b"kept"]
    assert hand.result(client.keepalive(dropped)) == 0  # gone
    hand.result(client.revoke(dropped))  # gone already: no error
    hand.result(client.revoke(kept))
    assert hand.result(client.read_prefix(prefix)).kvs == {}
    assert hand.result(client.keepalive(kept)) == 0
    watch.cancel()


def test_watch_delivers_puts_and_deletes_in_order(etcd, hand, connect, prefix) -> None:
    client = connect(etcd.endpoints)
    start = hand.result(client.read_prefix(prefix)).revision + 1
    seen: list[Event] = []
    watch = client.watch(prefix, start, seen.extend)
    revisions = [
        hand.result(client.put(prefix + b"a", b"1")),
        hand.result(client.put(prefix + b"b", b"2")),
        hand.result(client.delete(prefix + b"a")),
        hand.result(client.put(prefix + b"a", b"3")),
    ]
    hand.result(client.put(prefix[:-1] + b"-outside", b"x"))

    hand.until(lambda: len(seen) >= 4, 10, "four events")

    assert [(e.kind, e.kv.key, e.kv.value, e.kv.mod_revision) for e in seen] == [
        (EventKind.PUT, prefix + b"a", b"1", revisions[0]),
        (EventKind.PUT, prefix + b"b", b"2", revisions[1]),
        (EventKind.DELETE, prefix + b"a", b"", revisions[2]),
        (EventKind.PUT, prefix + b"a", b"3", revisions[3]),
    ]
    assert watch.revision == revisions[3]
    watch.cancel()
    hand.result(client.put(prefix + b"late", b"x"))
    assert len(seen) == 4


def test_watch_from_a_compacted_revision_delivers_the_difference(
    etcd, hand, connect, prefix
) -> None:
    client = connect(etcd.endpoints)
    hand.result(client.put(prefix + b"a", b"1"))
    hand.result(client.put(prefix + b"b", b"1"))
    known = hand.result(client.read_prefix(prefix))
    c = hand.result(client.put(prefix + b"c", b"1"))
    b = hand.result(client.put(prefix + b"b", b"2"))
    hand.result(client.delete(prefix + b"a"))
    now = hand.result(client.read_prefix(prefix)).revision
    etcd.etcdctl("compact", str(now))  # the watch's start revision is gone
    seen: list[Event] = []

    watch = client.watch(prefix, known.revision + 1, seen.extend, known=known.kvs)
    hand.until(lambda: len(seen) >= 3, 10, "the difference")
    d = hand.result(client.put(prefix + b"d", b"1"))
    hand.until(lambda: len(seen) >= 4, 10, "the next put")

    assert [(e.kind, e.kv.key, e.kv.value, e.kv.mod_revision) for e in seen] == [
        (EventKind.PUT, prefix + b"c", b"1", c),
        (EventKind.PUT, prefix + b"b", b"2", b),
        (EventKind.DELETE, prefix + b"a", b"", now),  # at the re-read's revision
        (EventKind.PUT, prefix + b"d", b"1", d),
    ]
    watch.cancel()


@pytest.mark.parametrize("fault", ["kill", "pause"])
@pytest.mark.parametrize("role", ["follower", "leader"])
def test_member_lost_calls_and_watch_move_on(etcd, hand, connect, prefix, role, fault) -> None:
    """The member the client and its watch talk to is killed (its port closes) or frozen
    (SIGSTOP: silence): puts go on through the next member, the watch resumes there, and every
    put is delivered once, in order."""
    leader = etcd.wait_leader()
    target = leader if role == "leader" else (leader + 1) % len(etcd.members)
    endpoints = etcd.endpoints[target:] + etcd.endpoints[:target]
    client = connect(endpoints)
    snapshot = hand.result(client.read_prefix(prefix))
    seen: list[Event] = []
    watch = client.watch(prefix, snapshot.revision + 1, seen.extend)
    keys = [prefix + b"%02d" % n for n in range(WRITES)]
    before, _ = put_all(hand, client, keys[:5])
    hand.until(lambda: len(seen) == 5, 10, "the first five events")
    assert watch.endpoint == endpoints[0]

    getattr(etcd, fault)(target)
    after, refused = put_all(hand, client, keys[5:])
    put = {**before, **after}
    hand.until(lambda: set(put) <= {e.kv.mod_revision for e in seen}, 30, "every put watched")

    assert watch.endpoint != endpoints[0]
    assert client.current_endpoint != endpoints[0]
    revisions = [event.kv.mod_revision for event in seen]
    assert revisions == sorted(set(revisions)), "out of order or twice"
    assert all(e.kind is EventKind.PUT and e.kv.value == e.kv.key for e in seen)
    assert {event.kv.key for event in seen} == set(keys)
    if role == "follower":  # a leader remains: no put refused, exactly one event per put
        assert refused == 0
        assert len(seen) == WRITES
    watch.cancel()


def test_no_member_answers(hand, connect) -> None:
    endpoints = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]
    client = connect(endpoints)
    with pytest.raises(EtcdError) as refused:
        hand.result(client.put(b"/k", b"v"))
    message = str(refused.value)
    assert message.startswith("/v3/kv/put: no etcd member answered")
    assert all(f"{endpoint}: " in message for endpoint in endpoints)
    assert "refused" in message


def test_a_reply_above_the_bound_is_refused_unread(etcd, hand, connect, prefix) -> None:
    client = connect(etcd.endpoints)
    value = os.urandom(1_100_000)  # etcd takes up to 1.5 MiB a request; base64 makes 4/3
    for n in range(3):
        hand.result(client.put(prefix + b"%d" % n, value))

    with pytest.raises(EtcdError) as refused:
        hand.result(client.read_prefix(prefix))

    assert f"bigger than {MAX_REPLY_BYTES}" in str(refused.value)
    assert client.endpoints[0] in str(refused.value)
    for n in range(3):
        hand.result(client.delete(prefix + b"%d" % n))
    assert hand.result(client.read_prefix(prefix)).kvs == {}  # the client still works


# Authentication: a one-member cluster of its own with auth enabled.


@pytest.fixture(scope="module")
def auth_etcd(tmp_path_factory: pytest.TempPathFactory):
    with EtcdCluster(tmp_path_factory.mktemp("etcd-auth"), members=1) as cluster:
        cluster.etcdctl("user", "add", f"root:{PASSWORD}")
        cluster.etcdctl("auth", "enable")
        yield cluster
        cluster.heal()


def test_auth_token_renewed_and_watch_resumed_after_a_restart(
    auth_etcd, hand, connect, prefix
) -> None:
    client = connect(auth_etcd.endpoints, user="root", password=PASSWORD)
    snapshot = hand.result(client.read_prefix(prefix))
    seen: list[Event] = []
    watch = client.watch(prefix, snapshot.revision + 1, seen.extend)
    put = [hand.result(client.put(prefix + b"a", b"1"))]
    hand.until(lambda: seen, 10, "an event")
    token = client._token
    # A password set (to the same) invalidates the user's tokens.
    root = f"root:{PASSWORD}"
    auth_etcd.etcdctl("user", "passwd", "root", "--interactive=false", user=root, stdin=PASSWORD)

    put.append(hand.result(client.put(prefix + b"a", b"2")))

    assert client._token not in (None, token)
    auth_etcd.kill(0)  # the watch's stream breaks; the member is back with its data
    auth_etcd.start(0)
    put.append(hand.result(client.put(prefix + b"a", b"3")))
    hand.until(lambda: len(seen) == 3, 20, "the events around the restart")
    assert [e.kv.mod_revision for e in seen] == put
    watch.cancel()
    log = auth_etcd.members[0].read_log()
    assert PASSWORD not in log


@pytest.mark.parametrize("user", ["root", "nobody"])
def test_auth_refused_names_the_member_not_the_password(auth_etcd, hand, connect, user) -> None:
    wrong = "wrong-Password-77"
    client = connect(auth_etcd.endpoints, user=user, password=wrong)
    with pytest.raises(EtcdError) as refused:
        hand.result(client.put(b"/k", b"v"))

    message = str(refused.value)
    assert message.startswith(f"{auth_etcd.endpoints[0]}/v3/auth/authenticate: ")
    assert "authentication failed" in message
    assert refused.value.code == 3  # gRPC INVALID_ARGUMENT: etcd's answer, not tried elsewhere
    assert wrong not in message and PASSWORD not in message
    assert client._token is None


def test_auth_required_without_credentials(auth_etcd, hand, connect) -> None:
    client = connect(auth_etcd.endpoints)
    with pytest.raises(EtcdError, match="user name is empty"):
        hand.result(client.read_prefix(b"/"))


# TLS: a one-member cluster that requires client certificates.


@pytest.fixture(scope="module")
def tls_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("etcd-pki")
    ca = authority(directory, "etcd-ca")
    server = issued(directory, "etcd-server", ca, "/CN=etcd", "IP:127.0.0.1")
    client = issued(directory, "xprov", ca, "/CN=xprov")
    rogue = authority(directory, "rogue-ca")
    return {
        "ca": ca[0],
        "server": server[0],
        "server_key": server[1],
        "client": client[0],
        "client_key": client[1],
        "rogue": rogue[0],
    }


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory: pytest.TempPathFactory, tls_pki: dict[str, Path]):
    pki = {name: str(path) for name, path in tls_pki.items()}
    extra = [
        *("--cert-file", pki["server"], "--key-file", pki["server_key"]),
        *("--trusted-ca-file", pki["ca"], "--client-cert-auth"),
    ]
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd-tls"), 1, extra, scheme="https")
    context = ssl.create_default_context(cafile=pki["ca"])
    context.load_cert_chain(pki["client"], pki["client_key"])
    cluster.status_context = context
    with cluster:
        yield cluster


def test_tls_with_a_client_certificate(tls_etcd, tls_pki, hand, connect, prefix) -> None:
    client = connect(
        tls_etcd.endpoints,
        ca=tls_pki["ca"],
        certificate=tls_pki["client"],
        private_key=tls_pki["client_key"],
    )
    revision = hand.result(client.put(prefix + b"a", b"1"))
    seen: list[Event] = []
    watch = client.watch(prefix, revision, seen.extend)
    hand.until(lambda: seen, 10, "an event over TLS")
    assert seen[0].kv.mod_revision == revision
    watch.cancel()


@pytest.mark.parametrize("wrong", ["no client certificate", "server not trusted"])
def test_tls_refused(tls_etcd, tls_pki, hand, connect, wrong) -> None:
    options = {"ca": tls_pki["ca"]}
    if wrong == "server not trusted":
        options = {
            "ca": tls_pki["rogue"],
            "certificate": tls_pki["client"],
            "private_key": tls_pki["client_key"],
        }
    client = connect(tls_etcd.endpoints, **options)
    with pytest.raises(EtcdError, match="no etcd member answered"):
        hand.result(client.put(b"/k", b"v"))
