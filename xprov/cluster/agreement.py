"""Two data centres, one decision (issue 16): the pure part of the agreement.

Every observer (an xprov instance per data centre, `xprov witness` in a third place)
publishes its verdict on every target under its own etcd lease; an observer whose lease
expired is not live and has no vote. A target is DOWN (or UP) when more than half of the live
observers say so; otherwise its health is UNKNOWN, and the switch rule (`monitor.state.decide`,
the same rule standalone mode uses) moves nothing to or away from it. A partition between the
data centres therefore switches nothing while the witness still sees both sites: each side's
"the other is down" is one vote of three.

The decision itself is one etcd key per service holding a `Choice`, written by
compare-and-swap on the key's revision, so two observers that decide at once make one
change; its `epoch` only grows.

No clock, no I/O: every function takes `now` and the verdicts, so partitions, stale
observers and manual choices are plain unit tests (tests/unit/test_agreement.py).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from xprov.monitor.state import Decision, Health, Policy, SiteView, TargetState, decide

TEXT_BYTES = 500  # a decision's or a verdict's texts: they reach logs and terminals
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Verdict:
    """One observer's view of one target."""

    health: Health
    since: float  # when the observer's state entered `health` (its wall clock, seconds)
    reason: str  # "3 consecutive failures, last: timeout", "" before any transition

    @classmethod
    def of(cls, state: TargetState, blind: bool) -> Verdict:
        """What an observer publishes: UNKNOWN for every target while all of its probes fail
        (its own network is the likelier culprit, so it abstains rather than vote DOWN)."""
        if blind:
            return cls(Health.UNKNOWN, state.since, "this observer's probes all fail")
        return cls(state.health, state.since, _CONTROL.sub(" ", state.reason)[:TEXT_BYTES])


# observer name -> target name ("sip@chicago") -> its verdict: the live observers only
Verdicts = Mapping[str, Mapping[str, Verdict]]


@dataclass(frozen=True)
class Agreed:
    """The live observers' joint view of one target: a `monitor.state.SiteView`."""

    health: Health
    reason: str
    healthy_since: float | None  # when a majority had seen it UP (for the hold-down)
    votes: Mapping[str, Health]  # observer -> what it sees


def quorum(observers: int) -> int:
    """Votes that make a majority of `observers` (1 of 1, 2 of 2 or 3, 3 of 4 or 5)."""
    return observers // 2 + 1


def agree(target: str, verdicts: Verdicts, minimum: int = 2) -> Agreed:
    """The majority's view of `target`, from at least `minimum` votes (an observer alone
    never decides: `[cluster] min_observers`); UNKNOWN without one."""
    votes = {
        name: seen[target].health if target in seen else Health.UNKNOWN
        for name, seen in verdicts.items()
    }
    need = max(quorum(len(votes)), minimum)
    for health in (Health.DOWN, Health.UP):
        holders = sorted(
            (verdicts[name][target] for name, vote in votes.items() if vote is health),
            key=lambda verdict: verdict.since,
        )
        if votes and len(holders) >= need:
            reasons = sorted({v.reason for v in holders if v.reason})
            reason = f"{len(holders)} of {len(votes)} observers" + (
                f": {'; '.join(reasons)}" if reasons else ""
            )
            # the moment the majority was reached: the need-th observer to see it so
            since = holders[need - 1].since if health is Health.UP else None
            return Agreed(health, reason, since, votes)
    counts = ", ".join(f"{sum(v is h for v in votes.values())} {h.value}" for h in Health if votes)
    text = f"no majority of {len(votes)} observers ({counts}; {need} needed)"
    return Agreed(Health.UNKNOWN, text, None, votes)


