"""One observer in the cluster (issue 16): its lease, its published verdicts, the decision
keys it watches, applies and, when the majority says so, writes.

Keys under `[cluster] prefix`:
- `observer/<name>`: the observer's verdicts on every target, its role and the content hash
  of the inventory it serves, under its lease (gone when it stops renewing it);
- `decision/<service>`: a `Choice` (site, epoch, reason, by, manual), written only by
  compare-and-swap on the revision this node last saw, so concurrent writers make one change.

Every instance applies every decision it sees; none switches by itself. Without etcd (no
reply within the timeout, no quorum) the node keeps the last decision it saw, says so once
(`agreement_lost`) and in its status, and writes nothing until the link is back.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall

from xprov.cluster.agreement import (
    Choice,
    Verdict,
    agree,
    manual_choice,
    next_choice,
    publishable,
    read_verdicts,
)
from xprov.cluster.etcd import Event, EventKind, KeyValue, Snapshot
from xprov.config.cluster import NAME_CHARACTERS
from xprov.logs import get_logger
from xprov.monitor.errors import error_detail
from xprov.monitor.loop import ManualChoiceError
from xprov.monitor.state import Health

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from xprov.cluster.etcd import Etcd, Watch
    from xprov.config import ClusterConfig
    from xprov.monitor.loop import Monitor

log = get_logger("xprov.cluster")
OBSERVER, DECISION = b"observer/", b"decision/"


class Link(enum.Enum):
    STARTING = "starting"  # no reply from etcd yet: the primary, or the last decision seen
    OK = "ok"
    LOST = "lost"  # etcd unreachable or without quorum: the last decision stands


class Observed:
    """What one observer published."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.verdicts = read_verdicts(data["targets"])
        self.role, self.inventory = str(data.get("role", "")), data.get("inventory")
        self.at = float(data.get("at", 0.0))


