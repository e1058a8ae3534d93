"""The etcd client: unary calls (range, put, txn, deleterange, lease grant/keepalive/revoke)
tried on each member in turn within one timeout each, authentication, and watches (watch.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from xprov.cluster.etcd.codec import (
    MEMBER_CODES,
    NOT_FOUND,
    UNAUTHENTICATED,
    EtcdError,
    Event,
    KeyValue,
    Reply,
    Rotation,
    Snapshot,
    TooBig,
    _Retry,
    b64,
    decode_lease,
    decode_none,
    decode_revision,
    decode_snapshot,
    decode_succeeded,
    decode_ttl,
    describe,
    gateway_error,
    put_request,
    range_request,
    replace_request,
)
from xprov.cluster.etcd.transport import IEtcdReactor, QuietPool, _Body, _Members, _read
from xprov.cluster.etcd.watch import Watch

T = TypeVar("T")


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
