"""The monitor loop: probe every service at every site on a fixed schedule, feed the
results to the pure state machines, and apply the switch rule to the active sites.

Probes run in rounds: every target at once, every `interval` seconds from the round's
start (a slow reply never delays the next round). A round is judged when all its probes
have answered or reached their deadline, so the rule always compares sites on results of
the same moment: two sites failing together can never look like one failing first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.threadpool import ThreadPool

from xprov.cluster.agreement import Verdict
from xprov.logs import get_logger
from xprov.monitor import registry
from xprov.monitor.history import History, ManualChoice, Switch
from xprov.monitor.probe import failed, result_of
from xprov.monitor.registry import Probe, ProbeContext, ServiceType
from xprov.monitor.state import (
    Cause,
    Decision,
    Health,
    Policy,
    ProbeResult,
    Recent,
    TargetState,
    Transition,
    all_failing,
    decide,
)

if TYPE_CHECKING:
    from xprov.config import Config, MonitorConfig
    from xprov.monitor.probe import IProbeReactor
    from xprov.selection import ActiveSites

log = get_logger("xprov.monitor")
BoundProbe = Callable[[], Deferred[ProbeResult]]  # a Probe bound to its target and deadline


@dataclass(frozen=True)
class Target:
    service: str
    site: str
    description: str  # what is probed, e.g. "sip udp 127.0.0.1:5060"
    probe: BoundProbe = field(compare=False)
    spec: Hashable = None  # everything the probe depends on: same spec, same target
    close: Callable[[], Any] = field(compare=False, default=lambda: None)  # its resources

    @property
    def name(self) -> str:
        return f"{self.service}@{self.site}"


class ManualChoiceError(ValueError):
    """An operator's failover or failback that the rule refuses (the message says why)."""


def build_targets(config: Config, reactor: IProbeReactor, pool: ThreadPool) -> list[Target]:
    """One target per service per site that has it, in the registry's order of services
    (sip, stun, db), then in the config's order of sites. Each has its own probe, bound to
    `reactor`, `pool` and the [monitor] settings, and probed with [monitor] timeout."""
    context = ProbeContext(reactor, pool, config.monitor)
    timeout = config.monitor.timeout
    targets: list[Target] = []
    for kind in registry.SERVICE_TYPES:
        for site_name, site in config.sites.items():
            service = site.service(kind.name)
            if service is not None:
                targets.append(_target(kind, site_name, service, kind.probe(context), timeout))
    return targets


def _target(
    kind: ServiceType, site: str, service: Hashable, probe: Probe, timeout: float
) -> Target:
    return Target(
        kind.name,
        site,
        probe.describe(service),
        lambda: probe.probe(service, timeout),
        (service, timeout, probe.settings),
        close=probe.close,
    )


