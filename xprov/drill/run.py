"""Running the simulated phones against a live xprov and recording what they saw."""

from __future__ import annotations

import json
import os
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
from xprov.drill import report, working
from xprov.drill.clients import HttpFetcher, tftp_get
from xprov.drill.phones import SimPhone, SipServers, sip_servers, sites_in
from xprov.drill.servers import ATTEMPT_TIMEOUT, Server, attempt_of, parse_server
from xprov.drill.sipside import KEEPALIVE, NotifyPorts, NotifySeen, Probes, SipEvent, contacts_toml

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
    # the SIP servers the file names, in the phone's order
    sip: SipServers = field(default_factory=SipServers)
    trigger: str = "poll"  # what made the phone fetch: its "poll", or a "push" (NOTIFY)


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
    # generation -> when the server itself switched to it (its /status `monitor.switches`):
    # a push starts then, up to STATUS_EVERY before the drill sees the new selection
    switched_at: dict[int, float] = field(default_factory=dict)
    servers: list[str] = field(default_factory=list)  # the addresses tried, in order
    fetches: Counter[str] = field(default_factory=Counter)  # address -> fetches it answered
    # address -> attempts there refused or timed out (the phone then tried the next one)
    failed_attempts: Counter[str] = field(default_factory=Counter)
    # --second-server: mac -> what its requests to its SIP servers got (changes only)
    sip: dict[str, list[SipEvent]] = field(default_factory=dict)
    keepalive: float | None = None  # seconds between two of a phone's requests (None: off)
    # --push: mac -> the requests that reached its NOTIFY port, and its answers
    notifies: dict[str, list[NotifySeen]] | None = None


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
        second_server: bool = False,
        keepalive: float = KEEPALIVE,
        push: str | None = None,
        sip_host: str = "127.0.0.1",
    ) -> None:
        """`servers`: the addresses every phone tries for each file, in order (at least
        one); `timeout`: seconds for one attempt on one address. `second_server`: the
        phones probe the SIP server they use every `keepalive` s and move to the next
        their file names as their firmware does (sipside.Probes); `push`: a path where
        the phones' contacts are written for `[push] contacts = "file"`, each phone
        listening there for a NOTIFY that makes it fetch at once; both on `sip_host`."""
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
        self.probes = (
            Probes(reactor, phones, self.record.sip, keepalive, sip_host) if second_server else None
        )
        self.record.keepalive = keepalive if second_server else None
        self.push, self.sip_host = push, sip_host
        self.notify: NotifyPorts | None = None

    def run(self, seconds: float) -> Deferred[Record]:
        """Poll for `seconds` (at most an hour), then wait for the last answers."""
        seconds = min(seconds, MAX_SECONDS)
        self._running = True
        self.record.started = time.time()
        if self.push is not None:
            self.record.notifies = {}
            self.notify = NotifyPorts(
                self.reactor, self.phones, self._pushed, self.record.notifies, self.sip_host
            )
            ports = self.notify.start()
            # whole or not at all: xprov reads the file at every push
            partial = f"{self.push}.partial"
            with open(partial, "w") as f:
                f.write(contacts_toml(self.phones, ports, self.sip_host))
            os.replace(partial, self.push)
        if self.probes is not None:
            self.probes.start()
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
        if self.probes is not None:
            self.probes.stop()
        if self.notify is not None:
            self.notify.stop()

        def finished(_: object) -> None:
            self.record.ended = time.time()
            done.callback(self.record)

        DeferredList(list(self._inflight)).addBoth(finished)

    def _poll(self, phone: SimPhone, scheduled: float) -> None:
        if not self._running:
            return
        spread = self.poll * self.jitter
        following = scheduled + self.poll + self.rng.uniform(-spread, spread)
        delay = max(0.0, following - (time.time() - self.record.started))
        self._calls.append(self.reactor.callLater(delay, self._poll, phone, following))
        self._resync(phone, "poll")

    def _pushed(self, phone: SimPhone) -> None:
        """A NOTIFY told `phone` to fetch: it does at once; its polls go on as before."""
        if self._running:
            self._resync(phone, "push")

    @inlineCallbacks
    def _resync(
        self, phone: SimPhone, trigger: str
    ) -> Generator[Deferred[Fetched | None], Fetched | None, None]:
        last = Fetched(b"", "")  # the last file's: the per-device one (SimPhone.files)
        for name in phone.files:
            answer = yield self._fetch(phone, name)
            if answer is None:
                return  # a failed file ends this poll, as it ends a phone's resync
            last = answer
        sites = sites_in(phone.vendor, last.body, self.config)
        named = sip_servers(phone.vendor, last.body, self.config)
        self.record.seen.setdefault(phone.mac, []).append(
            Observation(time.time(), sites, hash(last.body), last.server, named, trigger)
        )
        if self.probes is not None:
            self.probes.configure(phone.mac, named)

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
            document = json.loads(body)
            selection = document["selection"]
            generation: int = selection["generation"]  # the admin API's /status document
            for switch in (document.get("monitor") or {}).get("switches", []):
                self.record.switched_at.setdefault(switch["generation"], switch["at"])
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
    second_server: bool = False,
    keepalive: float = KEEPALIVE,
    push: str | None = None,
) -> Drill:
    """A drill of `phones` against the server `config` configures, at `host`: its first HTTP
    and TFTP listeners' ports, and its admin API (watched on this machine) if it has one.
    `servers` (`HOST[:HTTP_PORT[:TFTP_PORT]]`, ports defaulting to those listeners'): the
    addresses each phone tries in order instead of `host` alone. ValueError: a bad one.
    `second_server`, `keepalive`, `push`: see Drill."""
    admin = None
    if config.admin is not None:
        listen = config.admin.listen[0]
        admin = (local_host(listen.host), listen.port, config.admin.token)
    tftp_port = config.tftp.listen[0].port if config.tftp else None
    http_port = config.http.listen[0].port
    tried = [parse_server(spec, http_port, tftp_port) for spec in servers] or [
        Server(host, http_port, tftp_port)
    ]
    return Drill(
        phones,
        config,
        tried,
        poll,
        jitter,
        reactor,
        timeout,
        admin=admin,
        second_server=second_server,
        keepalive=keepalive,
        push=push,
    )


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
    switched: float | None = None,
) -> dict[str, Any]:
    """From `event` (a kill, a switch): when each phone first fetched a file pointing
    `services` at `target`, and when it worked again (xprov.drill.working: by its file, an
    SPA after its reboot, or by its own second server). With `switched` (when the server
    switched): `refetched`, each phone's first fetch after it. With --second-server,
    `second_server`: how many phones failed over by their own fallback (`phones`), their
    `failed_over` and `request_wait` milestones (of those phones), and `incoming` (of all);
    with --push and `switched`, `push` (see `pushed`)."""
    rng = random.Random(seed)
    rows = []
    for phone in phones:
        rows.append(
            working.figures(
                record.seen.get(phone.mac, []),
                record.sip.get(phone.mac, []),
                event,
                switched,
                services,
                target,
                rng.uniform(*reboot) if phone.reboots else 0.0,
                record.keepalive is not None,
            )
        )
    total = len(phones)
    fetched = [r.fetched for r in rows]
    out: dict[str, Any] = {
        "fetched": report.milestones(fetched, total),
        "working": report.milestones([r.working for r in rows], total),
        "phones_on_new_site": sum(1 for f in fetched if f is not None),
        "curve": report.curve(fetched, total, 5.0, max((f for f in fetched if f), default=0)),
    }
    if switched is not None:
        out["refetched"] = report.milestones([r.refetched for r in rows], total)
    if record.keepalive is not None and services == ["sip"]:
        moved = [r for r in rows if r.failover is not None]  # by their own fallback
        out["second_server"] = {
            "keepalive_s": record.keepalive,
            "phones": len(moved),
            "failed_over": report.milestones([r.failover for r in moved], len(moved)),
            "request_wait": report.milestones([r.wait for r in moved], len(moved)),
            "incoming": report.milestones([r.incoming for r in rows], total),
        }
    if record.notifies is not None and switched is not None:
        out["push"] = pushed(record, phones, switched)
    return out


