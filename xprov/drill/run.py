"""Running the simulated phones against a live xprov and recording what they saw."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from xprov.admin_client import local_host
from xprov.config import Config
from xprov.drill import report
from xprov.drill.clients import HttpFetcher, tftp_get
from xprov.drill.phones import SimPhone, sites_in

if TYPE_CHECKING:
    from xprov.drill.clients import IDrillReactor

MAX_SECONDS = 3600.0
STATUS_EVERY = 0.25  # seconds between two looks at the server's selection


@dataclass
class Observation:
    at: float  # wall-clock time of the fetch's answer
    sites: dict[str, str | None]  # service -> site the file points at
    body_hash: int


@dataclass
class Record:
    """Everything the simulated phones saw."""

    started: float = 0.0
    ended: float = 0.0
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seen: dict[str, list[Observation]] = field(default_factory=dict)  # mac -> device fetches
    # the server's selection as first seen and after every change: (time, generation, active)
    selections: list[tuple[float, int, dict[str, str]]] = field(default_factory=list)


class Drill:
    def __init__(
        self,
        phones: list[SimPhone],
        config: Config,
        host: str,
        http_port: int,
        tftp_port: int | None,
        poll: float,
        jitter: float,
        reactor: IDrillReactor,
        timeout: float = 10.0,
        admin: tuple[str, int, str] | None = None,
    ) -> None:
        self.phones, self.config, self.host = phones, config, host
        self.http_port, self.tftp_port = http_port, tftp_port
        self.poll, self.jitter, self.reactor, self.timeout = poll, jitter, reactor, timeout
        self.admin = admin
        self.http = HttpFetcher(reactor, timeout)
        self.record = Record()
        self.rng = random.Random(7)
        self._running = False
        self._inflight: set[Deferred[bytes | None]] = set()
        self._calls: list[IDelayedCall] = []

    def run(self, seconds: float) -> Deferred[Record]:
        """Poll for `seconds` (at most an hour), then wait for the last answers."""
        seconds = min(seconds, MAX_SECONDS)
        self._running = True
        self.record.started = time.time()
        for phone in self.phones:
            self._calls.append(self.reactor.callLater(phone.phase, self._poll, phone, phone.phase))
        if self.admin is not None:
            self._watch_selection(None)
        done: Deferred[Record] = Deferred()
        self.reactor.callLater(seconds, self._stop, done)
        return done

    def _stop(self, done: Deferred[Record]) -> None:
        self._running = False
        for call in self._calls:
            if call.active():
                call.cancel()

        def finished(_: object) -> None:
            self.record.ended = time.time()
            done.callback(self.record)

        DeferredList(list(self._inflight)).addBoth(finished)

    @inlineCallbacks
    def _poll(
        self, phone: SimPhone, scheduled: float
    ) -> Generator[Deferred[bytes | None], bytes | None, None]:
        if not self._running:
            return
        spread = self.poll * self.jitter
        following = scheduled + self.poll + self.rng.uniform(-spread, spread)
        delay = max(0.0, following - (time.time() - self.record.started))
        self._calls.append(self.reactor.callLater(delay, self._poll, phone, following))
        body = b""  # the last file's: the per-device one (SimPhone.files)
        for name in phone.files:
            answer = yield self._fetch(phone, name)
            if answer is None:
                return  # a failed file ends this poll, as it ends a phone's resync
            body = answer
        self.record.seen.setdefault(phone.mac, []).append(
            Observation(time.time(), sites_in(phone.vendor, body, self.config), hash(body))
        )

    def _fetch(self, phone: SimPhone, name: str) -> Deferred[bytes | None]:
        started = time.monotonic()
        if phone.transport == "tftp" and self.tftp_port:
            fetching = tftp_get(
                self.reactor, self.host, self.tftp_port, name, self.timeout
            ).addCallback(lambda body: (200, body))
        else:
            fetching = self.http.get(
                f"http://{self.host}:{self.http_port}/{name}", phone.user_agent
            )

        def answered(result: tuple[int, bytes]) -> bytes | None:
            code, body = result
            self.record.requests += 1
            self.record.latencies.append(time.monotonic() - started)
            if code != 200:
                self.record.errors[f"{phone.transport} {code}"] += 1
                return None
            return body

        def failed(reason: Failure) -> None:
            self.record.requests += 1
            self.record.errors[f"{phone.transport} {type(reason.value).__name__}"] += 1
            return None

        fetched = fetching.addCallbacks(answered, failed)
        self._inflight.add(fetched)

        def settled(result: bytes | Failure | None) -> bytes | Failure | None:
            self._inflight.discard(fetched)
            return result

        return fetched.addBoth(settled)

    def _watch_selection(self, last: int | None) -> None:
        if not self._running or self.admin is None:
            return
        host, port, token = self.admin
        looking = self.http.agent.request(
            b"GET",
            f"http://{host}:{port}/status".encode(),
            _headers({"authorization": f"Bearer {token}"}),
        )

        def seen(body: bytes) -> int | None:
            selection = json.loads(body)["selection"]
            generation: int = selection["generation"]  # the admin API's /status document
            if generation != last:
                self.record.selections.append((time.time(), generation, selection["active"]))
            return generation

        watched = looking.addCallback(readBody).addCallback(seen).addErrback(lambda _: last)
        watched.addCallback(
            lambda generation: self.reactor.callLater(
                STATUS_EVERY, self._watch_selection, generation
            )
        )


def against(
    config: Config,
    phones: list[SimPhone],
    host: str,
    poll: float,
    jitter: float,
    reactor: IDrillReactor,
) -> Drill:
    """A drill of `phones` against the server `config` configures, at `host`: its first HTTP
    and TFTP listeners' ports, and its admin API (watched on this machine) if it has one."""
    admin = None
    if config.admin is not None:
        listen = config.admin.listen[0]
        admin = (local_host(listen.host), listen.port, config.admin.token)
    tftp_port = config.tftp.listen[0].port if config.tftp else None
    http_port = config.http.listen[0].port
    return Drill(phones, config, host, http_port, tftp_port, poll, jitter, reactor, admin=admin)


