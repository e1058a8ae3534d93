"""Running the simulated phones against a live xprov and recording what they saw."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

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
from xprov.drill.servers import ATTEMPT_TIMEOUT, Server, attempt_of, parse_server

if TYPE_CHECKING:
    from xprov.drill.clients import IDrillReactor

MAX_SECONDS = 3600.0
STATUS_EVERY = 0.25  # seconds between two looks at the server's selection


@dataclass
class Observation:
    at: float  # wall-clock time of the fetch's answer
    sites: dict[str, str | None]  # service -> site the file points at
    body_hash: int
    server: str = ""  # the address that answered (Server's str)


class Fetched(NamedTuple):
    body: bytes
    server: str  # the address that answered


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
    servers: list[str] = field(default_factory=list)  # the addresses tried, in order
    fetches: Counter[str] = field(default_factory=Counter)  # address -> fetches it answered
    # address -> attempts there refused or timed out (the phone then tried the next one)
    failed_attempts: Counter[str] = field(default_factory=Counter)


class Drill:
    def __init__(
        self,
        phones: list[SimPhone],
        config: Config,
        servers: Sequence[Server],
        poll: float,
        jitter: float,
        reactor: IDrillReactor,
        timeout: float = ATTEMPT_TIMEOUT,
        admin: tuple[str, int, str] | None = None,
    ) -> None:
        """`servers`: the addresses every phone tries for each file, in order (at least
        one); `timeout`: seconds for one attempt on one address."""
        if not servers:
            raise ValueError("a drill needs at least one server")
        self.phones, self.config, self.servers = phones, config, tuple(servers)
        self.poll, self.jitter, self.reactor, self.timeout = poll, jitter, reactor, timeout
        self.admin = admin
        self.http = HttpFetcher(reactor, timeout)
        self.record = Record(servers=[str(server) for server in self.servers])
        self.rng = random.Random(7)
        self._running = False
        self._inflight: set[Deferred[Fetched | None]] = set()
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
    ) -> Generator[Deferred[Fetched | None], Fetched | None, None]:
        if not self._running:
            return
        spread = self.poll * self.jitter
        following = scheduled + self.poll + self.rng.uniform(-spread, spread)
        delay = max(0.0, following - (time.time() - self.record.started))
        self._calls.append(self.reactor.callLater(delay, self._poll, phone, following))
        last = Fetched(b"", "")  # the last file's: the per-device one (SimPhone.files)
        for name in phone.files:
            answer = yield self._fetch(phone, name)
            if answer is None:
                return  # a failed file ends this poll, as it ends a phone's resync
            last = answer
        sites = sites_in(phone.vendor, last.body, self.config)
        self.record.seen.setdefault(phone.mac, []).append(
            Observation(time.time(), sites, hash(last.body), last.server)
        )

    def _fetch(self, phone: SimPhone, name: str) -> Deferred[Fetched | None]:
        fetched = self._attempts(phone, name)
        self._inflight.add(fetched)

        def settled(result: Fetched | Failure | None) -> Fetched | Failure | None:
            self._inflight.discard(fetched)
            return result

        return fetched.addBoth(settled)

    @inlineCallbacks
    def _attempts(
        self, phone: SimPhone, name: str
    ) -> Generator[Deferred[tuple[int, bytes]], tuple[int, bytes], Fetched | None]:
        """One file as a phone fetches it from a name with several addresses: each in
        turn until one answers (a refused or timed-out attempt moves on; any answer, even
        an error status, ends the fetch). One request and one latency (from the first
        attempt) per file, as before several addresses."""
        started = time.monotonic()
        for index, server in enumerate(self.servers):
            try:
                code, body = yield self._attempt(server, phone, name)
            except Exception as exc:  # the attempt's failure, raised by inlineCallbacks
                if attempt_of(exc).moves_on:
                    self.record.failed_attempts[str(server)] += 1
                    if index + 1 < len(self.servers):
                        continue
                self.record.requests += 1
                self.record.errors[f"{phone.transport} {type(exc).__name__}"] += 1
                return None
            self.record.requests += 1
            self.record.fetches[str(server)] += 1
            self.record.latencies.append(time.monotonic() - started)
            if code != 200:
                self.record.errors[f"{phone.transport} {code}"] += 1
                return None
            return Fetched(body, str(server))
        return None  # not reached: the last address's failure returned above

    def _attempt(self, server: Server, phone: SimPhone, name: str) -> Deferred[tuple[int, bytes]]:
        """(status, body) of `name` from one address, over the phone's transport (HTTP
        when that address has no TFTP)."""
        if phone.transport == "tftp" and server.tftp_port:
            fetching: Deferred[bytes] = tftp_get(
                self.reactor, server.host, server.tftp_port, name, self.timeout
            )
            return fetching.addCallback(lambda body: (200, body))
        host = f"[{server.host}]" if ":" in server.host else server.host
        url = f"http://{host}:{server.http_port}/{name}"
        return self.http.get(url, phone.user_agent)

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
    servers: Sequence[str] = (),
    timeout: float = ATTEMPT_TIMEOUT,
) -> Drill:
    """A drill of `phones` against the server `config` configures, at `host`: its first HTTP
    and TFTP listeners' ports, and its admin API (watched on this machine) if it has one.
    `servers` (`HOST[:HTTP_PORT[:TFTP_PORT]]`, ports defaulting to those listeners'): the
    addresses each phone tries in order instead of `host` alone. ValueError: a bad one."""
    admin = None
    if config.admin is not None:
        listen = config.admin.listen[0]
        admin = (local_host(listen.host), listen.port, config.admin.token)
    tftp_port = config.tftp.listen[0].port if config.tftp else None
    http_port = config.http.listen[0].port
    tried = [parse_server(spec, http_port, tftp_port) for spec in servers] or [
        Server(host, http_port, tftp_port)
    ]
    return Drill(phones, config, tried, poll, jitter, reactor, timeout, admin=admin)


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