class Node:
    def __init__(
        self,
        etcd: Etcd,
        settings: ClusterConfig,
        monitor: Monitor,
        clock: IReactorTime,
        role: str,
        inventory: Callable[[], str | None] = lambda: None,
    ) -> None:
        """`role`: "instance" (serves phones) or "witness". `inventory`: the content hash of
        the inventory served (None for a witness)."""
        self.etcd, self.settings, self.monitor, self.clock = etcd, settings, monitor, clock
        self.role, self.inventory, self.name = role, inventory, settings.name
        self.prefix = settings.prefix.encode()
        self.link, self.link_since = Link.STARTING, clock.seconds()
        self.lease: int | None = None
        self.watch: Watch | None = None
        self.observers: dict[str, Observed] = {}
        # service -> (its last good decision, the key's mod_revision)
        self.choices: dict[str, tuple[Choice | None, int]] = {}
        self.bad: dict[str, str] = {}  # service -> why its key's value was not applied
        self.local: dict[str, str] = {}  # service -> site an operator forced on this node only
        self.mine: dict[str, Verdict] = {}
        self.published: bytes | None = None
        self.writing: set[str] = set()
        self.problem = ""
        self.renewal = LoopingCall(self._renew)
        self.renewal.clock = clock
        self._retry: IDelayedCall | None = None
        self._known: list[Callable[[], None]] = []  # `when_known` callbacks still waiting
        self.heard = float("-inf")  # when the call etcd last answered was made (our clock)
        self.running = False

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        self.running = True
        self.monitor.agreement = self.observed
        self._connect()

    def stop(self) -> Deferred[None]:
        self.running = False
        self.monitor.agreement = None
        if self.renewal.running:
            self.renewal.stop()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self.watch is not None:
            self.watch.cancel()
        lease, self.lease = self.lease, None
        done: Deferred[Any] = self.etcd.revoke(lease) if lease is not None else succeed(None)
        done.addErrback(lambda _: None)  # stopping without etcd: the lease expires by itself
        return done.addBoth(lambda _: self.etcd.close())

    def when_known(self, callback: Callable[[], None]) -> None:
        """`callback()` once this node knows what to serve: the decisions read and applied,
        or etcd found unreachable (the primary stands); at once if it knows already. At most
        two calls after the start (grant, read), each `timeout` per endpoint."""
        if self.link is Link.STARTING:
            self._known.append(callback)
        else:
            callback()

    def _tell_known(self) -> None:
        waiting, self._known = self._known, []
        for callback in waiting:
            callback()

    def _connect(self) -> None:
        """Lease, read, watch, publish; on a failure, try again a lease TTL later."""
        self._retry = None

        def leased(lease: int) -> Deferred[Snapshot]:
            self.lease, self.published = lease, None
            return self.etcd.read_prefix(self.prefix)

        def read(snapshot: Snapshot) -> None:
            self.heard = self.clock.seconds()
            self.observers.clear()
            self.choices.clear()
            self._take([Event(EventKind.PUT, kv) for kv in snapshot.kvs.values()])
            if self.watch is not None:
                self.watch.cancel()
            self.watch = self.etcd.watch(self.prefix, snapshot.revision + 1, self._take)
            if not self.renewal.running:
                self.renewal.start(max(0.5, self.settings.lease_ttl / 3), now=False)
            self._linked()
            self._publish()

        started = self.etcd.grant(self.settings.lease_ttl).addCallback(leased)
        started.addCallbacks(read, self._lost).addErrback(self._lost)

    def _renew(self) -> None:
        if self.lease is None:
            return
        lease, asked = self.lease, self.clock.seconds()

        def stale() -> bool:
            """Renewals overlap while members time out (each tries every member): a reply
            about a lease since replaced, or to a call older than one already answered,
            says nothing of the link now (it used to expire the new lease, or mark the
            link lost just after it was regained)."""
            return lease != self.lease or asked < self.heard

        def renewed(ttl: int) -> None:
            if stale():
                return
            self.heard = asked
            if ttl > 0:
                self._linked()
                return
            log.warning("cluster_lease_expired", observer=self.name, lease=lease)
            self.renewal.stop()
            self.lease = None
            self._connect()  # a new lease; our verdicts again

        def failed(failure: Any) -> None:
            if not stale():
                self._lost(failure)

        self.etcd.keepalive(lease).addCallbacks(renewed, failed)

    def _linked(self) -> None:
        if self.link is not Link.OK:
            if self.link is Link.LOST:
                log.warning("agreement_regained", observer=self.name, after_s=self._lost_for())
            self.link, self.link_since, self.problem = Link.OK, self.clock.seconds(), ""
            self.evaluate()
            self._tell_known()

    def _lost(self, failure: Any) -> None:
        self.problem = error_detail(failure.value)
        if self.link is not Link.LOST:
            self.link, self.link_since = Link.LOST, self.clock.seconds()
            log.error(
                "agreement_lost",
                observer=self.name,
                reason=self.problem,
                effect="the last decision stands; no switch until etcd answers again",
            )
            self._tell_known()
        if self.lease is None and self.running and self._retry is None:
            self._retry = self.clock.callLater(self.settings.lease_ttl, self._connect)

    def _lost_for(self) -> float:
        return round(self.clock.seconds() - self.link_since, 3)

    # -- what is published, what is seen ------------------------------------------------------

    def observed(self, verdicts: dict[str, Verdict]) -> None:
        """A monitor round's verdicts (the monitor calls this instead of switching)."""
        self.mine = verdicts
        self._publish()
        self.evaluate()

    def _publish(self) -> None:
        if self.lease is None or self.link is not Link.OK or not self.mine:
            return
        value = json.dumps(
            {
                "role": self.role,
                "inventory": self.inventory(),
                "targets": publishable(self.mine),
            },
            sort_keys=True,
        ).encode()
        if value == self.published:
            return
        self.published = value
        key = self.prefix + OBSERVER + self.name.encode()
        self.etcd.put(key, value, self.lease).addErrback(self._unpublished)

    def _unpublished(self, failure: Any) -> None:
        self.published = None  # publish again at the next round
        self._lost(failure)

    def _take(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._event(event)
            except Exception as exc:  # one bad key must not cost the batch's others
                log.error(
                    "cluster_event_failed", key=repr(event.kv.key[:100]), reason=repr(exc)[:200]
                )
        self.evaluate()

    def _event(self, event: Event) -> None:
        key = event.kv.key[len(self.prefix) :]
        kind, _, name = key.partition(b"/")
        text = name.decode(errors="replace")
        if kind + b"/" == OBSERVER:
            self._observer(text, event)
        elif kind + b"/" == DECISION and text in self.monitor.services:
            if event.kind is EventKind.PUT:
                self._decision(text, event.kv)
            else:  # deleted by hand: the last decision stands until a new one is written
                self.choices.pop(text, None)

    def _observer(self, name: str, event: Event) -> None:
        if event.kind is EventKind.DELETE:
            if name == self.name:
                self.published = None  # deleted by hand: ours again at the next round
            if self.observers.pop(name, None) is not None:
                log.info("observer_gone", observer=name)
            return
        try:
            if not name or not set(name) <= NAME_CHARACTERS or len(name) > 64:
                raise ValueError("not an observer's name")
            if event.kv.lease == 0:  # a live observer's key is always under its lease
                raise ValueError("not under a lease")
            seen = Observed(json.loads(event.kv.value))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("observer_unreadable", observer=name[:64], reason=str(exc)[:200])
            self.observers.pop(name, None)  # whatever it said before counts no more
            return
        if name not in self.observers:
            log.info("observer_joined", observer=name, role=seen.role)
        self.observers[name] = seen
        if name == self.name:
            self._own(event.kv)

    def _own(self, kv: KeyValue) -> None:
        """Our key as etcd holds it. Puts can land out of order: one that timed out on a
        member is tried on the next while a later round's put goes straight there, and a
        member cut from the leader can apply a put it kept once healed. etcd then holds an
        old verdict of ours, which `_publish`, sending only changes, would leave for good.
        So any other value than the one last sent is replaced at the next round (at most
        one more put a round, whatever the cause)."""
        if kv.value != self.published:
            if self.published is not None:
                log.info(
                    "observer_key_stale",
                    observer=self.name,
                    revision=kv.mod_revision,
                    effect="our verdicts are published again at the next round",
                )
            self.published = None

    def _decision(self, service: str, kv: KeyValue) -> None:
        """A decision key's new value. One that cannot be applied (not a decision, a site
        this service does not have, an epoch not above the last) is logged and shown in
        status, and the last good decision stands: its revision is kept, so the next
        decision (the rule's or an operator's) replaces the bad value by compare-and-swap."""
        last = self.last(service)
        try:
            choice = Choice.decode(kv.value)
            if choice.site not in self.monitor.order_of(service):
                raise ValueError(f"{service} has no site {choice.site[:64]!r}")
            if last is not None and choice.epoch <= last.epoch:
                raise ValueError(f"epoch {choice.epoch} is not above {last.epoch}")
        except ValueError as exc:
            self.bad[service] = str(exc)[:200]
            log.error("decision_unreadable", service=service, reason=self.bad[service])
            self.choices[service] = (last, kv.mod_revision)
            return
        self.bad.pop(service, None)
        self.choices[service] = (choice, kv.mod_revision)
        self._apply(service, choice)

    def _apply(self, service: str, choice: Choice) -> None:
        if service in self.local:
            return  # an operator's local override holds until released
        before = self.monitor.active.current.site_of(service)
        if before != choice.site:
            by = "operator" if choice.by.startswith("operator") else "cluster"
            reason = f"{choice.reason} (decision {choice.epoch} by {choice.by})"
            # detection as this observer saw it: from the first failed probe of the site left
            state = self.monitor.states.get(f"{service}@{before}")
            since = state.failing_since if state is not None else None
            detection = None if since is None else self.clock.seconds() - since
            self.monitor.switch(service, choice.site, reason, by, detection)
        self.monitor.reasons[service] = (choice.site, f"{choice.reason} (decision {choice.epoch})")

    # -- deciding ------------------------------------------------------------------------

    def last(self, service: str) -> Choice | None:
        """`service`'s last good decision (None: none yet, the primary)."""
        return self.choices.get(service, (None, 0))[0]

    def revision(self, service: str) -> int:
        """Its key's revision, for the next compare-and-swap (0: no key)."""
        return self.choices.get(service, (None, 0))[1]

    def verdicts(self) -> dict[str, Mapping[str, Verdict]]:
        return {name: seen.verdicts for name, seen in self.observers.items()}

    def evaluate(self) -> None:
        """The rule on the majority's view, for every service; a change written by CAS."""
        if self.link is not Link.OK or not self.running:
            return
        verdicts, now = self.verdicts(), self.clock.seconds()
        for service in self.monitor.services:
            choice, _ = next_choice(
                service,
                self.last(service),
                self.monitor.order_of(service),
                verdicts,
                self.monitor.policy,
                now,
                self.name,
                self.settings.min_observers,
            )
            if choice is not None and service not in self.writing:
                self._write(service, choice, self.revision(service))

    def _write(self, service: str, choice: Choice, revision: int) -> Deferred[bool]:
        self.writing.add(service)
        key = self.prefix + DECISION + service.encode()
        written = self.etcd.replace(key, choice.encode(), revision)

        def done(ok: bool) -> bool:
            self.writing.discard(service)
            seen = self.choices.get(service)
            known = seen is not None and seen[0] is not None and seen[0].epoch >= choice.epoch
            if ok and not known:  # applied at once (an operator's answer shows it); the
                # watch brings the same decision with its revision
                self._apply(service, choice)
            if ok:
                log.warning(
                    "decision_written",
                    service=service,
                    site=choice.site,
                    epoch=choice.epoch,
                    reason=choice.reason,
                    by=choice.by,
                )
            return ok

        def failed(failure: Any) -> Any:
            self.writing.discard(service)
            self._lost(failure)
            return failure

        return written.addCallbacks(done, failed)

    # -- operators ------------------------------------------------------------------------

    def failover(self, service: str, site: str, force: bool = False) -> Deferred[None]:
        return self._manual(service, site, force, failback=False)

    def failback(self, service: str, force: bool = False) -> Deferred[None]:
        return self._manual(service, self.monitor.order_of(service)[0], force, failback=True)

    def _manual(self, service: str, site: str, force: bool, failback: bool) -> Deferred[None]:
        """The decision key, written for every instance. ManualChoiceError: refused (a site
        the majority does not see up, no agreement, a concurrent change)."""
        if service not in self.monitor.services:
            raise ManualChoiceError(f"unknown service {service!r}")
        if self.link is not Link.OK:
            raise ManualChoiceError(
                f"no agreement (etcd: {self.problem or 'not connected'}); every instance keeps "
                "the last decision. To switch this instance alone, use --local"
            )
        try:
            choice = manual_choice(
                service,
                site,
                self.last(service),
                self.monitor.order_of(service),
                self.verdicts(),
                force,
                f"operator via {self.name}",
                self.clock.seconds(),
                failback=failback,
                minimum=self.settings.min_observers,
            )
        except ValueError as exc:
            raise ManualChoiceError(str(exc)) from None

        def written(ok: bool) -> None:
            if not ok:
                raise ManualChoiceError(f"{service}'s decision changed meanwhile; try again")

        return self._write(service, choice, self.revision(service)).addCallback(written)

    def local_failover(self, service: str, site: str | None, force: bool = False) -> None:
        """The escape hatch for a total loss of etcd: `site` on this instance only, whatever
        the cluster says, until released (`site` None: follow the decisions again)."""
        if service not in self.monitor.services:
            raise ManualChoiceError(f"unknown service {service!r}")
        if site is None:
            self.local.pop(service, None)
            log.warning("local_override_released", service=service)
            primary = self.monitor.order_of(service)[0]
            last = self.last(service)
            self._apply(service, last or Choice(primary, 0, "primary", "", False, 0.0))
            return
        if site not in self.monitor.order_of(service):
            raise ManualChoiceError(f"{service} has no site {site!r}")
        state = self.monitor.states.get(f"{service}@{site}")
        if not force and (state is None or state.health is not Health.UP):
            seen = state.health.value if state is not None else "unknown"
            raise ManualChoiceError(
                f"{service} at {site} is {seen} to this instance; use force to switch anyway"
            )
        self.local[service] = site
        log.warning(
            "local_override",
            service=service,
            site=site,
            effect="this instance only; the other instances follow the cluster's decision",
        )
        self.monitor.switch(service, site, f"operator chose {site} on {self.name} only", "operator")

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        inventories = {s.inventory for s in self.observers.values() if s.role == "instance"}
        return {
            "mode": "etcd",
            "name": self.name,
            "role": self.role,
            "agreement": self.link.value,
            "since": self.link_since,
            "problem": self.problem or None,
            "inventory": self.inventory(),
            "inventories_agree": len(inventories) <= 1,
            "observers": {
                name: {
                    "role": seen.role,
                    "inventory": seen.inventory,
                    "targets": {t: v.health.value for t, v in sorted(seen.verdicts.items())},
                }
                for name, seen in sorted(self.observers.items())
            },
            "agreed": {
                t.name: agree(t.name, self.verdicts(), self.settings.min_observers).health.value
                for t in self.monitor.targets
            },
            "decisions": {
                service: {**json.loads(choice.encode()), "revision": revision}
                for service, (choice, revision) in sorted(self.choices.items())
                if choice is not None
            },
            "unreadable_decisions": dict(self.bad),
            "local_overrides": dict(self.local),
        }
