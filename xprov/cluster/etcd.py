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

The pure half (request bodies, reply decoding, member rotation, bounded buffers) comes first
and is unit tested without sockets (tests/unit/test_etcd_codec.py); the I/O half follows.
"""

from __future__ import annotations

import base64
import enum
import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, succeed
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IPushProducer,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.python.failure import Failure
from twisted.web.client import URI, Agent, HTTPConnectionPool, ResponseDone, _HTTP11ClientFactory
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgentEndpointFactory, IBodyProducer, IResponse
from zope.interface import implementer

from xprov import logs

log = logs.get_logger("xprov.cluster")

T = TypeVar("T")
Reply = Mapping[str, Any]  # one decoded JSON reply of the gateway

# A reply or watch message above this is refused, not buffered: etcd refuses requests above
# 1.5 MiB (--max-request-bytes), the failover keys are a few hundred bytes, so a bigger
# reply means a wrong prefix or a wrong server.
MAX_REPLY_BYTES = 4 * 1024 * 1024

# After every member refused a watch in a row, wait this long (seconds) before the next round:
# an election takes 1.0-2.8 s and a leaderless member refuses at once, so retrying at once
# would spin.
WATCH_RETRY_PAUSE = 0.5

# Seconds between connection attempts to a member's addresses. HostnameEndpoint also waits
# this long before it reports that the last address refused: Twisted's 0.3 s made every move
# away from a killed member 0.3 s slower.
ATTEMPT_DELAY = 0.05

# gRPC status codes (grpc/codes) the gateway reports in `code`.
UNKNOWN, DEADLINE_EXCEEDED, NOT_FOUND, RESOURCE_EXHAUSTED = 2, 4, 5, 8
OUT_OF_RANGE, INTERNAL, UNAVAILABLE, UNAUTHENTICATED = 11, 13, 14, 16
# Codes that say "this member cannot answer now" (no leader, leader changed, request timed
# out, too many requests): another member may. Any other code is the cluster's answer.
MEMBER_CODES = frozenset({UNKNOWN, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE})

# A watch refused by a member without a leader, instead of a silent stream (etcd
# clientv3.WithRequireLeader).
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": ["true"]}


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


# --- I/O half -------------------------------------------------------------------------------


class IEtcdReactor(IReactorTCP, IReactorTime, IReactorPluggableNameResolver):
    """What the client needs of a reactor: TCP, timers and name resolution (treq's Agent)."""


class _Retry(Exception):
    """This member cannot answer now; the call moves to the next one."""


class _BodyReader(Protocol):
    """Feeds a reply body to `sink` as it arrives; `done` fires when it ends. Cancelling
    `done`, or `sink` raising, drops the connection."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self.done: Deferred[None] = Deferred(lambda _: self._stop())

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        try:
            self.sink(data)
        except Exception:
            self._stop()
            self.done.errback()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if isinstance(reason.value, ResponseDone | PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)

    def _stop(self) -> None:
        if self.transport is not None:  # the HTTP client's proxy of the connection
            cast(IPushProducer, self.transport).stopProducing()


@implementer(IBodyProducer)
class _Body:
    """A request body written at once (treq's default producer writes through the global
    reactor's cooperator, which may not be the reactor the client runs on)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.length = data, len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IAgentEndpointFactory)
class _Members:
    """Connections to the members (IAgentEndpointFactory): TCP, with TLS for https, verified
    against `ca` (the system's roots without it) and with a client certificate when given.
    Every timer runs on the client's reactor (Agent's own factory runs TLS's on the global
    one)."""

    def __init__(
        self,
        reactor: IEtcdReactor,
        timeout: float,
        ca: Path | None,
        certificate: Path | None,
        key: Path | None,
    ) -> None:
        self.reactor, self.timeout = reactor, timeout
        self.trust = Certificate.loadPEM(ca.read_bytes()) if ca else None
        self.client = None
        if certificate and key:
            pem = certificate.read_bytes() + b"\n" + key.read_bytes()
            self.client = PrivateCertificate.loadPEM(pem)  # type: ignore[no-untyped-call]

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        endpoint = HostnameEndpoint(
            self.reactor, host, uri.port, timeout=self.timeout, attemptDelay=ATTEMPT_DELAY
        )
        if uri.scheme != b"https":
            return endpoint
        tls = optionsForClientTLS(host, trustRoot=self.trust, clientCertificate=self.client)
        return wrapClientTLS(tls, endpoint, self.reactor)


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # a connection per call: "Starting factory" twice a second otherwise


class QuietPool(HTTPConnectionPool):
    _factory = _QuietFactory


class Etcd:
    """A client of the etcd members at `endpoints` ("http://127.0.0.1:2379", or https with
    `ca`, and `certificate` + `private_key` for client certificate auth). `timeout`: seconds
    per call and member, and the period of a watch's liveness read; a call fails after at most
    len(endpoints) x timeout. With `user` and `password` it authenticates (POST
    /v3/auth/authenticate) and sends the token; an invalid token (a restarted member, an
    expired token) is renewed once per call. Every method's Deferred fails with EtcdError
    only (CancelledError when cancelled, or by `close`)."""

    def __init__(
        self,
        reactor: IEtcdReactor,
        endpoints: Sequence[str],
        timeout: float = 2.0,
        *,
        ca: Path | None = None,
        certificate: Path | None = None,
        private_key: Path | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("no etcd endpoint")
        if not all(endpoint.startswith(("http://", "https://")) for endpoint in endpoints):
            raise ValueError("an etcd endpoint is an http:// or https:// URL")
        if (user is None) != (password is None):
            raise ValueError("etcd user and password go together")
        if (certificate is None) != (private_key is None):
            raise ValueError("etcd certificate and private key go together")
        self.reactor, self.timeout = reactor, timeout
        self.endpoints = tuple(endpoint.rstrip("/") for endpoint in endpoints)
        self.rotation = Rotation(len(self.endpoints))
        # A connection per call: a pooled one may have been closed by a member that died or
        # restarted, and a POST on it fails though the member is back (Twisted resends only
        # idempotent requests). A call a second costs a TCP (or TLS) handshake more.
        self._pool = QuietPool(reactor, persistent=False)
        members = _Members(reactor, timeout, ca, certificate, private_key)
        agent = Agent.usingEndpointFactory(reactor, members, self._pool)
        self._http = HTTPClient(agent)
        self._credentials = {"name": user, "password": password} if user is not None else None
        self._token: str | None = None
        self._pending: set[Deferred[Any]] = set()
        self._watches: set[Watch] = set()

    @property
    def current_endpoint(self) -> str:
        """The member the next call tries first."""
        return self.endpoints[self.rotation.current]

    def read_prefix(self, prefix: bytes) -> Deferred[Snapshot]:
        """Every key under `prefix`, and the store revision read (linearizable)."""
        return self._call("/v3/kv/range", range_request(prefix), decode_snapshot)

    def read_prefix_at(self, prefix: bytes, revision: int) -> Deferred[Snapshot]:
        """The keys under `prefix` as they were at `revision`; EtcdError with code
        OUT_OF_RANGE if that revision is compacted away."""
        return self._call("/v3/kv/range", range_request(prefix, revision), decode_snapshot)

    def put(self, key: bytes, value: bytes, lease: int = 0) -> Deferred[int]:
        """Write `value` (under `lease`, 0: none); the store revision of the write."""
        return self._call("/v3/kv/put", put_request(key, value, lease), decode_revision)

    def replace(
        self, key: bytes, value: bytes, mod_revision: int, lease: int = 0
    ) -> Deferred[bool]:
        """Write only if the key's mod_revision is `mod_revision` (0: only if absent), in one
        txn; True if written. A reply lost after the write (the member died, or answered
        "request timed out") makes the call try again on the next member, where it reports
        False: read the key to know."""
        body = replace_request(key, value, mod_revision, lease)
        return self._call("/v3/kv/txn", body, decode_succeeded)

    def delete(self, key: bytes) -> Deferred[int]:
        """Delete `key`; the store revision after it (unchanged if there was no such key)."""
        return self._call("/v3/kv/deleterange", {"key": b64(key)}, decode_revision)

    def grant(self, ttl: int) -> Deferred[int]:
        """A new lease of `ttl` seconds (etcd's minimum is 1.5 x the election timeout); its ID."""
        return self._call("/v3/lease/grant", {"TTL": str(ttl)}, decode_lease)

    def keepalive(self, lease: int) -> Deferred[int]:
        """Renew `lease`; the TTL it has again (seconds), 0 if the lease is gone."""
        return self._call("/v3/lease/keepalive", {"ID": str(lease)}, decode_ttl)

    def revoke(self, lease: int) -> Deferred[None]:
        """End `lease` and delete its keys; a lease already gone is no error."""

        def gone(failure: Failure) -> None:
            if not (isinstance(failure.value, EtcdError) and failure.value.code == NOT_FOUND):
                failure.raiseException()

        return self._call("/v3/lease/revoke", {"ID": str(lease)}, decode_none).addErrback(gone)

    def watch(
        self,
        prefix: bytes,
        start_revision: int,
        on_events: Callable[[list[Event]], None],
        known: Mapping[bytes, KeyValue] | None = None,
    ) -> Watch:
        """Call `on_events` with every change under `prefix` from `start_revision` on, in
        revision order, each once (see Watch). `known`: the keys as the caller knows them at
        start_revision - 1 (a Snapshot's kvs), to tell what a compaction deleted; without it
        the watch reads them itself, at that revision (if that revision is compacted away
        already, a key deleted since is not reported)."""
        watch = Watch(self, prefix, start_revision, on_events, known)
        self._watches.add(watch)
        return watch

    def close(self) -> Deferred[None]:
        """Cancel every call and watch and close the pooled connections."""
        for watch in list(self._watches):
            watch.cancel()
        for call in list(self._pending):
            call.cancel()
        done: Deferred[None] = self._pool.closeCachedConnections()
        return done

    # -- calls

    def _call(
        self, path: str, body: Mapping[str, Any], decode: Callable[[Reply], T]
    ) -> Deferred[T]:
        call = Deferred.fromCoroutine(self._rotate(path, body, decode))
        self._pending.add(call)

        def settled(result: object) -> object:
            self._pending.discard(call)
            return result

        return call.addBoth(settled)

    async def _rotate(self, path: str, body: Mapping[str, Any], decode: Callable[[Reply], T]) -> T:
        causes = []
        for index in self.rotation.order():
            try:
                return await self._timed(self._attempt(index, path, body, decode))
            except (EtcdError, CancelledError):  # the cluster's answer; the caller gave up
                raise
            except Exception as reason:  # this member failed (a timeout too): the next one
                self.rotation.failed(index)
                causes.append(f"{self.endpoints[index]}: {describe(reason)}")
        raise EtcdError(f"{path}: no etcd member answered ({'; '.join(causes)})")

    def _timed(self, attempt: Coroutine[Any, Any, T]) -> Deferred[T]:
        return Deferred.fromCoroutine(attempt).addTimeout(self.timeout, self.reactor)

    async def _attempt(
        self, index: int, path: str, body: Mapping[str, Any], decode: Callable[[Reply], T]
    ) -> T:
        """One call on one member: EtcdError for the cluster's refusal, _Retry or any other
        exception for this member's failure."""
        renewed = False
        while True:
            headers = await self._headers(index)
            reply = await self._post(index, path, body, headers)
            error = gateway_error(reply)
            if error is None:
                try:
                    return decode(reply)
                except (KeyError, TypeError, ValueError) as reason:
                    raise _Retry(f"unusable reply: {reason!r}"[:300]) from None
            if error.code == UNAUTHENTICATED and self._credentials and not renewed:
                self._token, renewed = None, True
                continue
            if error.code in MEMBER_CODES:
                raise _Retry(f"{error.message} (code {error.code})")
            where = f"{self.endpoints[index]}{path}"
            raise EtcdError(f"{where}: {error.message} (code {error.code})", error.code)

    async def _headers(self, index: int) -> dict[str, list[str]]:
        headers = {"Content-Type": ["application/json"]}
        if self._credentials is None:
            return headers
        if self._token is None:
            reply = await self._post(index, "/v3/auth/authenticate", self._credentials, headers)
            error = gateway_error(reply)
            if error is not None and error.code in MEMBER_CODES:
                raise _Retry(f"authentication: {error.message} (code {error.code})")
            if error is not None:  # wrong user or password, auth off: the cluster's answer
                where = f"{self.endpoints[index]}/v3/auth/authenticate"
                raise EtcdError(f"{where}: {error.message} (code {error.code})", error.code)
            self._token = str(reply["token"])
        return {**headers, "Authorization": [self._token]}

    async def _post(
        self, index: int, path: str, body: Mapping[str, Any], headers: dict[str, list[str]]
    ) -> Reply:
        response = await self._request(index, path, body, headers)
        try:
            data = await _read(response)
        except TooBig as reason:
            raise EtcdError(f"{self.endpoints[index]}{path}: {reason}") from None
        reply = json.loads(data)
        if not isinstance(reply, dict):
            raise ValueError(f"HTTP {response.code}: not a JSON object")
        if response.code != 200 and gateway_error(reply) is None:
            raise ValueError(f"HTTP {response.code} without an error")
        return reply

    def _request(
        self, index: int, path: str, body: Mapping[str, Any], headers: dict[str, list[str]]
    ) -> Deferred[IResponse]:
        # unbuffered: treq would otherwise read every body whole; no `reactor`: treq uses it
        # only for its own timeout, and ours covers the whole attempt.
        response = self._http.post(
            self.endpoints[index] + path,
            data=_Body(json.dumps(body).encode()),
            headers=Headers(headers),
            unbuffered=True,
            allow_redirects=False,
        )
        return cast("Deferred[IResponse]", response)


def _read(response: IResponse) -> Deferred[bytes]:
    """The whole body, up to MAX_REPLY_BYTES (TooBig past it, with the connection dropped)."""
    body = BoundedBody(MAX_REPLY_BYTES)
    reader = _BodyReader(body.feed)
    response.deliverBody(reader)  # type: ignore[no-untyped-call]
    if response.length is not UNKNOWN_LENGTH and response.length > MAX_REPLY_BYTES:
        reader.done.cancel()
        raise TooBig(f"reply of {response.length} bytes is bigger than {MAX_REPLY_BYTES}")
    return reader.done.addCallback(lambda _: body.value())


class Watch:
    """A watch of every key under a prefix that resumes by itself.

    Its stream is held on one member at a time, with `Grpc-Metadata-hasleader: true`. A timed
    read goes to that member every `timeout` seconds; when one fails, or the stream breaks or is
    canceled, the watch moves to the next member and watches from `revision` + 1, so nothing is
    lost or repeated. When that revision is compacted away, it reads the prefix, delivers the
    difference from what it delivered so far (see `difference`) and watches from the read's
    revision + 1. `on_events` is called on the reactor; what it raises is logged."""

    def __init__(
        self,
        etcd: Etcd,
        prefix: bytes,
        start_revision: int,
        on_events: Callable[[list[Event]], None],
        known: Mapping[bytes, KeyValue] | None,
    ) -> None:
        self.etcd, self.prefix, self.on_events = etcd, prefix, on_events
        self.revision = start_revision - 1  # the last revision delivered
        # The keys as delivered so far (None: not read yet), for the difference on compaction.
        self._view = dict(known) if known is not None else ({} if self.revision < 1 else None)
        self._resync = False
        self._index = etcd.rotation.current
        self._failures = 0  # in a row, without a stream created
        self._generation = 0  # bumped on each restart: late news of an old stream is ignored
        self._running: Deferred[None] | None = None
        self._probe: Deferred[int] | None = None
        self._timer: IDelayedCall | None = None
        self._cancelled = False
        self._begin()

    @property
    def endpoint(self) -> str:
        """The member holding the stream now."""
        return self.etcd.endpoints[self._index]

    def cancel(self) -> None:
        """Stop the watch; `on_events` is not called again."""
        self._cancelled = True
        self._stop()
        self.etcd._watches.discard(self)

    # -- life cycle

    def _begin(self) -> None:
        self._timer = None
        self._generation += 1
        generation = self._generation
        self._running = Deferred.fromCoroutine(self._run())
        self._running.addBoth(self._ended, generation)
        if self._generation == generation and not self._cancelled:
            self._timer = self.etcd.reactor.callLater(self.etcd.timeout, self._check, generation)

    def _ended(self, result: Failure | None, generation: int) -> None:
        if generation != self._generation or self._cancelled:
            return
        self._restart(describe(result.value) if isinstance(result, Failure) else "stream ended")

    def _stop(self) -> None:
        self._generation += 1
        for call in (self._running, self._probe):
            if call is not None and not call.called:
                call.cancel()
        self._running = self._probe = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _restart(self, cause: str) -> None:
        self._stop()
        # One warning per outage, not one per member tried while the cluster has no leader.
        report = log.warning if self._failures == 0 else log.debug
        report("etcd_watch_moves", endpoint=self.endpoint, cause=cause, revision=self.revision)
        self.etcd.rotation.failed(self._index)
        self._index = self.etcd.rotation.current
        self._failures += 1
        pause = WATCH_RETRY_PAUSE if self._failures >= len(self.etcd.endpoints) else 0.0
        self._timer = self.etcd.reactor.callLater(pause, self._begin)

    def _check(self, generation: int) -> None:
        """The liveness read on the watch's member (a stream on a frozen member is silent)."""
        self._timer = None
        body = range_request(self.prefix, limit=1)
        attempt = self.etcd._attempt(self._index, "/v3/kv/range", body, decode_revision)
        self._probe = self.etcd._timed(attempt)

        def alive(_: int) -> None:
            if generation == self._generation:
                self._timer = self.etcd.reactor.callLater(
                    self.etcd.timeout, self._check, generation
                )

        def dead(failure: Failure) -> None:
            if generation == self._generation and not self._cancelled:
                self._restart(f"liveness read: {describe(failure.value)}")

        self._probe.addCallbacks(alive, dead)

    # -- one stream

    async def _run(self) -> None:
        if self._view is None:
            try:
                self._view = dict((await self.etcd.read_prefix_at(self.prefix, self.revision)).kvs)
            except EtcdError as reason:
                if reason.code != OUT_OF_RANGE:
                    raise
                self._view, self._resync = {}, True  # compacted before we started
        while True:
            if self._resync:
                snapshot = await self.etcd.read_prefix(self.prefix)
                events = difference(self._view, snapshot)
                self._view, self._resync = dict(snapshot.kvs), False
                self._deliver(events, snapshot.revision)
            try:
                await self._stream()
            except _CompactedAway:
                self._resync = True
                continue
            return

    async def _stream(self) -> None:
        etcd = self.etcd
        headers = {**await etcd._headers(self._index), **REQUIRE_LEADER}
        body = watch_request(self.prefix, self.revision + 1)
        response = await etcd._request(self._index, "/v3/watch", body, headers)
        if response.code != 200:
            reply = json.loads(await _read(response))
            raise _Retry(f"HTTP {response.code}: {gateway_error(reply)}")
        lines = Lines(MAX_REPLY_BYTES)
        reader = _BodyReader(lambda data: self._receive(lines.feed(data)))
        response.deliverBody(reader)  # type: ignore[no-untyped-call]
        await reader.done

    def _receive(self, lines: list[bytes]) -> None:
        for line in lines:
            message = decode_watch_message(line)
            if isinstance(message, Created):
                if self._failures:
                    log.info("etcd_watch_resumed", endpoint=self.endpoint, revision=self.revision)
                self._failures = 0
            elif isinstance(message, Changes):
                self._deliver(list(message.events))
            elif isinstance(message, Compacted):
                raise _CompactedAway(message.revision)
            else:
                if "invalid auth token" in message.reason:
                    self.etcd._token = None
                raise _Retry(f"watch canceled: {message.reason}")

    def _deliver(self, events: list[Event], revision: int = 0) -> None:
        """Hand over the events after `self.revision` (a repeat after a resume is dropped);
        `self.revision` becomes the last one's, or `revision` (a re-read's) if higher."""
        events = [event for event in events if event.kv.mod_revision > self.revision]
        assert self._view is not None
        for event in events:
            if event.kind is EventKind.PUT:
                self._view[event.kv.key] = event.kv
            else:
                self._view.pop(event.kv.key, None)
        self.revision = max([self.revision, revision, *(e.kv.mod_revision for e in events)])
        if events and not self._cancelled:
            try:
                self.on_events(events)
            except Exception:
                log.exception("etcd_watch_callback_failed", prefix=self.prefix.decode("latin-1"))


class _CompactedAway(Exception):
    """The stream's start revision is compacted away."""
