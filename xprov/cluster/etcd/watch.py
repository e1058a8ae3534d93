"""The etcd client's prefix watch: a stream held on one member at a time, checked by a timed
read, moved to the next member and resumed from the last delivered revision + 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from xprov import logs
from xprov.cluster.etcd.codec import (
    MAX_REPLY_BYTES,
    OUT_OF_RANGE,
    Changes,
    Compacted,
    Created,
    EtcdError,
    Event,
    EventKind,
    KeyValue,
    Lines,
    _Retry,
    decode_revision,
    decode_watch_message,
    describe,
    difference,
    gateway_error,
    range_request,
    watch_request,
)
from xprov.cluster.etcd.transport import _BodyReader, _read

if TYPE_CHECKING:
    from xprov.cluster.etcd.client import Etcd

log = logs.get_logger("xprov.cluster")

# After every member refused a watch in a row, wait this long (seconds) before the next round:
# an election takes 1.0-2.8 s and a leaderless member refuses at once, so retrying at once
# would spin.
WATCH_RETRY_PAUSE = 0.5

# A watch refused by a member without a leader, instead of a silent stream (etcd
# clientv3.WithRequireLeader).
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": ["true"]}


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
