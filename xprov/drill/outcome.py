"""The result `xprov drill` prints, from the record of a run: the traffic figures, and for
each event (a kill written to the events file, or else each switch the drill saw) how long
the server took to switch and the phones to follow. Pure, but for reading the events file."""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from xprov.drill import report
from xprov.drill.phones import SimPhone
from xprov.drill.run import Record, convergence, summary, switches

# What "working" means in the result (xprov.drill.working; docs/phone-redundancy.md "Drill")
WORKING = (
    "a call the phone places reaches a live softswitch without first waiting out a dead "
    "one, from then on: by its file (naming the new site first; an SPA whose file changed, "
    "after its reboot) or, with --second-server, by its own fallback (its first request "
    "after the event unanswered for its firmware's Timer F, its next server answered)"
)

# A switch seen up to this many seconds before an event's mark still counts as its
# consequence: the mark is written by whoever broke something, after the fact.
MARK_SLACK_S = 1.0


@dataclass(frozen=True)
class Settings:
    """How the drill ran: `poll` seconds between two polls, `jitter` a share of it, and the
    seconds (low, high) an SPA takes to reboot after a change."""

    poll: float
    jitter: float
    reboot: tuple[float, float]


def read_events(path: str | None) -> list[dict[str, Any]]:
    """Events written by whoever broke something during the drill: one JSON object per
    line, with `at` (epoch seconds), `what` and the `services` expected to move. [] if
    there is no such file."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def result(
    record: Record, phones: list[SimPhone], marks: list[dict[str, Any]], settings: Settings
) -> dict[str, Any]:
    """The drill's result document: `summary` figures, phones, poll_s, jitter_pct, seconds,
    mix, working_means (what "working" means) and `events`, measured from `marks` (the
    events file) or, if there are none, from every switch of the server's selection the
    drill saw; and `servers` (see `servers`)
    when the phones had several addresses to try."""
    seen = switches(record)
    marks = marks or [
        {
            "at": s["at"],
            "what": f"switch to generation {s['generation']}",
            "services": list(s["moved"]),
        }
        for s in seen
    ]
    out = {
        **summary(record),
        "phones": len(phones),
        "poll_s": settings.poll,
        "jitter_pct": round(settings.jitter * 100),
        "seconds": record.ended - record.started,
        "mix": mix(phones),
        "working_means": WORKING,
        "events": [event(mark, seen, record, phones, settings.reboot) for mark in marks],
    }
    if len(record.servers) > 1:  # one address: the document as before there were several
        out["servers"] = servers(record)
    return out


def servers(record: Record) -> dict[str, dict[str, int]]:
    """Per address the phones tried, in their order: `fetches` it answered,
    `failed_attempts` there (refused or timed out: the phone tried the next address), and
    `phones` that got their per-device file from it at least once."""
    return {
        server: {
            "fetches": record.fetches[server],
            "failed_attempts": record.failed_attempts[server],
            "phones": sum(
                1 for seen in record.seen.values() if any(o.server == server for o in seen)
            ),
        }
        for server in record.servers
    }


def event(
    mark: dict[str, Any],
    seen: list[dict[str, Any]],
    record: Record,
    phones: list[SimPhone],
    reboot: tuple[float, float],
) -> dict[str, Any]:
    """Convergence of the phones from an event (`mark`: at, what, services) to where its
    services went, per the first switch in `seen` that moved each of them."""
    after = [s for s in seen if s["at"] >= mark["at"] - MARK_SLACK_S]
    figures, detection = {}, None
    for service in mark.get("services", []):
        moved = next((s for s in after if service in s["moved"]), None)
        if moved is None:
            continue
        detection = round(moved["at"] - mark["at"], 2) if detection is None else detection
        if service != "db":  # the database is xprov's own: phones see no change
            figures[service] = convergence(
                record,
                phones,
                mark["at"],
                [service],
                moved["moved"][service],
                reboot,
                switched=moved["server_at"] or moved["at"],
            )
    return {
        "what": mark["what"],
        "at": mark["at"],
        "detection_s": detection,
        "convergence": figures,
        "seed": report.seed_comparison(len(phones)),
    }


def mix(phones: list[SimPhone]) -> str:
    """How many phones of each vendor/transport: `3 linksys/tftp, 57 yealink/http`."""
    kinds = Counter(f"{p.vendor}/{p.transport}" for p in phones)
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