def _headers(values: dict[str, str]) -> Headers:
    return Headers({k.encode(): [v.encode()] for k, v in values.items()})


def convergence(
    record: Record,
    phones: list[SimPhone],
    event: float,
    services: list[str],
    target: str,
    reboot: tuple[float, float],
    seed: int = 3,
) -> dict[str, Any]:
    """From `event` (a kill, a switch): when each phone first fetched a file pointing
    `services` at `target`, and when it worked again (SPA phones reboot on a change)."""
    rng = random.Random(seed)
    fetched: list[float | None] = []
    working: list[float | None] = []
    for phone in phones:
        first = next(
            (
                o.at
                for o in record.seen.get(phone.mac, [])
                if o.at >= event and all(o.sites.get(s) == target for s in services)
            ),
            None,
        )
        fetched.append(None if first is None else first - event)
        apply = rng.uniform(*reboot) if phone.reboots else 0.0
        working.append(None if first is None else first - event + apply)
    total = len(phones)
    return {
        "fetched": report.milestones(fetched, total),
        "working": report.milestones(working, total),
        "phones_on_new_site": sum(1 for f in fetched if f is not None),
        "curve": report.curve(fetched, total, 5.0, max((f for f in fetched if f), default=0)),
    }


def switches(record: Record) -> list[dict[str, Any]]:
    """Every change of the server's selection the drill saw: when, and which services
    moved where."""
    out = []
    for (_, _, before), (at, generation, after) in zip(
        record.selections, record.selections[1:], strict=False
    ):
        moved = {s: site for s, site in after.items() if before.get(s) != site}
        out.append({"at": at, "generation": generation, "moved": moved})
    return out


def summary(record: Record) -> dict[str, Any]:
    seconds = max(0.001, record.ended - record.started)
    return report.summary(record.requests, dict(record.errors), seconds, record.latencies)
