"""A small non-blocking etcd v3 client for Twisted: treq over etcd's v3 JSON gateway.

Why not a client library: docs/architecture.md "Why our own etcd client". What it does:

- Unary calls (range, put, txn, deleterange, lease grant/keepalive/revoke) are POSTs of JSON
  to `/v3/...` (etcd API reference, "gRPC gateway"; 3.4 serves it under `/v3`). Each call has
  a timeout per member; a member that fails or stays silent (a frozen process is silence, not
  an error) is left for the next one within the same call, each member at most once per call,
  and the next call starts at the member that last answered. No member is ever shunned.
- A watch is a streaming POST to `/v3/watch` answered by newline-delimited JSON. A stream
  never times out, so a timed liveness read goes to the watch's member every `timeout`
  seconds; when it fails, or the stream breaks, the watch moves to the next member and resumes
  from the last delivered revision + 1. On compaction it re-reads the prefix and delivers the
  difference.
- Gateway JSON: keys and values are base64, int64 fields are strings, false/0 fields are
  omitted (a failed txn has no `succeeded`, a dead lease no `TTL`), keepalive replies are
  wrapped in `result`, errors are `{"error", "code", "message"}` with a gRPC status code.

The modules: `codec` (the pure half: request bodies, reply decoding, member rotation,
bounded buffers; unit tested without sockets in tests/unit/test_etcd_codec.py), `transport`
(HTTP plumbing on the caller's reactor), `client` (`Etcd`, the calls) and `watch` (`Watch`).
Every public name is importable from here.
"""

from xprov.cluster.etcd.client import Etcd
from xprov.cluster.etcd.codec import (
    DEADLINE_EXCEEDED,
    INTERNAL,
    MAX_REPLY_BYTES,
    MEMBER_CODES,
    NOT_FOUND,
    OUT_OF_RANGE,
    RESOURCE_EXHAUSTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNKNOWN,
    BoundedBody,
    Canceled,
    Changes,
    Compacted,
    Created,
    EtcdError,
    Event,
    EventKind,
    GatewayError,
    KeyValue,
    Lines,
    Reply,
    Rotation,
    Snapshot,
    TooBig,
    WatchMessage,
    b64,
    decode_event,
    decode_kv,
    decode_lease,
    decode_none,
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
from xprov.cluster.etcd.transport import (
    ATTEMPT_DELAY,
    IEtcdReactor,
    QuietPool,
)
from xprov.cluster.etcd.watch import (
    REQUIRE_LEADER,
    WATCH_RETRY_PAUSE,
    Watch,
)

__all__ = [
    "ATTEMPT_DELAY",
    "DEADLINE_EXCEEDED",
    "INTERNAL",
    "MAX_REPLY_BYTES",
    "MEMBER_CODES",
    "NOT_FOUND",
    "OUT_OF_RANGE",
    "REQUIRE_LEADER",
    "RESOURCE_EXHAUSTED",
    "UNAUTHENTICATED",
    "UNAVAILABLE",
    "UNKNOWN",
    "WATCH_RETRY_PAUSE",
    "BoundedBody",
    "Canceled",
    "Changes",
    "Compacted",
    "Created",
    "Etcd",
    "EtcdError",
    "Event",
    "EventKind",
    "GatewayError",
    "IEtcdReactor",
    "KeyValue",
    "Lines",
    "QuietPool",
    "Reply",
    "Rotation",
    "Snapshot",
    "TooBig",
    "Watch",
    "WatchMessage",
    "b64",
    "decode_event",
    "decode_kv",
    "decode_lease",
    "decode_none",
    "decode_revision",
    "decode_snapshot",
    "decode_succeeded",
    "decode_ttl",
    "decode_watch_message",
    "describe",
    "difference",
    "gateway_error",
    "prefix_end",
    "put_request",
    "range_request",
    "replace_request",
    "watch_request",
]
