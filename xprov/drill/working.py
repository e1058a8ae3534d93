"""When one simulated phone worked again after an event, from what it saw (issue 18). Pure.

A phone WORKS when a call it places reaches a live softswitch without first waiting out a
dead one, and goes on working to the end of the drill. It gets there by one of two routes,
whichever comes first:
- its file: it fetched a file naming the new site as the server it tries first (Yealink
  `sip_server.1`, SPA `Proxy_1_` or the first of its SRV list);
- its own second server (`--second-server`): its first request after the event went to its
  server 1, got no answer for its firmware's Timer F, went on to the server its file names
  next, and that server answered (measured: real OPTIONS to a really dead softswitch; a
  request that went to a new server 1 its new file names is the file's route, not this).
An SPA whose per-device file changed reboots (`--spa-reboot`, 30-60 s) and works only after
it: a reboot that ends after the phone got there moves "working" to its end.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from xprov.drill.run import Observation
    from xprov.drill.sipside import SipEvent


class PhoneFigures(NamedTuple):
    """Seconds for one phone; None: not within the drill."""

    fetched: float | None  # event -> first file naming the new site first
    refetched: float | None  # switch -> first file fetched after the switch (any)
    failover: float | None  # event -> its second server answered (second-server route)
    wait: float | None  # that request's own wait: sent -> answered (a call placed then)
    working: float | None  # event -> works from then on (see the module's docstring)
    incoming: float | None  # event -> a call TO it reaches it (0: concurrent registration)


def figures(
    seen: Sequence[Observation],
    sip: Sequence[SipEvent],
    event: float,
    switched: float | None,
    services: Sequence[str],
    target: str,
    reboot: float,
    second_server: bool,
) -> PhoneFigures:
    """One phone's figures from `event` (epoch seconds) for `services` moving to `target`:
    `seen` its per-device fetches in time order, `sip` its SIP events (sipside.Probes),
    `switched` when the server switched (None: never), `reboot` its reboot's seconds after
    a changed file (0: it applies in place), `second_server`: the phone uses the second SIP
    server its file names (else `sip` is not looked at)."""
    fetch = next(
        (o.at for o in seen if o.at >= event and all(o.sites.get(s) == target for s in services)),
        None,
    )
    after = next((o.at for o in seen if switched is not None and o.at >= switched), None)
    second_server = second_server and list(services) == ["sip"]  # STUN follows the file
    answered = next(
        (
            e
            for e in (sip if second_server else ())
            if e.at >= event and e.outcome == "answered" and e.site == target and e.moved
        ),
        None,
    )
    routes = [t for t in (fetch, answered.at if answered else None) if t is not None]
    working = None
    if routes:
        start = min(routes)
        ends = [end for end in _reboots(seen, event, reboot) if end > start]
        working = max([start, *ends])
    incoming = working
    before = [o for o in seen if o.at < event]
    if second_server and before and _concurrent_at(before[-1], target):
        incoming = event  # its backup server holds its registration: nothing to wait for
    return PhoneFigures(
        _since(fetch, event),
        _since(after, switched),
        _since(answered.at if answered else None, event),
        None if answered is None else round(answered.at - answered.started, 3),
        _since(working, event),
        _since(incoming, event),
    )


def _reboots(seen: Sequence[Observation], event: float, reboot: float) -> list[float]:
    """When each reboot after `event` ends: one per fetch of a per-device file unlike the
    one before it (a phone that applies in place, reboot 0, has none)."""
    if reboot <= 0:
        return []
    return [
        o.at + reboot
        for previous, o in itertools.pairwise(seen)
        if o.at >= event and o.body_hash != previous.body_hash
    ]


def _concurrent_at(observation: Observation, target: str) -> bool:
    """Did this file have the phone registered at `target` all along (a second server
    there, concurrent registration)?"""
    named = observation.sip
    return named.concurrent and any(s.site == target for s in named.servers[1:])


def _since(at: float | None, origin: float | None) -> float | None:
    return None if at is None or origin is None else at - origin
