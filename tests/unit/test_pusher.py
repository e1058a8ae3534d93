"""The push after a switch (issue 18): the contacts mapped to the inventory, the rate (a token
bucket with a burst of one, on `task.Clock`), each result counted, a new switch cancelling
what is unsent, and the service that reads contacts on a switch, reloads and reports."""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import task
from twisted.internet.defer import Deferred, succeed

from tests.helpers import (
    ETC,
    SPA504G,
    YEALINK_T31G,
    YEALINK_T46G,
    MemoryReactor,
    sample_config,
)
from xprov import metrics
from xprov.build import build
from xprov.descriptors import Limit
from xprov.inventory.file_source import load_file
from xprov.push import contacts
from xprov.push.contacts import (
    MAX_CONTACTS,
    MAX_FILE_BYTES,
    ContactList,
    ContactsError,
    Registration,
    reachable_uri,
    reached,
)
from xprov.push.model import Contact, PushResult
from xprov.push.pusher import OUTCOMES, Pusher
from xprov.service import Service

INVENTORY = load_file(ETC / "inventory.toml", 1)


def many(count: int, prefix: str = "u") -> ContactList:
    return ContactList(
        tuple(Contact(f"{prefix}{i}", f"sip:{prefix}{i}@192.0.2.1:5060") for i in range(count))
    )


class FakeSender:
    """Records when each NOTIFY left (the clock's time) and answers at once with the next
    outcome of `outcomes`, or not at all (`hold`: the test fires `held` later)."""

    def __init__(self, clock: Any, outcomes: tuple[str, ...] = ("ok",), hold: bool = False):
        self.clock, self.hold = clock, hold
        self.outcomes = itertools.cycle(outcomes)
        self.sent: list[tuple[float, Contact]] = []
        self.held: list[Deferred[PushResult]] = []

    def send(self, contact: Contact, event: str | None = None) -> Deferred[PushResult]:
        self.sent.append((self.clock.seconds(), contact))
        if self.hold:
            self.held.append(Deferred())
            return self.held[-1]
        outcome = next(self.outcomes)
        code = 200 if outcome == "ok" else None
        return succeed(PushResult(outcome, code, outcome, 1))  # type: ignore[arg-type]

    @property
    def times(self) -> list[float]:
        return [at for at, _ in self.sent]


def run(clock: task.Clock, until: float | None = None, limit: int = 200_000) -> None:
    """Run the clock's calls one by one at their own time (until `until`, if given)."""
    for _ in range(limit):
        if not clock.calls or (until is not None and clock.calls[0].getTime() > until):
            if until is not None and until > clock.seconds():
                clock.advance(until - clock.seconds())
            return
        before = len(clock.calls), clock.calls[0]
        clock.advance(max(0.0, clock.calls[0].getTime() - clock.seconds()))
        if (len(clock.calls), clock.calls[0] if clock.calls else None) == before:
            clock.advance(1e-9)  # the subtraction rounded a hair short of the call's time
    raise AssertionError("the clock still has calls")


