"""The pure half of the etcd client, without I/O: the gateway's request bodies, reply and
watch-message decoding, member rotation and bounded buffers; unit tested without sockets
(tests/unit/test_etcd_codec.py).
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, TimeoutError

Reply = Mapping[str, Any]  # one decoded JSON reply of the gateway

# A reply or watch message above this is refused, not buffered: etcd refuses requests above
# 1.5 MiB (--max-request-bytes), the failover keys are a few hundred bytes, so a bigger
# reply means a wrong prefix or a wrong server.
MAX_REPLY_BYTES = 4 * 1024 * 1024

# gRPC status codes (grpc/codes) the gateway reports in `code`.
UNKNOWN, DEADLINE_EXCEEDED, NOT_FOUND, RESOURCE_EXHAUSTED = 2, 4, 5, 8
OUT_OF_RANGE, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 11, 13, 14, 16
# Codes that say "this member cannot answer now" (no leader, leader changed, request timed
# out, too many requests): another member may. Any other code is the cluster's answer.
MEMBER_CODES = frozenset({UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE})


class EtcdError(Exception):
    """A call failed: every member failed or timed out, the cluster refused it (`code`, a gRPC
    status code, when it said so), or a reply was unusable. The message names the member(s)
    and the cause, never a password or token."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeyValue:
    """mvccpb.KeyValue: revisions are etcd store revisions; `lease` is 0 without a lease."""

    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int


@dataclass(frozen=True)
class Snapshot:
    """The keys under a prefix, read at store revision `revision` (the reply header's)."""

    revision: int
    kvs: Mapping[bytes, KeyValue]


class EventKind(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    """A change; for DELETE, `kv.value` is b"" and `kv.mod_revision` the deletion's revision."""

    kind: EventKind
    kv: KeyValue


@dataclass(frozen=True)
class GatewayError:
    """An error reply: gRPC status `code` and etcd's message."""

    code: int
    message: str


# Watch stream messages (etcdserverpb.WatchResponse, as the gateway wraps it in `result`).
@dataclass(frozen=True)
class Created:
    """The watch is registered on the member."""


@dataclass(frozen=True)
class Changes:
    """Events (empty for a progress notification)."""

    events: tuple[Event, ...]


@dataclass(frozen=True)
class Compacted:
    """The start revision is compacted away; `revision` is the oldest one kept."""

    revision: int


@dataclass(frozen=True)
class Canceled:
    """The member ended the watch (or the stream reported an error)."""

    reason: str


WatchMessage = Created | Changes | Compacted | Canceled


class TooBig(Exception):
    """A reply or watch message above MAX_REPLY_BYTES."""


class _Retry(Exception):
    """This member cannot answer now; the call moves to the next one."""


# --- pure half: request bodies --------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def prefix_end(prefix: bytes) -> bytes:
    """The `range_end` that makes [prefix, range_end) every key starting with `prefix`: the
    prefix with its last byte below 0xff incremented; b"\\x00" (to the end) if none is."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def range_request(prefix: bytes, revision: int = 0, limit: int = 0) -> dict[str, Any]:
    """RangeRequest for every key under `prefix`, at `revision` (0: the newest), at most
    `limit` keys (0: all)."""
    body: dict[str, Any] = {"key": b64(prefix), "range_end": b64(prefix_end(prefix))}
    if revision:
        body["revision"] = str(revision)
    if limit:
        body["limit"] = str(limit)
        body["keys_only"] = True
    return body


def put_request(key: bytes, value: bytes, lease: int = 0) -> dict[str, Any]:
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return body


def replace_request(key: bytes, value: bytes, mod_revision: int, lease: int = 0) -> dict[str, Any]:
    """TxnRequest: put if the key's mod_revision equals `mod_revision` (an absent key compares
    as 0, so 0 means "only if absent")."""
    compare = {
        "target": "MOD",
        "result": "EQUAL",
        "key": b64(key),
        "mod_revision": str(mod_revision),
    }
    return {"compare": [compare], "success": [{"request_put": put_request(key, value, lease)}]}


def watch_request(prefix: bytes, start_revision: int) -> dict[str, Any]:
    create = {
        "key": b64(prefix),
        "range_end": b64(prefix_end(prefix)),
        "start_revision": str(start_revision),
    }
    return {"create_request": create}


# --- pure half: reply decoding (raises KeyError, TypeError or ValueError on a bad reply) -----


def _bytes(obj: Reply, field: str) -> bytes:
    return base64.b64decode(obj.get(field, ""), validate=True)


def _int(obj: Reply, field: str) -> int:
    value = obj.get(field, 0)  # int64 as a string; omitted when 0
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise TypeError(f"{field}: {value!r}")
    return int(value)


def decode_kv(obj: Reply) -> KeyValue:
    return KeyValue(
        key=_bytes(obj, "key"),
        value=_bytes(obj, "value"),
        mod_revision=_int(obj, "mod_revision"),
        create_revision=_int(obj, "create_revision"),
        lease=_int(obj, "lease"),
    )


def decode_revision(reply: Reply) -> int:
    """The store revision in the reply's header (the new one, for a write; never 0)."""
    revision = _int(reply["header"], "revision")
    if revision < 1:
        raise ValueError("no revision in the header")
    return revision