@dataclass(frozen=True)
class Choice:
    """The value of a service's decision key: where it is served and why."""

    site: str
    epoch: int  # grows by one with every change of the key
    reason: str
    by: str  # the observer that wrote it, or "operator via <observer>"
    manual: bool  # an operator's choice: the automatic rule leaves it alone
    at: float  # wall clock of the write, seconds

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Choice:
        """ValueError for anything but a Choice's JSON (a key written by hand, say): each
        field of its type, texts without control characters and at most TEXT_BYTES long
        (they reach logs and terminals), the epoch a positive 63-bit integer."""
        if len(data) > 4 * TEXT_BYTES:
            raise ValueError(f"not a decision: more than {4 * TEXT_BYTES} bytes")
        try:
            raw: Any = json.loads(data)
            texts = [raw["site"], raw["reason"], raw["by"]]
            epoch, manual, at = raw["epoch"], raw["manual"], raw["at"]
        except (KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not a decision: {exc}") from None
        if not all(isinstance(t, str) and len(t) <= TEXT_BYTES for t in texts):
            raise ValueError(
                f"not a decision: site, reason and by are texts of {TEXT_BYTES} at most"
            )
        if any(_CONTROL.search(t) for t in texts):
            raise ValueError("not a decision: a control character in a text")
        if type(epoch) is not int or not 0 < epoch < 2**63 or type(manual) is not bool:
            raise ValueError(
                "not a decision: epoch must be a positive integer, manual true or false"
            )
        if type(at) not in (int, float) or not math.isfinite(at):
            raise ValueError("not a decision: at must be a number")
        return cls(texts[0], epoch, texts[1], texts[2], manual, float(at))


def views(
    service: str, sites: Sequence[str], verdicts: Verdicts, minimum: int = 2
) -> dict[str, Agreed]:
    """site -> the agreed view of `service`'s target there."""
    return {site: agree(f"{service}@{site}", verdicts, minimum) for site in sites}


def next_choice(
    service: str,
    current: Choice | None,
    order: Sequence[str],
    verdicts: Verdicts,
    policy: Policy,
    now: float,
    observer: str,
    minimum: int = 2,
) -> tuple[Choice | None, Decision | None]:
    """The switch rule on the observers' majority: the Choice to write (None: keep the
    key), and the rule's decision (its reason when it holds). No key yet: the primary."""
    active = current.site if current is not None else order[0]
    seen: Mapping[str, SiteView] = views(service, order, verdicts, minimum)
    decision = decide(
        service, active, order, seen, policy, now, manual=current is not None and current.manual
    )
    if decision is None or decision.to is None:
        return None, decision
    epoch = current.epoch + 1 if current is not None else 1
    reason = decision.reason[:TEXT_BYTES]
    return Choice(decision.to, epoch, reason, observer, False, now), decision


def manual_choice(
    service: str,
    site: str,
    current: Choice | None,
    order: Sequence[str],
    verdicts: Verdicts,
    force: bool,
    operator: str,
    now: float,
    failback: bool = False,
    minimum: int = 2,
) -> Choice:
    """An operator's failover to `site` (or failback to the primary: the automatic rule
    takes over again). ValueError, with the reason, for a site the majority does not see
    UP unless `force`."""
    if site not in order:
        raise ValueError(f"{service} has no site {site!r}")
    seen = agree(f"{service}@{site}", verdicts, minimum)
    if seen.health is not Health.UP and not force:
        raise ValueError(
            f"{service} at {site} is {seen.health.value} ({seen.reason}); "
            "use force to switch anyway"
        )
    epoch = current.epoch + 1 if current is not None else 1
    reason = f"operator failed back to {site}" if failback else f"operator chose {site}"
    return Choice(site, epoch, reason, operator, not failback, now)


def publishable(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    """An observer's verdicts as the JSON object it publishes."""
    return {
        target: {"health": v.health.value, "since": v.since, "reason": v.reason}
        for target, v in sorted(verdicts.items())
    }


def read_verdicts(data: Mapping[str, Any]) -> dict[str, Verdict]:
    """`publishable`'s inverse; ValueError for anything else (a reason that is no text of
    TEXT_BYTES at most without control characters included: it reaches logs)."""
    try:
        verdicts = {
            str(target): Verdict(Health(v["health"]), float(v["since"]), v["reason"])
            for target, v in data.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not an observer's verdicts: {exc}") from None
    for v in verdicts.values():
        if not isinstance(v.reason, str) or len(v.reason) > TEXT_BYTES or _CONTROL.search(v.reason):
            raise ValueError("not an observer's verdicts: a reason that is not a short text")
    return verdicts