def busiest_second(times: list[float]) -> int:
    """The most sends in any one-second window [t, t + 1), t every send's time (a window
    holding the most sends can always be moved to start at one)."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


# -- the rate --------------------------------------------------------------------------------


def test_1000_contacts_at_100_per_second_take_10_s_and_never_burst(log_events) -> None:
    clock = task.Clock()
    sender = FakeSender(clock, OUTCOMES)
    pusher = Pusher(clock, sender.send, 100)
    pusher.start(many(1000), 7, ("sip",))
    run(clock)
    times = sender.times
    assert len(times) == 1000 and times[0] == 0.0
    assert times[-1] == pytest.approx(9.99, abs=0.005)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.01
    assert busiest_second(times) == 100
    last = pusher.last
    assert last is not None
    assert {k: last.outcomes[k] for k in OUTCOMES} == dict.fromkeys(OUTCOMES, 200)
    assert (last.sent, last.pending, last.done_at) == (1000, 0, times[-1])
    assert pusher.totals == dict.fromkeys(OUTCOMES, 200) and pusher.pending == 0
    started, done = (
        next(e for e in log_events() if e["event"] == name)
        for name in ("push_started", "push_done")
    )
    assert (started["count"], started["rate"], started["estimated_s"]) == (1000, 100, 10.0)
    assert done["ok"] == 200 and done["seconds"] == pytest.approx(9.99, abs=0.005)


def test_every_contact_once_in_order() -> None:
    clock = task.Clock()
    sender = FakeSender(clock)
    pusher = Pusher(clock, sender.send, 1000)
    pusher.start(many(50), 2, ("sip",))
    run(clock)
    assert [c.user for _, c in sender.sent] == [f"u{i}" for i in range(50)]


def test_a_slow_sender_does_not_make_the_pusher_burst() -> None:
    """Answers that come late, then all at once, change nothing of when NOTIFYs leave."""
    clock = task.Clock()
    sender = FakeSender(clock, hold=True)
    pusher = Pusher(clock, sender.send, 100)
    pusher.start(many(300), 3, ("sip",))
    run(clock, until=1.505)
    assert len(sender.sent) == 151 and pusher.pending == 300
    for running in sender.held:  # 151 answers in one go
        running.callback(PushResult("timeout", None, "timeout after 32 s", 1))
    assert len(sender.sent) == 151  # nothing more left with them
    run(clock)
    assert busiest_second(sender.times) == 100
    assert min(b - a for a, b in itertools.pairwise(sender.times)) >= 0.01
    last = pusher.last
    assert last is not None and last.outcomes["timeout"] == 151 and last.pending == 149
    assert last.done_at is None
    for running in sender.held[151:]:
        running.callback(PushResult("ok", 200, "200 OK", 1))
    assert last.pending == 0 and last.outcomes["ok"] == 149 and last.done_at == clock.seconds()


def test_a_second_switch_cancels_what_is_unsent_and_starts_over(log_events) -> None:
    clock = task.Clock()
    sender = FakeSender(clock, hold=True)
    pusher = Pusher(clock, sender.send, 100)
    pusher.start(many(1000), 2, ("sip",))
    run(clock, until=2.0)
    first = pusher.last
    assert first is not None and first.sent == 200
    pusher.start(many(50, "fresh"), 3, ("sip", "stun"))
    run(clock)
    assert first.sent == 200 and first.cancelled == 800 and first.pending == 200
    second = pusher.last
    assert second is not None and second is not first and second.generation == 3
    assert [c.user for _, c in sender.sent[200:]] == [f"fresh{i}" for i in range(50)]
    # the spacing holds across the two pushes: the new one does not start with a burst
    assert min(b - a for a, b in itertools.pairwise(sender.times)) >= 0.01
    assert busiest_second(sender.times) == 100
    for running in sender.held:  # the first push's NOTIFYs in flight still count
        running.callback(PushResult("ok", 200, "200 OK", 1))
    assert (first.outcomes["ok"], first.pending, second.outcomes["ok"]) == (200, 0, 50)
    assert first.done_at is not None and second.done_at is not None
    assert pusher.totals["ok"] == 250
    cancelled = [e for e in log_events() if e["event"] == "push_cancelled"]
    assert [(e["generation"], e["unsent"]) for e in cancelled] == [(2, 800)]


def test_an_empty_contact_list_is_a_push_done_at_once() -> None:
    clock = task.Clock()
    clock.advance(5)
    sender = FakeSender(clock)
    pusher = Pusher(clock, sender.send, 100)
    pusher.start(ContactList((), unknown=3), 4, ("stun",))
    assert clock.calls == [] and sender.sent == []
    report = pusher.last.report() if pusher.last else None
    assert report is not None
    assert (report["contacts"], report["unknown"], report["sent"], report["pending"]) == (
        0,
        3,
        0,
        0,
    )
    assert report["at"] == report["done_at"] == 5.0
    assert pusher.skipped == {"unknown": 3, "invalid": 0}


def test_a_sender_that_fails_counts_an_error_and_the_push_goes_on(log_events) -> None:
    clock = task.Clock()
    calls = []

    def send(contact: Contact) -> Deferred[PushResult]:
        calls.append(contact)
        raise OSError("socket closed")

    pusher = Pusher(clock, send, 100)
    pusher.start(many(3), 5, ("sip",))
    run(clock)
    assert len(calls) == 3
    assert pusher.last is not None and pusher.last.outcomes["error"] == 3
    failed = [e for e in log_events() if e["event"] == "push_send_failed"]
    assert len(failed) == 1 and "socket closed" in failed[0]["error"]


def test_a_new_rate_applies_to_the_next_gap() -> None:
    clock = task.Clock()
    sender = FakeSender(clock)
    pusher = Pusher(clock, sender.send, 10)
    pusher.start(many(3), 5, ("sip",))
    run(clock, until=0.05)
    pusher.rate = 1
    run(clock)
    assert sender.times == pytest.approx([0.0, 0.1, 1.1], abs=1e-4)


# -- contacts ----------------------------------------------------------------------------


def test_received_is_preferred_with_the_contacts_user_and_transport() -> None:
    assert (
        reachable_uri(Registration("1001", "sip:1001@10.0.0.5:5062", "sip:198.51.100.7:40001"))
        == "sip:1001@198.51.100.7:40001"
    )
    assert (
        reachable_uri(
            Registration(
                "1001", "<sip:1001@10.0.0.5:5062;line=7>", "sip:198.51.100.7:5061;transport=TCP"
            )
        )
        == "sip:1001@198.51.100.7:5061;transport=TCP"
    )
    assert reachable_uri(Registration("1001", "sip:1001@10.0.0.5:5062;line=7", None)) == (
        "sip:1001@10.0.0.5:5062;line=7"
    )
    assert reachable_uri(Registration("1001", "sip:10.0.0.5", "sip:[2001:db8::7]:5062")) == (
        "sip:1001@[2001:db8::7]:5062"
    )
    # a received address that is no URI: the contact as registered
    assert reachable_uri(Registration("1001", "sip:1001@10.0.0.5", "garbage")) == (
        "sip:1001@10.0.0.5"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "sip:1001@10.0.0.5\r\nVia: SIP/2.0/UDP evil",  # would add a header to the request
        "sip:1001@10.0.0.5 x",
        "http://10.0.0.5/",
        "sip:",
        "sip:1001@" + "a" * 510,
        "sip:1001@10.0.0.5\u202e",
        "",
    ],
)
def test_what_is_no_sip_uri_is_invalid(uri: str) -> None:
    assert reachable_uri(Registration("1001", uri)) is None
    found = reached(
        [Registration("1001", uri, None, "example.com", "evil\x1b[31m")], INVENTORY, "t"
    )
    assert (found.contacts, found.invalid, found.unknown) == ((), 1, 0)
    assert found.problems == ("1001@example.com (evil?[31m): no SIP URI to send to",)


def test_each_phone_once_with_its_vendor_mac_and_line_credentials() -> None:
    registrations = [
        Registration("1002", "sip:1002@10.0.0.5:5062"),  # T46G line 2, freshest
        Registration("9999", "sip:9999@10.0.0.9"),  # no phone of ours
        Registration("1001", "sip:1001@10.0.0.5:5062", "sip:198.51.100.7:40001"),  # line 1
        Registration("1001", "sip:1001@10.0.0.6:5062"),  # an older registration of line 1
        Registration("auth1002", "sip:auth1002@10.0.0.5:5062"),  # line 2 by its auth_user
        Registration("2001", "sip:2001@10.0.0.8:5060"),  # SPA504G
        Registration("1003", "sip:1003@10.0.0.7"),  # T31G
    ]
    found = reached(registrations, INVENTORY, "location:chicago")
    assert [(c.mac, c.user, c.uri, c.vendor) for c in found.contacts] == [
        (YEALINK_T46G, "1001", "sip:1001@198.51.100.7:40001", "yealink"),
        (SPA504G, "2001", "sip:2001@10.0.0.8:5060", "linksys"),
        (YEALINK_T31G, "1003", "sip:1003@10.0.0.7", "yealink"),
    ]
    assert found.contacts[0].credentials == ("1001", "yk-1001-Secret")
    assert found.contacts[1].credentials == ("2001", "spa&<2001>\"'Secret")
    assert (found.unknown, found.invalid, found.duplicates, found.truncated) == (1, 0, 3, False)
    assert "Secret" not in repr(found)  # credentials never in a repr (nor a log)


def test_the_contacts_are_bounded() -> None:
    """At most MAX_CONTACTS registrations are read, and the list says there may be more."""
    consumed = 0

    def registrations() -> Iterator[Registration]:
        nonlocal consumed
        for i in range(MAX_CONTACTS + 10):
            consumed += 1
            yield Registration(f"x{i}", f"sip:x{i}@192.0.2.1")

    found = reached(registrations(), INVENTORY, "t")
    assert consumed == MAX_CONTACTS and found.truncated is True
    assert found.unknown == MAX_CONTACTS and found.contacts == ()
    assert reached(registrations(), INVENTORY, "t").truncated is True
    under = reached(itertools.islice(registrations(), 5), INVENTORY, "t")
    assert under.truncated is False


def test_the_operators_file(tmp_path: Path) -> None:
    path = tmp_path / "contacts.toml"
    path.write_text(
        '[[contacts]]\nuser = "1003"\nuri = "sip:1003@192.0.2.10:5062"\n'
        '[[contacts]]\nuser = "2003"\nuri = "sip:2003@192.0.2.11"\n'
        '[[contacts]]\nuser = "7777"\nuri = "sip:7777@192.0.2.12"\n'
        '[[contacts]]\nuser = "1001"\n'
    )
    found = contacts.from_file(path, INVENTORY)
    assert [(c.user, c.uri, c.vendor) for c in found.contacts] == [
        ("1003", "sip:1003@192.0.2.10:5062", "yealink"),
        ("2003", "sip:2003@192.0.2.11", "linksys"),
    ]
    assert (found.unknown, found.invalid, found.source) == (1, 1, f"file:{path}")


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(b"#" * (MAX_FILE_BYTES + 1)), f"more than {MAX_FILE_BYTES} bytes"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_text("[[contacts]\n"), "not valid TOML"),
        (lambda p: p.write_text('phones = 1\n[[contacts]]\nuser = "1"\n'), "only [[contacts]]"),
        (lambda p: None, "cannot read: No such file or directory"),
    ],
    ids=["too big", "fifo", "not toml", "other keys", "missing"],
)
def test_a_file_that_cannot_be_read(tmp_path: Path, make: Any, problem: str) -> None:
    path = tmp_path / "contacts.toml"
    make(path)
    with pytest.raises(ContactsError) as info:
        contacts.from_file(path, INVENTORY)
    assert problem in info.value.problems[0]


# -- the service -------------------------------------------------------------------------------


class Opened:
    """The fake NOTIFY sockets a service opened, each a FakeSender with its bind."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.sockets: list[Any] = []
        self.fail: str | None = None

    def __call__(self, reactor: Any, bind: str) -> Any:
        if self.fail is not None:
            raise OSError(self.fail)
        sender = FakeSender(reactor)
        sender.bind, sender.closed = bind, False  # type: ignore[attr-defined]
        sender.close = lambda: setattr(sender, "closed", True)  # type: ignore[attr-defined]
        self.sockets.append(sender)
        return sender


