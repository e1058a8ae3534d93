"""xprov.cluster.etcd's calls and watches on a memory clock, with the HTTP exchange replaced by
replies the test gives: timeouts and the move to the next member, each member once per call,
token renewal, a watch's liveness read, resume revision, compaction and retry pause."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.iweb import UNKNOWN_LENGTH

from xprov.cluster.etcd import (
    WATCH_RETRY_PAUSE,
    Etcd,
    EtcdError,
    Event,
    EventKind,
    KeyValue,
)

MEMBERS = ["http://m0:2379", "http://m1:2379", "http://m2:2379"]
TIMEOUT = 2.0
HEADER = {"revision": "9"}


class Transport:
    stopped = False

    def stopProducing(self) -> None:
        self.stopped = True


class Response:
    """A whole reply, delivered at once."""

    length = UNKNOWN_LENGTH

    def __init__(self, code: int, body: bytes) -> None:
        self.code, self.body = code, body

    def deliverBody(self, protocol) -> None:
        protocol.makeConnection(Transport())
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


class Stream:
    """A watch stream the test writes lines to."""

    code = 200
    length = UNKNOWN_LENGTH

    def deliverBody(self, protocol) -> None:
        self.protocol, self.transport = protocol, Transport()
        protocol.makeConnection(self.transport)

    def send(self, message: dict) -> None:
        self.protocol.dataReceived(json.dumps(message).encode() + b"\n")

    def result(self, **result: Any) -> None:
        self.send({"result": {"header": HEADER, **result}})


@dataclass
class Request:
    index: int
    path: str
    body: dict
    headers: dict
    response: Deferred = field(default_factory=Deferred)
    cancelled: bool = False

    def answer(self, reply: dict, code: int = 200) -> None:
        self.response.callback(Response(code, json.dumps(reply).encode()))

    def stream(self) -> Stream:
        stream = Stream()
        self.response.callback(stream)
        return stream


class Gateway:
    """Stands for the members: records each request; the test answers it or not."""

    def __init__(self) -> None:
        self.requests: list[Request] = []

    def __call__(self, index: int, path: str, body: dict, headers: dict) -> Deferred:
        request = Request(index, path, dict(body), dict(headers))

        def cancel(_: Deferred) -> None:
            request.cancelled = True

        request.response = Deferred(cancel)
        self.requests.append(request)
        return request.response

    @property
    def last(self) -> Request:
        return self.requests[-1]

    def seen(self) -> list[tuple[int, str]]:
        return [(r.index, r.path) for r in self.requests]


@pytest.fixture
def clock() -> MemoryReactorClock:
    return MemoryReactorClock()


@pytest.fixture
def gateway() -> Gateway:
    return Gateway()


def client_of(clock, gateway, **options) -> Etcd:
    client = Etcd(clock, MEMBERS, TIMEOUT, **options)
    client._request = gateway  # the HTTP exchange: the test's
    return client


def outcome(deferred: Deferred) -> Any:
    box: list = []
    deferred.addBoth(box.append)
    assert box, "not settled"
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


def test_a_silent_member_is_left_after_the_timeout(clock, gateway) -> None:
    client = client_of(clock, gateway)
    put = client.put(b"k", b"v")
    clock.advance(TIMEOUT - 0.01)
    assert gateway.seen() == [(0, "/v3/kv/put")]
    assert not put.called

    clock.advance(0.01)

    assert gateway.requests[0].cancelled  # its connection dropped
    assert gateway.seen() == [(0, "/v3/kv/put"), (1, "/v3/kv/put")]
    gateway.last.answer({"header": HEADER})
    assert outcome(put) == 9
    assert client.current_endpoint == MEMBERS[1]
    client.delete(b"k")
    assert gateway.last.index == 1  # the next call starts at the member that answered


def test_each_member_once_per_call_then_an_error(clock, gateway) -> None:
    client = client_of(clock, gateway)
    read = client.read_prefix(b"/p/")
    clock.pump([TIMEOUT] * 3)

    with pytest.raises(EtcdError) as failed:
        outcome(read)

    assert [r.index for r in gateway.requests] == [0, 1, 2]
    message = str(failed.value)
    assert message.startswith("/v3/kv/range: no etcd member answered")
    assert [message.count(f"{member}: no answer in time") for member in MEMBERS] == [1, 1, 1]
    assert clock.getDelayedCalls() == []


def test_member_trouble_moves_on_the_clusters_answer_is_final(clock, gateway) -> None:
    client = client_of(clock, gateway)
    revoke = client.revoke(7)
    gateway.last.answer({"error": "etcdserver: no leader", "code": 14}, 503)
    assert gateway.seen() == [(0, "/v3/lease/revoke"), (1, "/v3/lease/revoke")]

    gateway.last.answer({"error": "etcdserver: permission denied", "code": 7}, 403)

    with pytest.raises(EtcdError) as refused:
        outcome(revoke)
    assert str(refused.value) == (
        "http://m1:2379/v3/lease/revoke: etcdserver: permission denied (code 7)"
    )
    assert refused.value.code == 7
    assert len(gateway.requests) == 2
    gone = client.revoke(8)
    gateway.last.answer({"error": "etcdserver: requested lease not found", "code": 5}, 404)
    assert outcome(gone) is None  # a lease already gone is no error


@pytest.mark.parametrize(
    "reply", [b"<html>proxy</html>", b"[]", b'{"header": {}}', b'{"no": "header"}']
)
def test_an_unusable_reply_moves_on(clock, gateway, reply: bytes) -> None:
    client = client_of(clock, gateway)
    put = client.put(b"k", b"v")
    gateway.last.response.callback(Response(200, reply))
    assert gateway.seen() == [(0, "/v3/kv/put"), (1, "/v3/kv/put")]
    gateway.last.answer({"header": HEADER})
    assert outcome(put) == 9


def test_the_token_is_renewed_once_per_call(clock, gateway) -> None:
    password = "s3cret-Etcd-pass"
    client = client_of(clock, gateway, user="root", password=password)
    invalid = ({"error": "etcdserver: invalid auth token", "code": 16}, 401)
    put = client.put(b"k", b"v")
    assert gateway.last.path == "/v3/auth/authenticate"
    assert gateway.last.body == {"name": "root", "password": password}
    gateway.last.answer({"header": HEADER, "token": "t1"})
    assert gateway.last.headers["Authorization"] == ["t1"]
    gateway.last.answer(*invalid)  # the member restarted: it forgot t1
    gateway.last.answer({"header": HEADER, "token": "t2"})
    assert (gateway.last.path, gateway.last.headers["Authorization"]) == ("/v3/kv/put", ["t2"])
    gateway.last.answer({"header": HEADER})
    assert outcome(put) == 9

    again = client.put(b"k", b"v")
    assert gateway.last.headers["Authorization"] == ["t2"]  # kept between calls
    gateway.last.answer(*invalid)
    gateway.last.answer({"header": HEADER, "token": "t3"})
    gateway.last.answer(*invalid)

    with pytest.raises(EtcdError) as refused:
        outcome(again)
    assert refused.value.code == 16
    assert password not in str(refused.value) and "t3" not in str(refused.value)
    assert [r.index for r in gateway.requests] == [0] * 7  # the cluster's answer: not retried


def test_a_wrong_password_is_final(clock, gateway) -> None:
    client = client_of(clock, gateway, user="root", password="wrong-pass")
    read = client.read_prefix(b"/")
    failed = "etcdserver: authentication failed, invalid user ID or password"
    gateway.last.answer({"error": failed, "code": 3}, 400)
    with pytest.raises(EtcdError) as refused:
        outcome(read)
    assert str(refused.value) == f"http://m0:2379/v3/auth/authenticate: {failed} (code 3)"
    assert len(gateway.requests) == 1


def put(key: bytes, revision: int) -> dict:
    kv = {"key": _b64(key), "value": _b64(b"v"), "mod_revision": str(revision)}
    return {"kv": {**kv, "create_revision": str(revision)}}


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def kv(key: bytes, revision: int, value: bytes = b"v") -> KeyValue:
    return KeyValue(key, value, revision, revision, 0)


def test_a_watch_leaves_a_silent_member_and_resumes_after_the_last_event(clock, gateway) -> None:
    client = client_of(clock, gateway)
    seen: list[Event] = []
    watch = client.watch(b"/p/", 5, seen.extend, known={})
    first = gateway.last
    assert (first.index, first.path, first.body["create_request"]["start_revision"]) == (
        0,
        "/v3/watch",
        "5",
    )
    assert first.headers["Grpc-Metadata-hasleader"] == ["true"]
    stream = first.stream()
    stream.result(created=True)
    stream.result(events=[put(b"/p/a", 5), put(b"/p/b", 6)])
    assert [e.kv for e in seen] == [kv(b"/p/a", 5), kv(b"/p/b", 6)]
    clock.advance(TIMEOUT)
    assert gateway.seen()[-1] == (0, "/v3/kv/range")  # the liveness read, on the same member
    gateway.last.answer({"header": HEADER})
    clock.advance(TIMEOUT)  # the next one: no answer (the member froze)
    clock.advance(TIMEOUT)
    clock.advance(0)

    assert stream.transport.stopped
    assert watch.endpoint == MEMBERS[1]
    resumed = gateway.last
    assert (resumed.index, resumed.path) == (1, "/v3/watch")
    assert resumed.body["create_request"]["start_revision"] == "7"
    stream.result(events=[put(b"/p/late", 7)])  # the old stream: ignored
    again = resumed.stream()
    again.result(created=True)
    again.result(events=[put(b"/p/b", 6), put(b"/p/c", 7)])  # 6 again: dropped
    assert [e.kv.mod_revision for e in seen] == [5, 6, 7]
    assert seen[-1].kv.key == b"/p/c"
    assert watch.revision == 7

    watch.cancel()
    assert again.transport.stopped
    assert clock.getDelayedCalls() == []


def test_a_compacted_watch_reads_and_delivers_the_difference(clock, gateway) -> None:
    client = client_of(clock, gateway)
    seen: list[Event] = []
    watch = client.watch(b"/p/", 3, seen.extend, known={b"/p/a": kv(b"/p/a", 2)})
    stream = gateway.last.stream()
    stream.result(created=True)
    stream.result(canceled=True, compact_revision="5")

    assert stream.transport.stopped
    assert gateway.seen()[-1] == (0, "/v3/kv/range")
    gateway.last.answer({"header": {"revision": "8"}, "kvs": [put(b"/p/b", 4)["kv"]]})
    assert [(e.kind, e.kv) for e in seen] == [
        (EventKind.PUT, kv(b"/p/b", 4)),
        (EventKind.DELETE, KeyValue(b"/p/a", b"", 8, 0, 0)),
    ]
    assert watch.revision == 8
    assert gateway.seen()[-1] == (0, "/v3/watch")  # same member: it did nothing wrong
    assert gateway.last.body["create_request"]["start_revision"] == "9"
    watch.cancel()


def test_a_watch_without_known_keys_reads_them_at_its_start(clock, gateway) -> None:
    client = client_of(clock, gateway)
    seen: list[Event] = []
    watch = client.watch(b"/p/", 5, seen.extend)
    assert gateway.last.path == "/v3/kv/range"
    assert gateway.last.body["revision"] == "4"
    gateway.last.answer({"header": HEADER, "kvs": [put(b"/p/a", 2)["kv"]]})
    stream = gateway.last.stream()
    stream.result(canceled=True, compact_revision="7")
    gateway.last.answer({"header": {"revision": "8"}})  # /p/a deleted meanwhile

    assert [(e.kind, e.kv.key, e.kv.mod_revision) for e in seen] == [(EventKind.DELETE, b"/p/a", 8)]
    watch.cancel()


def test_a_watch_refused_everywhere_pauses_between_rounds(clock, gateway) -> None:
    client = client_of(clock, gateway)
    client.watch(b"/p/", 1, lambda events: None)
    for member in range(3):
        assert gateway.seen()[-1] == (member, "/v3/watch")
        gateway.last.stream().send({"error": {"grpc_code": 14, "message": "no leader"}})
        clock.advance(0)
    assert len(gateway.requests) == 3  # every member refused in a row: pause

    clock.advance(WATCH_RETRY_PAUSE)

    assert gateway.seen()[-1] == (0, "/v3/watch")
    stream = gateway.last.stream()
    stream.result(created=True)  # a stream again: the count starts over
    stream.protocol.connectionLost(Failure(ResponseDone()))
    clock.advance(0)
    assert gateway.seen()[-1] == (1, "/v3/watch")


def test_a_raising_callback_does_not_stop_the_watch(clock, gateway) -> None:
    client = client_of(clock, gateway)
    calls: list[list[Event]] = []

    def broken(events: list[Event]) -> None:
        calls.append(events)
        raise RuntimeError("caller bug")

    watch = client.watch(b"/p/", 1, broken)
    stream = gateway.last.stream()
    stream.result(events=[put(b"/p/a", 1)])
    stream.result(events=[put(b"/p/b", 2)])
    assert len(calls) == 2
    assert not stream.transport.stopped
    assert watch.revision == 2


def test_close_cancels_calls_and_watches(clock, gateway) -> None:
    client = client_of(clock, gateway)
    read = client.read_prefix(b"/p/")
    client.watch(b"/p/", 1, lambda events: None)
    stream = gateway.last.stream()

    closed = client.close()

    assert outcome(closed) is None
    assert gateway.requests[0].cancelled and stream.transport.stopped
    with pytest.raises(CancelledError):
        outcome(read)
    assert clock.getDelayedCalls() == []
