"""An etcd in memory for the cluster node's unit tests on `task.Clock`: revisions, leases that
expire on the clock, compare-and-swap and prefix watches, with the semantics of etcd v3
(tests/integration/test_cluster.py runs the same node against a real etcd cluster).
`reachable = False` makes every call of a client fail, like a member out of reach."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from xprov.cluster.etcd import EtcdError, Event, EventKind, KeyValue, Snapshot


@dataclass
class Lease:
    ttl: int
    expires: float


class MemoryEtcd:
    """The cluster's state; `client()` gives each observer its own connection."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.revision = clock, 1
        self.kvs: dict[bytes, KeyValue] = {}
        self.leases: dict[int, Lease] = {}
        self.watchers: list[tuple[bytes, Callable[[list[Event]], None]]] = []

    def client(self) -> MemoryClient:
        return MemoryClient(self)

    def expire(self) -> None:
        """Drop the leases whose time has come, and their keys (as etcd's lessor does)."""
        now = self.clock.seconds()
        for lease_id in [i for i, lease in self.leases.items() if lease.expires <= now]:
            del self.leases[lease_id]
            for key in [k for k, kv in self.kvs.items() if kv.lease == lease_id]:
                self.delete(key)

    def put(self, key: bytes, value: bytes, lease: int) -> int:
        self.revision += 1
        old = self.kvs.get(key)
        created = old.create_revision if old else self.revision
        kv = KeyValue(key, value, self.revision, created, lease)
        self.kvs[key] = kv
        self._notify(Event(EventKind.PUT, kv))
        return self.revision

    def delete(self, key: bytes) -> int:
        if key in self.kvs:
            self.revision += 1
            old = self.kvs.pop(key)
            self._notify(
                Event(EventKind.DELETE, replace(old, value=b"", mod_revision=self.revision))
            )
        return self.revision

    def _notify(self, event: Event) -> None:
        for prefix, deliver in list(self.watchers):
            if event.kv.key.startswith(prefix):
                deliver([event])


class MemoryWatch:
    def __init__(
        self, etcd: MemoryEtcd, entry: tuple[bytes, Callable[[list[Event]], None]]
    ) -> None:
        self.etcd, self.entry, self.revision = etcd, entry, etcd.revision

    def cancel(self) -> None:
        if self.entry in self.etcd.watchers:
            self.etcd.watchers.remove(self.entry)


class MemoryClient:
    def __init__(self, etcd: MemoryEtcd) -> None:
        self.etcd, self.reachable, self.calls = etcd, True, 0
        self.missed: list[tuple[Callable[[list[Event]], None], list[Event]]] = []

    def _call(self, result: Callable[[], object]) -> Deferred:
        self.calls += 1
        self.etcd.expire()
        if not self.reachable:
            return fail(EtcdError("every endpoint failed: 127.0.0.1:2379: timeout"))
        missed, self.missed = self.missed, []
        for deliver, events in missed:  # a resumed watch: from its last revision on
            deliver(events)
        return succeed(result())

    def read_prefix(self, prefix: bytes) -> Deferred[Snapshot]:
        return self._call(
            lambda: Snapshot(
                self.etcd.revision,
                {k: kv for k, kv in self.etcd.kvs.items() if k.startswith(prefix)},
            )
        )

    def put(self, key: bytes, value: bytes, lease: int = 0) -> Deferred[int]:
        return self._call(lambda: self.etcd.put(key, value, lease))

    def replace(
        self, key: bytes, value: bytes, mod_revision: int, lease: int = 0
    ) -> Deferred[bool]:
        def cas() -> bool:
            old = self.etcd.kvs.get(key)
            if (old.mod_revision if old else 0) != mod_revision:
                return False
            self.etcd.put(key, value, lease)
            return True

        return self._call(cas)

    def grant(self, ttl: int) -> Deferred[int]:
        def grant() -> int:
            lease_id = len(self.etcd.leases) + 1000 + self.etcd.revision
            self.etcd.leases[lease_id] = Lease(ttl, self.etcd.clock.seconds() + ttl)
            return lease_id

        return self._call(grant)

    def keepalive(self, lease: int) -> Deferred[int]:
        def renew() -> int:
            held = self.etcd.leases.get(lease)
            if held is None:
                return 0
            held.expires = self.etcd.clock.seconds() + held.ttl
            return held.ttl

        return self._call(renew)

    def revoke(self, lease: int) -> Deferred[None]:
        def revoke() -> None:
            self.etcd.leases.pop(lease, None)
            for key in [k for k, kv in self.etcd.kvs.items() if kv.lease == lease]:
                self.etcd.delete(key)

        return self._call(revoke)

    def watch(
        self, prefix: bytes, start_revision: int, on_events: Callable[[list[Event]], None]
    ) -> MemoryWatch:
        def deliver(events: list[Event]) -> None:
            if self.reachable:
                on_events(events)
            else:  # out of reach: delivered when the watch resumes
                self.missed.append((on_events, events))

        entry = (prefix, deliver)
        self.etcd.watchers.append(entry)
        return MemoryWatch(self.etcd, entry)

    def close(self) -> Deferred[None]:
        return succeed(None)
