"""Figures from what the simulated phones saw: pure functions, no clock, no sockets."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def milestones(delays: Sequence[float | None], total: int) -> dict[str, float | None]:
    """Time by which 50%, 95% and 100% of `total` phones got there (None: never did)."""
    done = sorted(d for d in delays if d is not None)
    out: dict[str, float | None] = {}
    for share in (50, 95, 100):
        needed = max(1, -(-total * share // 100))  # ceiling
        out[f"{share}%"] = round(done[needed - 1], 1) if len(done) >= needed else None
    return out


def curve(
    delays: Sequence[float | None], total: int, step: float, until: float
) -> list[tuple[float, float]]:
    """(seconds after the event, share of phones there) every `step` seconds."""
    done = sorted(d for d in delays if d is not None)
    points, t, i = [], 0.0, 0
    while t <= until + 1e-9:
        while i < len(done) and done[i] <= t:
            i += 1
        points.append((round(t, 1), round(i / total, 3) if total else 1.0))
        t += step
    return points


def seed_design(
    phases: Sequence[float], poll: float, event: float, detection: float, seed: int = 1
) -> list[float]:
    """When each phone would work again under the design xprov replaces: the outage is
    noticed `detection` s after `event` (checks every 5 minutes: 150 s on average, 300 s at
    worst), files are rewritten on disk, each phone fetches at its next poll and then
    reboots for 30-60 s (the seed rebooted every phone)."""
    rng = random.Random(seed)
    noticed = event + detection
    out = []
    for phase in phases:
        fetch = phase + max(0.0, -(-(noticed - phase) // poll)) * poll  # the next poll
        out.append(fetch - event + rng.uniform(30, 60))
    return out


def summary(
    requests: int, errors: dict[str, int], seconds: float, latencies: Sequence[float]
) -> dict[str, Any]:
    return {
        "requests": requests,
        "requests_per_s": round(requests / seconds, 1) if seconds else 0.0,
        "errors": dict(sorted(errors.items())),
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p99": _ms(percentile(latencies, 99)),
            "max": _ms(max(latencies) if latencies else None),
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def seed_comparison(phones: int, poll: float = 60.0) -> dict[str, dict[str, float | None]]:
    """The seed design's time until every phone works again, as many phones polling every
    60 s: checks every 5 minutes, files on disk, a 30-60 s reboot each."""
    phases = [poll * i / max(1, phones) for i in range(phones)]
    return {
        label: milestones(seed_design(phases, poll, 0.0, detection), phones)
        for label, detection in (("average check (150 s)", 150.0), ("worst check (300 s)", 300.0))
    }


def describe(result: dict[str, Any]) -> str:
    """A drill result for people."""
    lines = [
        f"phones {result['phones']} ({result['mix']}), polling every {result['poll_s']} s "
        f"(±{result['jitter_pct']}%), {result['seconds']:.0f} s",
        f"requests {result['requests']} ({result['requests_per_s']}/s), errors "
        f"{sum(result['errors'].values())} {result['errors'] or ''}".rstrip(),
        f"latency p50 {result['latency_ms']['p50']} ms, p99 {result['latency_ms']['p99']} ms, "
        f"max {result['latency_ms']['max']} ms",
    ]
    for server, figures in result.get("servers", {}).items():
        lines.append(
            f"server {server}: {figures['fetches']} fetches answered, "
            f"{figures['failed_attempts']} attempts refused or timed out, "
            f"per-device files to {figures['phones']} phones"
        )
    if result.get("events") and result.get("working_means"):
        lines.append(f"working: {result['working_means']}")
    for event in result.get("events", []):
        lines.append(f"{event['what']}:")
        if event.get("detection_s") is not None:
            lines.append(f"  switch seen by the drill {event['detection_s']} s after the event")
        for service, figures in event.get("convergence", {}).items():
            fetched, working = figures["fetched"], figures["working"]
            lines.append(
                f"  {service}: phones on the new site after {_marks(fetched)}; "
                f"working (with reboots) after {_marks(working)}"
            )
            lines += _redundancy(figures)
        for label, marks in event.get("seed", {}).items():
            lines.append(f"  seed design, {label}: working after {_marks(marks)}")
    return "\n".join(lines)


def _redundancy(figures: dict[str, Any]) -> list[str]:
    """The lines for the phones' second server and the push, when the drill had them."""
    lines = []
    if "refetched" in figures:
        lines.append(f"    fetched their file after the switch: {_marks(figures['refetched'])}")
    second = figures.get("second_server")
    if second:
        lines.append(
            f"    own second server (a request every {second['keepalive_s']} s): "
            f"{second['phones']} phones failed over, after {_marks(second['failed_over'])}; "
            f"a request's own wait {_marks(second['request_wait'])}; "
            f"calls to the phone reach it after {_marks(second['incoming'])}"
        )
    push = figures.get("push")
    if push:
        answers = ", ".join(f"{code} x{n}" for code, n in push["answers"].items()) or "none"
        lines.append(
            f"    push: {push['phones_notified']} phones got a NOTIFY (answers {answers}); "
            f"fetched on it, after the switch: {_marks(push['fetched_on_notify'])}"
        )
    return lines


def _marks(marks: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {'never' if v is None else f'{v} s'}" for k, v in marks.items())