def pushed(record: Record, phones: list[SimPhone], switched: float) -> dict[str, Any]:
    """What the push did after the switch: phones that got a NOTIFY, the answers they gave
    (status -> count), and how long after the switch each of them fetched because of it
    (milestones over the phones notified: a phone whose file the switch left as it was is
    not pushed)."""
    notifies = record.notifies or {}
    answers: Counter[str] = Counter()
    reached, fetched = 0, []
    for phone in phones:
        got = [n for n in notifies.get(phone.mac, []) if n.at >= switched]
        if not got:
            continue
        reached += 1
        answers.update(str(n.code) for n in got)
        seen = record.seen.get(phone.mac, [])
        first = next((o.at for o in seen if o.trigger == "push" and o.at >= switched), None)
        fetched.append(None if first is None else first - switched)
    return {
        "phones_notified": reached,
        "answers": dict(sorted(answers.items())),
        "fetched_on_notify": report.milestones(fetched, reached),
    }


def switches(record: Record) -> list[dict[str, Any]]:
    """Every change of the server's selection the drill saw: when (`at`), and when the
    server says it switched (`server_at`, None if it did not say), and which services moved
    where."""
    out = []
    for (_, _, before), (at, generation, after) in zip(
        record.selections, record.selections[1:], strict=False
    ):
        moved = {s: site for s, site in after.items() if before.get(s) != site}
        server_at = record.switched_at.get(generation)
        out.append({"at": at, "server_at": server_at, "generation": generation, "moved": moved})
    return out


def summary(record: Record) -> dict[str, Any]:
    seconds = max(0.001, record.ended - record.started)
    return report.summary(record.requests, dict(record.errors), seconds, record.latencies)