class Reads:
    """The fake contact reader: each read's source and a Deferred the test fires."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Deferred[ContactList]]] = []

    def __call__(self, source: Any, inventory: Any) -> Deferred[ContactList]:
        self.calls.append((source, Deferred()))
        return self.calls[-1][1]


PUSH = (
    '[push]\nrate = 10\ncontacts = "file"\ncontacts_file = "contacts.toml"\n'
    'bind = "127.0.0.1"\nservices = ["sip"]\n'
)


@pytest.fixture
def push_service(tmp_path: Path) -> Iterator[tuple[Service, Opened, Reads]]:
    path = sample_config(tmp_path)
    path.write_text(path.read_text() + PUSH)
    reactor = MemoryReactor()
    svc = Service(build(path), reactor, Limit(65536, 65536))
    opened, reads = Opened(reactor), Reads()
    svc.push.opener, svc.push.reader = opened, reads
    svc.push.startService()
    yield svc, opened, reads
    svc.push.stopService()


def test_a_sip_switch_pushes_and_the_status_and_metrics_count_it(push_service) -> None:
    svc, opened, reads = push_service
    assert svc.status()["push"]["last"] is None
    svc.core.active.switch({"db": "virginia"})  # not in [push] services: no push
    assert reads.calls == []
    svc.core.active.switch({"sip": "virginia"})
    ((source, reading),) = reads.calls
    assert (source.kind, source.path.name) == ("file", "contacts.toml")
    assert svc.status()["push"]["reading"]["generation"] == 3
    reading.callback(reached([Registration("1001", "sip:1001@127.0.0.1:5062")], INVENTORY, "f"))
    svc.core.reactor.advance(0)
    (socket,) = opened.sockets
    assert [c.mac for _, c in socket.sent] == [YEALINK_T46G]
    push = svc.status()["push"]
    assert push["reading"] is None and push["socket"] == {"bind": "127.0.0.1", "problem": None}
    assert {k: push["last"][k] for k in ("generation", "services", "contacts", "sent", "ok")} == {
        "generation": 3,
        "services": ["sip"],
        "contacts": 1,
        "sent": 1,
        "ok": 1,
    }
    assert push["last"]["pending"] == 0 and push["last"]["done_at"] is not None
    text = svc.metrics().decode()
    assert 'xprov_push_total{outcome="ok"} 1.0' in text
    assert 'xprov_push_total{outcome="timeout"} 0.0' in text
    assert "xprov_push_pending 0.0" in text


def test_a_switch_during_a_read_reads_again_and_pushes_only_the_newest(push_service) -> None:
    svc, opened, reads = push_service
    svc.core.active.switch({"sip": "virginia"})
    svc.core.active.switch({"sip": "chicago"})  # while the first read runs
    assert len(reads.calls) == 1
    reads.calls[0][1].callback(many(5, "old"))  # dropped: it may predate the second switch
    assert len(reads.calls) == 2 and svc.push.pusher.last is None
    reads.calls[1][1].callback(many(2, "new"))
    run(svc.core.reactor)
    assert [c.user for _, c in opened.sockets[0].sent] == ["new0", "new1"]
    assert svc.status()["push"]["last"]["generation"] == 3


def test_a_failed_read_is_reported_and_the_next_switch_pushes(push_service) -> None:
    svc, opened, reads = push_service
    svc.core.active.switch({"sip": "virginia"})
    reads.calls[0][1].errback(ContactsError(["location table `location` at chicago: timed out"]))
    last = svc.status()["push"]["last"]
    assert last["problem"] == "location table `location` at chicago: timed out"
    assert (last["contacts"], last["sent"], last["pending"]) == (0, 0, 0)
    svc.core.active.switch({"sip": "chicago"})
    reads.calls[1][1].callback(many(1))
    svc.core.reactor.advance(0)
    assert len(opened.sockets[0].sent) == 1


def test_location_reads_the_active_db_sites_database(push_service, tmp_path: Path) -> None:
    svc, _, _ = push_service
    path = svc.core.inputs.config.path
    path.write_text(
        path.read_text().replace(
            'contacts = "file"\ncontacts_file = "contacts.toml"\n',
            'contacts = "location"\nlocation_table = "location8"\ntimeout = 2.5\n',
        )
    )
    assert svc.reloader._swap(build(path))["ok"] is True
    svc.core.active.switch({"db": "virginia"})
    source = svc.push.contact_source()
    assert (source.kind, source.site, source.table, source.timeout) == (
        "location",
        "virginia",
        "location8",
        2.5,
    )
    assert source.db == svc.core.inputs.config.sites["virginia"].db


def test_a_socket_that_cannot_be_bound_fails_the_push_not_the_service(push_service) -> None:
    svc, opened, reads = push_service
    svc.push.stopService()
    opened.fail = "Cannot assign requested address"
    svc.push.startService()
    assert "Cannot assign requested address" in svc.status()["push"]["socket"]["problem"]
    svc.core.active.switch({"sip": "virginia"})
    reads.calls[0][1].callback(many(3))
    last = svc.status()["push"]["last"]
    assert last["problem"].startswith("no NOTIFY socket: cannot bind 127.0.0.1")
    assert last["sent"] == 0


def test_push_off_closes_the_socket_and_cancels_the_unsent(push_service) -> None:
    svc, opened, reads = push_service
    svc.core.active.switch({"sip": "virginia"})
    reads.calls[0][1].callback(many(100))
    run(svc.core.reactor, until=0.25)  # 10/s: 3 sent
    path = svc.core.inputs.config.path
    path.write_text(path.read_text().replace("\n[push]\n", "\n[push]\nenabled = false\n"))
    assert svc.reloader._swap(build(path))["ok"] is True
    assert opened.sockets[0].closed and svc.push.sender is None
    last = svc.push.pusher.last
    assert last is not None and (last.sent, last.cancelled) == (3, 97)
    run(svc.core.reactor)
    assert len(opened.sockets[0].sent) == 3
    svc.core.active.switch({"sip": "chicago"})
    assert len(reads.calls) == 1  # off: no more pushes


def test_metrics_without_a_pusher_have_no_push_family(provisioner) -> None:
    sources = metrics.Sources(
        observer=lambda: None,  # type: ignore[arg-type,return-value]
        gate=lambda: None,  # type: ignore[arg-type,return-value]
        provisioner=lambda: provisioner,
        tftp=lambda: None,
        monitor=lambda: None,
        active=lambda: provisioner.active,
        convergence=lambda: {},
        lag=lambda: 0.0,
        now=lambda: 0.0,
    )
    names = [family.name for family in metrics.XprovCollector(sources)._push()]
    assert names == []


def test_another_domains_user_gets_no_notify_and_no_credentials() -> None:
    """Break-it pass: a same-named user of another tenant of the softswitch registered,
    got the NOTIFY and challenged it: a digest of our line's password, to guess offline."""
    registrations = [
        Registration("1001", "sip:1001@10.0.0.66", domain="other-tenant.example"),
        Registration("2001", "sip:2001@10.0.0.8:5060", domain="XPROV"),  # our SPA's SRV label
        Registration("1003", "sip:1003@10.0.0.7", domain=None),  # usrloc use_domain off
    ]
    found = reached(registrations, INVENTORY, "location:chicago", frozenset({"xprov", "127.0.0.1"}))
    assert [(c.user, c.uri) for c in found.contacts] == [
        ("2001", "sip:2001@10.0.0.8:5060"),
        ("1003", "sip:1003@10.0.0.7"),
    ]
    assert found.unknown == 1
    # no domains to compare (the operator's file): every user of ours
    assert len(reached(registrations, INVENTORY, "file:x").contacts) == 3


