"""The pure half of xprov.cluster.etcd: request bodies, gateway replies as etcd 3.4 sends them
(recorded with curl against /usr/bin/etcd), member rotation, bounded buffers."""

from __future__ import annotations

import base64
import json

import pytest
from twisted.internet.defer import TimeoutError
from twisted.internet.error import ConnectionRefusedError
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived

from xprov.cluster.etcd import (
    MAX_REPLY_BYTES,
    BoundedBody,
    Canceled,
    Changes,
    Compacted,
    Created,
    Event,
    EventKind,
    GatewayError,
    KeyValue,
    Lines,
    Rotation,
    Snapshot,
    TooBig,
    decode_lease,
    decode_revision,
    decode_snapshot,
    decode_succeeded,
    decode_ttl,
    decode_watch_message,
    describe,
    difference,
    gateway_error,
    prefix_end,
    put_request,
    range_request,
    replace_request,
    watch_request,
)

HEADER = {
    "cluster_id": "17368989521238926805",
    "member_id": "17628310501313495538",
    "revision": "4",
    "raft_term": "2",
}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"/xprov/", b"/xprov0"),
        (b"a\xff", b"b"),
        (b"a\xfe\xff\xff", b"a\xff"),
        (b"\xff\xff", b"\x00"),  # nothing to increment: to the end of the key space
        (b"", b"\x00"),
    ],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert prefix_end(prefix) == end


def test_request_bodies() -> None:
    assert range_request(b"/p/") == {"key": b64(b"/p/"), "range_end": b64(b"/p0")}
    assert range_request(b"/p/", revision=7, limit=1) == {
        "key": b64(b"/p/"),
        "range_end": b64(b"/p0"),
        "revision": "7",
        "limit": "1",
        "keys_only": True,
    }
    assert put_request(b"k", b"\x00v") == {"key": b64(b"k"), "value": b64(b"\x00v")}
    assert put_request(b"k", b"v", 2**62) == {"key": "aw==", "value": "dg==", "lease": str(2**62)}
    assert replace_request(b"k", b"v", 0, 5) == {
        "compare": [{"target": "MOD", "result": "EQUAL", "key": "aw==", "mod_revision": "0"}],
        "success": [{"request_put": {"key": "aw==", "value": "dg==", "lease": "5"}}],
    }
    assert watch_request(b"/p/", 12) == {
        "create_request": {"key": b64(b"/p/"), "range_end": b64(b"/p0"), "start_revision": "12"}
    }


def test_range_reply() -> None:
    reply = {
        "header": HEADER,
        "kvs": [
            {
                "key": b64(b"/p/a"),
                "create_revision": "2",
                "mod_revision": "3",
                "version": "2",
                "value": b64(b"1"),
                "lease": "7587869013406432043",
            },
            {"key": b64(b"/p/empty"), "create_revision": "4", "mod_revision": "4"},
        ],
        "count": "2",
    }
    assert decode_snapshot(reply) == Snapshot(
        4,
        {
            b"/p/a": KeyValue(b"/p/a", b"1", 3, 2, 7587869013406432043),
            b"/p/empty": KeyValue(b"/p/empty", b"", 4, 4, 0),  # empty value: omitted
        },
    )
    assert decode_snapshot({"header": HEADER}) == Snapshot(4, {})  # no key: no kvs field


def test_unary_replies() -> None:
    assert decode_revision({"header": HEADER}) == 4
    assert decode_succeeded({"header": HEADER, "succeeded": True, "responses": []}) is True
    assert decode_succeeded({"header": HEADER}) is False  # a failed txn omits `succeeded`
    assert decode_lease({"header": HEADER, "ID": "4752038864522943497", "TTL": "5"}) == (
        4752038864522943497
    )
    alive = {"result": {"header": HEADER, "ID": "4752038864522943520", "TTL": "5"}}
    assert decode_ttl(alive) == 5
    assert decode_ttl({"result": {"header": HEADER, "ID": "12345"}}) == 0  # gone: no TTL


@pytest.mark.parametrize(
    ("decode", "reply", "problem"),
    [
        (decode_revision, {}, KeyError),  # no header
        (decode_revision, {"header": {"revision": True}}, TypeError),
        (decode_revision, {"header": {"revision": "x"}}, ValueError),
        (decode_revision, {"header": {}}, ValueError),  # a store revision is never 0
        (decode_snapshot, {"header": HEADER, "kvs": [{"key": "not base64!"}]}, ValueError),
        (decode_lease, {"header": HEADER, "ID": "0"}, ValueError),
        (decode_ttl, {"header": HEADER, "TTL": "5"}, KeyError),  # not under `result`
    ],
)
def test_bad_replies_raise(decode, reply: dict, problem: type[Exception]) -> None:
    with pytest.raises(problem):
        decode(reply)