class Monitor:
    def __init__(
        self,
        targets: Sequence[Target],
        active: ActiveSites,
        order: Sequence[str],
        settings: MonitorConfig,
        clock: IReactorTime,
    ) -> None:
        self.targets = list(targets)
        self.active, self.order, self.settings, self.clock = active, list(order), settings, clock
        self.policy = Policy(settings.failback, settings.hold_down)
        started = clock.seconds()
        self.states = {
            t.name: TargetState(t.name, settings.fall, settings.rise, since=started)
            for t in self.targets
        }
        self.manual: dict[str, str] = {}  # service -> site chosen by an operator
        self.switches: Counter[tuple[str, str]] = Counter()  # (service, by) -> count
        self.reasons: dict[str, tuple[str, str]] = {}  # service -> (site, why it is there)
        self.history = History(started)  # the last switches and manual choices, for operators
        self.rounds = 0
        self.blind = False
        self.not_made: frozenset[str] = frozenset()  # targets whose last probe was not made
        self._holding: dict[str, str] = {}
        # cluster mode: each round's verdicts go to the agreement (cluster.node), whose
        # majority decides; this monitor then switches nothing by itself
        self.agreement: Callable[[dict[str, Verdict]], None] | None = None
        self._next: IDelayedCall | None = None
        self._running = False

    @property
    def services(self) -> list[str]:
        return list(dict.fromkeys(t.service for t in self.targets))

    def start(self) -> None:
        self._running = True
        self._round()

    def stop(self) -> None:
        self._running = False
        if self._next is not None and self._next.active():
            self._next.cancel()

    def reconfigure(
        self, targets: Sequence[Target], order: Sequence[str], settings: MonitorConfig
    ) -> None:
        """New targets and settings (a reload): a target whose probe did not change keeps
        its state, so a reload never resets what the monitor knows."""
        old = {t: t for t in self.targets}
        probed = {t.name: _probed(t) for t in self.targets}
        now = self.clock.seconds()
        states, kept = {}, []
        for target in targets:
            # an unchanged target keeps its probe (a database's kept connection); one whose
            # address did not change keeps its state (a new timeout is no new server)
            target = old.pop(target, target)
            same = probed.get(target.name) == _probed(target)
            state = self.states.get(target.name) if same else None
            state = state or TargetState(target.name, settings.fall, settings.rise, since=now)
            state.fall, state.rise = settings.fall, settings.rise
            states[target.name] = state
            kept.append(target)
        for gone in old.values():
            gone.close()
        self.targets, self.states, self.order = kept, states, list(order)
        self.settings = settings
        self.policy = Policy(settings.failback, settings.hold_down)
        sites = {(t.service, t.site) for t in self.targets}
        self.manual = {s: site for s, site in self.manual.items() if (s, site) in sites}
        self.history.forget(set(self.manual))

    def _round(self) -> None:
        started = self.clock.seconds()
        probes = [_never_fails(t.probe) for t in self.targets]
        gatherResults(probes).addCallback(self.judge)
        if self._running:
            fast = any(s.in_transition() for s in self.states.values())
            interval = self.settings.fast_interval if fast else self.settings.interval
            delay = max(0.0, started + interval - self.clock.seconds())
            self._next = self.clock.callLater(delay, self._round)

    def judge(self, results: Sequence[ProbeResult]) -> None:
        """Apply one round's results (in `targets` order) and then the switch rule."""
        now = self.clock.seconds()
        self.rounds += 1
        for target, result in zip(self.targets, results, strict=True):
            transition = self.states[target.name].record(result, now)
            if transition is not None:
                self._log_transition(target, transition)
        self._note_not_made(results)
        blind = all_failing(list(self.states.values()))
        if blind != self.blind:
            self.blind = blind
            if blind:
                log.warning(
                    "switching_suspended",
                    reason="every target of every site fails "
                    "at once: our own network is the likelier culprit",
                )
            else:
                log.info("switching_resumed", reason="a target answers again")
        if self.agreement is not None:
            self.agreement({t.name: Verdict.of(self.states[t.name], blind) for t in self.targets})
            return
        if blind:
            return
        for service in self.services:
            self._apply(service, now)

    def _note_not_made(self, results: Sequence[ProbeResult]) -> None:
        """Say once when probes cannot be made (and once when they can again): their
        targets are not counted down, but the monitor is partly blind meanwhile."""
        not_made = frozenset(
            t.name for t, r in zip(self.targets, results, strict=True) if r.cause is Cause.LOCAL
        )
        if not_made - self.not_made:
            reasons = {r.detail for r in results if r.cause is Cause.LOCAL}
            log.warning(
                "probes_not_made",
                targets=sorted(not_made),
                reason="; ".join(sorted(reasons)),
                effect="not counted as the targets' failures",
            )
        elif self.not_made and not not_made:
            log.info("probes_made_again", targets=sorted(self.not_made))
        self.not_made = not_made

    def _apply(self, service: str, now: float) -> None:
        current = self.active.current.site_of(service)
        decision = decide(
            service,
            current,
            self.order_of(service),
            self._states_of(service),
            self.policy,
            now,
            manual=service in self.manual,
        )
        if decision is None or decision.to is None:
            self._hold(service, decision)
            return
        self._holding.pop(service, None)
        failing_since = self._states_of(service)[current].failing_since
        self.switch(
            service,
            decision.to,
            decision.reason,
            "auto",
            detection=None if failing_since is None else now - failing_since,
        )

    def _hold(self, service: str, decision: Decision | None) -> None:
        """Say once why a service that should move cannot."""
        reason = decision.reason if decision is not None else ""
        if reason and self._holding.get(service) != reason:
            log.warning("switch_impossible", service=service, reason=reason)
        if reason:
            self._holding[service] = reason
        else:
            self._holding.pop(service, None)

    def switch(
        self, service: str, site: str, reason: str, by: str, detection: float | None = None
    ) -> None:
        """Point `service` at `site`, count it and log it (by the rule, an operator or,
        in cluster mode, the agreed decision)."""
        before = self.active.current.site_of(service)
        self.reasons[service] = (site, reason)
        if before == site:  # an operator's choice of the active site: nothing moves
            log.info("switch_not_needed", service=service, site=site, by=by, reason=reason)
            return
        selection = self.active.switch({service: site})
        self.switches[(service, by)] += 1
        states = self._states_of(service)
        detection_s = None if detection is None else round(detection, 3)
        log.warning(
            "switch",
            service=service,
            before=before,
            after=site,
            by=by,
            reason=reason,
            generation=selection.generation,
            detection_s=detection_s,
            failed_probes=self._failures(states.get(before)),
        )
        self.history.switched(
            Switch(
                self.clock.seconds(),
                service,
                before,
                site,
                by,
                reason,
                detection_s,
                selection.generation,
            )
        )

    def _failures(self, state: TargetState | None) -> dict[str, Any] | None:
        if state is None or state.last is None:
            return None
        return {"consecutive": state.failures, "last": state.last.detail}

    def order_of(self, service: str) -> list[str]:
        sites = {t.site for t in self.targets if t.service == service}
        return [site for site in self.order if site in sites]

    def _states_of(self, service: str) -> dict[str, TargetState]:
        return {t.site: self.states[t.name] for t in self.targets if t.service == service}

    def _log_transition(self, target: Target, transition: Transition) -> None:
        state = self.states[target.name]
        level = log.warning if transition.after is Health.DOWN else log.info
        level(
            "target_state",
            target=target.name,
            probe=target.description,
            before=transition.before.value,
            after=transition.after.value,
            reason=transition.reason,
            last=state.last.detail if state.last else None,
            latency_ms=round(state.last.latency * 1000, 1) if state.last else None,
            in_previous_state_s=round(transition.duration, 3),
        )

    # Manual control ------------------------------------------------------------------

    def failover(self, service: str, site: str, force: bool = False, by: str = "operator") -> None:
        """Point `service` at `site` and keep it there until `release`/`failback`. `by`:
        who asked, for the status (e.g. "admin 127.0.0.1")."""
        states = self._known(service)
        if site not in states:
            raise ManualChoiceError(f"{service} has no site {site!r}")
        if states[site].health is not Health.UP and not force:
            raise ManualChoiceError(
                f"{service} at {site} is {states[site].health.value}; use force to switch anyway"
            )
        self.manual[service] = site
        self.history.chosen(service, ManualChoice(self.clock.seconds(), by))
        self.switch(service, site, f"operator chose {site}", "operator")

    def failback(self, service: str, force: bool = False) -> None:
        """Return `service` to its primary and hand it back to the automatic rule."""
        states = self._known(service)
        primary = self.order_of(service)[0]
        if states[primary].health is not Health.UP and not force:
            raise ManualChoiceError(
                f"{service} at {primary} is {states[primary].health.value}; "
                "use force to fail back anyway"
            )
        self.manual.pop(service, None)
        self.history.chosen(service, None)
        self.switch(service, primary, f"operator failed back to {primary}", "operator")

    def why(self, service: str) -> str:
        """Why `service` is on its active site: the reason given when it moved there, unless
        a reload moved it since (a site renamed, another primary)."""
        active = self.active.current.site_of(service)
        site, reason = self.reasons.get(service, (None, ""))
        if site == active:
            return reason
        primary = self.order_of(service)[0] if self.order_of(service) else active
        return "primary (initial)" if active == primary else f"not the primary ({primary})"

    def _known(self, service: str) -> dict[str, TargetState]:
        states = self._states_of(service)
        if not states:
            raise ManualChoiceError(f"unknown service {service!r}")
        return states

    def status(self) -> dict[str, Any]:
        now = self.clock.seconds()
        return {
            "rounds": self.rounds,
            "switching_suspended": self.blind,
            "services": {service: self._service_status(service) for service in self.services},
            "switches": [switch.as_json() for switch in self.history.switches],
            "targets": {t.name: _target_status(t, self.states[t.name], now) for t in self.targets},
        }

    def _service_status(self, service: str) -> dict[str, Any]:
        choice = self.history.manual.get(service)
        sites = self.order_of(service)
        return {
            "active": self.active.current.site_of(service),
            "primary": sites[0] if sites else None,
            "sites": sites,
            "since": self.history.since(service),
            "manual": self.manual.get(service),
            "manual_at": None if choice is None else choice.at,
            "manual_by": None if choice is None else choice.by,
            "why": self.why(service),
            "holding": self._holding.get(service),
        }