def decode_snapshot(reply: Reply) -> Snapshot:
    kvs = [decode_kv(obj) for obj in reply.get("kvs", [])]
    return Snapshot(decode_revision(reply), {kv.key: kv for kv in kvs})


def decode_succeeded(reply: Reply) -> bool:
    decode_revision(reply)  # a reply without a header is no txn reply
    return reply.get("succeeded", False) is True


def decode_lease(reply: Reply) -> int:
    lease = _int(reply, "ID")
    if lease == 0:
        raise ValueError("no lease ID")
    return lease


def decode_ttl(reply: Reply) -> int:
    """A keepalive's remaining TTL in seconds; 0 when the lease is gone."""
    return _int(reply["result"], "TTL")


def decode_none(reply: Reply) -> None:
    decode_revision(reply)


def decode_event(obj: Reply) -> Event:
    kind = EventKind.DELETE if obj.get("type", "PUT") == "DELETE" else EventKind.PUT
    return Event(kind, decode_kv(obj["kv"]))


def gateway_error(reply: Reply) -> GatewayError | None:
    """The error of an error reply: `{"error": str, "code": int, "message": str}` for unary
    calls, `{"error": {"grpc_code": int, "message": str}}` inside a stream."""
    error = reply.get("error")
    if error is None:
        return None
    if isinstance(error, Mapping):
        return GatewayError(int(error.get("grpc_code", UNKNOWN)), str(error.get("message", "")))
    return GatewayError(int(reply.get("code", UNKNOWN)), str(reply.get("message", error)))


def decode_watch_message(line: bytes) -> WatchMessage:
    reply = json.loads(line)
    error = gateway_error(reply)
    if error is not None:
        return Canceled(f"{error.message} (code {error.code})")
    result = reply["result"]
    if _int(result, "compact_revision"):
        return Compacted(_int(result, "compact_revision"))
    if result.get("canceled", False):
        return Canceled(str(result.get("cancel_reason", "canceled by the member")))
    if result.get("created", False):
        return Created()
    return Changes(tuple(decode_event(obj) for obj in result.get("events", [])))


def difference(view: Mapping[bytes, KeyValue], snapshot: Snapshot) -> list[Event]:
    """The events that turn `view` into `snapshot`: a PUT for each key new or changed (by
    mod_revision order), then a DELETE for each key gone, at the snapshot's revision (the
    deletion's own revision was compacted away)."""
    puts = [kv for key, kv in snapshot.kvs.items() if view.get(key) != kv]
    events = [Event(EventKind.PUT, kv) for kv in sorted(puts, key=lambda kv: kv.mod_revision)]
    gone = sorted(key for key in view if key not in snapshot.kvs)
    events += [Event(EventKind.DELETE, KeyValue(key, b"", snapshot.revision, 0, 0)) for key in gone]
    return events


# --- pure half: members and buffers ---------------------------------------------------------


class Rotation:
    """Which member a call tries first: the one that last answered. A call tries every member
    once, starting there; a member that fails is passed over by the next call, never banned."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.current = 0

    def order(self) -> list[int]:
        return [(self.current + step) % self.count for step in range(self.count)]

    def failed(self, index: int) -> None:
        if index == self.current:
            self.current = (index + 1) % self.count


class BoundedBody:
    """A reply body, refused (TooBig) once above `limit` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit, self.chunks, self.size = limit, list[bytes](), 0

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooBig(f"reply bigger than {self.limit} bytes")
        self.chunks.append(data)

    def value(self) -> bytes:
        return b"".join(self.chunks)


class Lines:
    """Splits a stream into its non-blank newline-terminated lines; TooBig above `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit, self.pending = limit, b""

    def feed(self, data: bytes) -> list[bytes]:
        *lines, self.pending = (self.pending + data).split(b"\n")
        if any(len(line) > self.limit for line in [*lines, self.pending]):
            raise TooBig(f"watch message bigger than {self.limit} bytes")
        return [line for line in lines if line.strip()]


def describe(reason: BaseException) -> str:
    """A failure's cause in one short line (no headers, so no token)."""
    if isinstance(reason, TimeoutError | CancelledError):
        return "no answer in time"
    if isinstance(reason, _Retry):
        return str(reason)
    reasons = getattr(reason, "reasons", None)  # ResponseFailed and kin wrap Failures
    if reasons:
        return "; ".join(describe(r.value) for r in reasons)
    return f"{type(reason).__name__}: {reason}".rstrip(": ")[:300]