def test_a_fresher_registration_we_cannot_send_to_hides_no_usable_one() -> None:
    """Break-it pass: a multicast contact expiring later silenced the phone."""
    registrations = [
        Registration("1001", "sip:1001@224.0.0.1:5060"),  # freshest, unusable
        Registration("1001", "sip:1001@pbx.example.net:5060"),  # a name: never resolved
        Registration("1001", "sip:1001@10.0.0.5:5062;transport=tcp"),  # NOTIFYs go over UDP
        Registration("1001", "sip:1001@10.0.0.6:5062"),  # the usable one
    ]
    found = reached(registrations, INVENTORY, "location:chicago")
    assert [c.uri for c in found.contacts] == ["sip:1001@10.0.0.6:5062"]
    assert (found.invalid, found.duplicates) == (3, 0)
    assert len(found.problems) == 3


def test_with_phone_redundancy_a_sip_switch_leaves_spa_phones_alone(tmp_path: Path) -> None:
    """An SPA's file names both servers in a fixed order: a SIP switch changes none of its
    bytes, so it is not pushed (its NOTIFY would only cost the rate); a STUN switch changes
    its STUN_Server and pushes it."""
    path = sample_config(tmp_path)
    text = path.read_text().replace(
        'backup = "virginia"\n', 'backup = "virginia"\nphone_redundancy = true\n', 1
    )
    path.write_text(text + PUSH.replace('services = ["sip"]', 'services = ["sip", "stun"]'))
    reactor = MemoryReactor()
    svc = Service(build(path), reactor, Limit(65536, 65536))
    opened, reads = Opened(reactor), Reads()
    svc.push.opener, svc.push.reader = opened, reads
    svc.push.startService()
    try:
        both = [
            Registration("1001", "sip:1001@127.0.0.1:5062"),
            Registration("2001", "sip:2001@127.0.0.1:5064"),
        ]
        svc.core.active.switch({"sip": "virginia"})
        reads.calls[-1][1].callback(reached(both, INVENTORY, "f"))
        for _ in range(20):
            reactor.advance(0.1)
        (socket,) = opened.sockets
        assert [c.vendor for _, c in socket.sent] == ["yealink"]
        last = svc.status()["push"]["last"]
        assert (last["contacts"], last["unchanged"]) == (1, 1)
        svc.core.active.switch({"stun": "virginia"})
        reads.calls[-1][1].callback(reached(both, INVENTORY, "f"))
        for _ in range(20):
            reactor.advance(0.1)
        assert [c.vendor for _, c in socket.sent] == ["yealink", "yealink", "linksys"]
        assert svc.status()["push"]["last"]["unchanged"] == 0
    finally:
        svc.push.stopService()
