"""The pure part of the monitor: fall/rise state per target and the switch decision rule.

No clock and no I/O: every function takes `now` and results, and returns what changed, so
every scenario (flapping, a lost probe, both sites down, everything down at once, manual
override, hold-down) is a plain unit test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal, Protocol

from xprov.monitor import registry


class Health(Enum):
    UNKNOWN = "unknown"  # not yet `rise` successes nor `fall` failures since start
    UP = "up"
    DOWN = "down"


class Cause(Enum):
    """What a probe's result tells about."""

    TARGET = "target"  # the target's answer, or its silence: counts toward rise and fall
    LOCAL = "local"  # this process could not make the probe (out of file descriptors): it
    #   says nothing about the target, which must not fail over because we are starved


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency: float  # seconds from sending the probe to its verdict
    detail: str  # "200 OK", "timeout", "connection refused", ... never a secret
    cause: Cause = Cause.TARGET
    timed_out: bool = False  # no answer by the probe's deadline


# A probe result as the status page's strip shows it.
Outcome = Literal["up", "down", "timeout", "not made"]
# Results kept per target for that strip: 3 minutes at the default 1 s interval.
RECENT_KEPT = 180


def outcome_of(result: ProbeResult) -> Outcome:
    """ "up", "down" (an answer that is a failure, or a refused connection), "timeout" (no
    answer by the deadline) or "not made" (this process could not probe)."""
    if result.cause is Cause.LOCAL:
        return "not made"
    if result.ok:
        return "up"
    return "timeout" if result.timed_out else "down"


@dataclass(frozen=True)
class Recent:
    """One probe result on the strip."""

    at: float  # epoch seconds
    outcome: Outcome
    latency: float  # seconds


@dataclass(frozen=True)
class Transition:
    target: str
    before: Health
    after: Health
    at: float
    reason: str  # e.g. "3 consecutive failures, last: timeout"
    duration: float  # seconds spent in `before`


@dataclass
class TargetState:
    """HAProxy's model: `fall` consecutive failures mark a target down, `rise` consecutive
    successes mark it up; one result of the other kind resets the count."""

    name: str
    fall: int
    rise: int
    health: Health = Health.UNKNOWN
    failures: int = 0  # consecutive
    successes: int = 0  # consecutive
    since: float = 0.0  # when `health` was entered
    healthy_since: float | None = None  # start of the current unbroken run of successes
    failing_since: float | None = None  # start of the current unbroken run of failures
    last: ProbeResult | None = None
    transitions: deque[Transition] = field(default_factory=lambda: deque(maxlen=20))
    recent: deque[Recent] = field(default_factory=lambda: deque(maxlen=RECENT_KEPT))
    total_ok: int = 0
    total_failed: int = 0

    def record(self, result: ProbeResult, now: float) -> Transition | None:
        self.last = result
        self.recent.append(Recent(now, outcome_of(result), result.latency))
        if result.cause is Cause.LOCAL:
            # Not an observation of the target: no count moves, but an unobserved moment is
            # no proof of continuous health (an automatic failback waits for more).
            self.healthy_since = None
            return None
        if result.ok:
            self.total_ok += 1
            self.successes += 1
            self.failures = 0
            self.failing_since = None
            if self.healthy_since is None:
                self.healthy_since = now
            if self.health is not Health.UP and self.successes >= self.rise:
                return self._enter(Health.UP, now, f"{self.successes} consecutive successes")
        else:
            self.total_failed += 1
            self.failures += 1
            self.successes = 0
            self.healthy_since = None
            if self.failing_since is None:
                self.failing_since = now
            if self.health is not Health.DOWN and self.failures >= self.fall:
                reason = f"{self.failures} consecutive failures, last: {result.detail}"
                return self._enter(Health.DOWN, now, reason)
        return None

    @property
    def reason(self) -> str:
        """Why the target is in its health: its last transition's reason ("" before one)."""
        return self.transitions[-1].reason if self.transitions else ""

    def in_transition(self) -> bool:
        """Counting towards a change of state: worth probing faster."""
        return (
            self.health is Health.UNKNOWN
            or (self.health is Health.UP and self.failures > 0)
            or (self.health is Health.DOWN and self.successes > 0)
        )

    def _enter(self, health: Health, now: float, reason: str) -> Transition:
        transition = Transition(self.name, self.health, health, now, reason, now - self.since)
        self.health, self.since = health, now
        self.transitions.append(transition)
        return transition


class SiteView(Protocol):
    """What the switch rule reads of a service's target at one site: one observer's
    `TargetState` (standalone), or the observers' majority (`cluster.agreement.Agreed`)."""

    @property
    def health(self) -> Health: ...
    @property
    def healthy_since(self) -> float | None: ...  # start of its unbroken health, seconds
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class Policy:
    failback: str  # "manual" or "auto"
    hold_down: float  # seconds of continuous health before an automatic failback
    # the services failed back by hand only (a database): the registry's table says which
    never_auto_failback: frozenset[str] = field(default_factory=registry.never_auto_failback)


@dataclass(frozen=True)
class Decision:
    """What the rule says about one service: switch (`to` set), or hold with a reason."""

    service: str
    to: str | None
    reason: str


def all_failing(states: Sequence[TargetState]) -> bool:
    """Every target of every site failed its last probe: our own network is the likelier
    culprit, so nothing switches."""
    return bool(states) and all(s.last is not None and not s.last.ok for s in states)


def decide(
    service: str,
    active: str,
    order: Sequence[str],
    states: Mapping[str, SiteView],
    policy: Policy,
    now: float,
    manual: bool = False,
) -> Decision | None:
    """The switch rule for one service. `order` lists its sites, primary first; `states`
    holds its target at each site. None: nothing to do."""
    if manual:
        return None  # the operator's choice stands until released
    current = states[active]
    if current.health is Health.DOWN:
        for site in order:
            if site != active and states[site].health is Health.UP:
                return Decision(
                    service,
                    site,
                    f"{service} at {active} down ({current.reason}); {site} up",
                )
        return Decision(service, None, f"{service} at {active} down and no other site is up")
    primary = order[0]
    if active == primary or policy.failback != "auto" or service in policy.never_auto_failback:
        return None
    home = states[primary]
    if home.health is Health.UP and home.healthy_since is not None:
        healthy_for = now - home.healthy_since
        if healthy_for >= policy.hold_down:
            return Decision(
                service,
                primary,
                f"{service} at {primary} healthy for "
                f"{healthy_for:.0f} s (hold-down {policy.hold_down:.0f} s)",
            )
    return None