def _probed(target: Target) -> Hashable:
    """What a target's state is about: its service's address and settings (its spec's
    first part), not the probe's deadline or the monitor's settings."""
    return target.spec[0] if isinstance(target.spec, tuple) else target.spec


def _target_status(target: Target, state: TargetState, now: float) -> dict[str, Any]:
    return {
        "service": target.service,
        "site": target.site,
        "probe": target.description,
        "state": state.health.value,
        "for_s": round(now - state.since, 1),
        "consecutive_failures": state.failures,
        "consecutive_successes": state.successes,
        "last": None
        if state.last is None
        else {
            "ok": state.last.ok,
            "cause": state.last.cause.value,
            "detail": state.last.detail,
            "latency_ms": round(state.last.latency * 1000, 1),
        },
        "transitions": [
            {"at": t.at, "before": t.before.value, "after": t.after.value, "reason": t.reason}
            for t in state.transitions
        ],
        "recent": [_recent(r) for r in state.recent],
    }


def _recent(result: Recent) -> list[Any]:
    """[epoch seconds, outcome, latency in ms]: a list, the status being read every second."""
    return [round(result.at, 3), result.outcome, round(result.latency * 1000, 1)]


def _never_fails(probe: BoundProbe) -> Deferred[ProbeResult]:
    """A probe that raises or errbacks is a failed probe, never a stopped monitor."""
    try:
        running = probe()
    except Exception as exc:
        running = Deferred()
        running.errback(exc)
    return running.addErrback(lambda reason: result_of(failed(reason), 0.0))