def test_gateway_errors() -> None:
    unary = {
        "error": "etcdserver: requested lease not found",
        "message": "etcdserver: requested lease not found",
        "code": 5,
    }
    assert gateway_error(unary) == GatewayError(5, "etcdserver: requested lease not found")
    stream = {"error": {"grpc_code": 14, "http_code": 503, "message": "etcdserver: no leader"}}
    assert gateway_error(stream) == GatewayError(14, "etcdserver: no leader")
    assert gateway_error({"header": HEADER}) is None


def line(result: dict) -> bytes:
    return json.dumps({"result": {"header": HEADER, **result}}).encode()


def test_watch_messages() -> None:
    assert decode_watch_message(line({"created": True})) == Created()
    events = line(
        {
            "events": [
                {
                    "kv": {
                        "key": b64(b"/p/b"),
                        "create_revision": "3",
                        "mod_revision": "3",
                        "version": "1",
                        "value": b64(b"2"),
                    }
                },
                {"type": "DELETE", "kv": {"key": b64(b"/p/a"), "mod_revision": "4"}},
            ]
        }
    )
    assert decode_watch_message(events) == Changes(
        (
            Event(EventKind.PUT, KeyValue(b"/p/b", b"2", 3, 3, 0)),
            Event(EventKind.DELETE, KeyValue(b"/p/a", b"", 4, 0, 0)),
        )
    )
    assert decode_watch_message(line({})) == Changes(())  # progress notification
    compacted = line({"canceled": True, "compact_revision": "3"})
    assert decode_watch_message(compacted) == Compacted(3)
    reason = "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
    refused = line({"watch_id": "-1", "created": True, "canceled": True, "cancel_reason": reason})
    assert decode_watch_message(refused) == Canceled(reason)
    error = json.dumps({"error": {"grpc_code": 14, "message": "etcdserver: no leader"}})
    assert decode_watch_message(error.encode()) == Canceled("etcdserver: no leader (code 14)")


def kv(key: bytes, value: bytes, revision: int) -> KeyValue:
    return KeyValue(key, value, revision, revision, 0)


def test_difference_after_compaction() -> None:
    view = {b"a": kv(b"a", b"1", 2), b"b": kv(b"b", b"1", 3), b"c": kv(b"c", b"1", 4)}
    now = Snapshot(9, {b"b": kv(b"b", b"1", 3), b"c": kv(b"c", b"2", 8), b"d": kv(b"d", b"1", 6)})
    assert difference(view, now) == [
        Event(EventKind.PUT, kv(b"d", b"1", 6)),  # by revision, unchanged b left out
        Event(EventKind.PUT, kv(b"c", b"2", 8)),
        Event(EventKind.DELETE, KeyValue(b"a", b"", 9, 0, 0)),  # at the read's revision
    ]
    assert difference(now.kvs, now) == []


def test_rotation() -> None:
    rotation = Rotation(3)
    assert rotation.order() == [0, 1, 2]
    rotation.failed(1)  # not the current one: no change
    assert rotation.order() == [0, 1, 2]
    rotation.failed(0)
    assert rotation.order() == [1, 2, 0]
    rotation.failed(1)
    rotation.failed(2)
    assert rotation.current == 0  # round again: no member is ever left out
    single = Rotation(1)
    single.failed(0)
    assert single.order() == [0]


def test_bounded_body_at_the_bound() -> None:
    body = BoundedBody(MAX_REPLY_BYTES)
    body.feed(b"x" * (MAX_REPLY_BYTES - 1))
    body.feed(b"y")
    assert len(body.value()) == MAX_REPLY_BYTES
    with pytest.raises(TooBig, match=f"bigger than {MAX_REPLY_BYTES} bytes"):
        body.feed(b"z")


def test_lines_split_across_chunks_and_bounded() -> None:
    lines = Lines(MAX_REPLY_BYTES)
    assert lines.feed(b'{"a"') == []
    assert lines.feed(b':1}\n\n{"b":2}\n{"c"') == [b'{"a":1}', b'{"b":2}']
    assert lines.feed(b":3}\n") == [b'{"c":3}']
    lines.feed(b"x" * MAX_REPLY_BYTES)  # at the bound, unfinished: still waiting
    with pytest.raises(TooBig, match="watch message bigger than"):
        lines.feed(b"x")  # one byte more, with no newline yet
    with pytest.raises(TooBig):
        Lines(4).feed(b"12345\n")


def test_describe() -> None:
    assert describe(TimeoutError(2.0, "Deferred")) == "no answer in time"
    refused = ResponseNeverReceived([Failure(ConnectionRefusedError("Connection refused"))])
    assert describe(refused) == (
        "ConnectionRefusedError: Connection was refused by other side: Connection refused."
    )
    assert describe(ValueError("x" * 1000)).startswith("ValueError: xxx")
    assert len(describe(ValueError("x" * 1000))) == 300
