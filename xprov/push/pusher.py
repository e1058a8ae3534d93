"""The push after a switch: one NOTIFY per contact, at most `rate` a second, each result
counted. Pure but for the clock (the reactor's; `task.Clock` in tests) and `send`.

The rate is a token bucket with a burst of one: each NOTIFY leaves at least 1/rate s after
the previous one left (on the clock, not on paper: a late reactor makes the next one later,
never two at once), across pushes too, so no one-second window ever holds more than `rate`
NOTIFYs. The pusher never waits for answers: a slow phone delays nothing, and answers arriving
together send nothing more. A new push cancels what the previous one has not sent yet; its
NOTIFYs in flight still count when they end.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from xprov import logs
from xprov.monitor.errors import error_detail
from xprov.push.contacts import ContactList
from xprov.push.model import Contact, Outcome, PushResult

log = logs.get_logger("xprov.push")

OUTCOMES: tuple[Outcome, ...] = ("ok", "timeout", "error", "unauthorized", "unreachable")
# Added to every gap (s): the clock's floating-point sums could otherwise make 1/rate gaps
# add up to a hair under one second, and put rate + 1 NOTIFYs in one second's window.
SLACK = 1e-6

Send = Callable[[Contact], "Deferred[PushResult]"]


@dataclass
class PushRecord:
    """One push: what was read for it and what its NOTIFYs came to. Times: s on the
    pusher's clock. `contacts`: phones to reach; `cancelled`: left unsent by a newer push (or
    a stop); `problem`: why no contact could be read (then `contacts` is 0)."""

    at: float
    generation: int  # the selection's generation that started it
    services: tuple[str, ...]  # the switched services that asked for it
    contacts: int
    unknown: int = 0
    invalid: int = 0
    duplicates: int = 0
    truncated: bool = False
    source: str = ""
    problem: str | None = None
    unchanged: int = 0  # phones whose files this switch left as they were: not pushed
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    cancelled: int = 0
    done_at: float | None = None
    send_failures: int = 0  # sends that failed in the sender itself (counted as errors)

    @property
    def pending(self) -> int:
        """Contacts not sent yet, or sent and not answered yet."""
        return self.contacts - self.cancelled - sum(self.outcomes.values())

    def report(self) -> dict[str, Any]:
        """The status document's `push.last`."""
        return {
            "at": self.at,
            "generation": self.generation,
            "services": list(self.services),
            "source": self.source,
            "contacts": self.contacts,
            "unknown": self.unknown,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "unchanged": self.unchanged,
            "truncated": self.truncated,
            "problem": self.problem,
            "sent": self.sent,
            **self.outcomes,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "done_at": self.done_at,
        }


class Pusher:
    """Sends each push's contacts through `send` (a NOTIFY; fires with a PushResult) at most
    `rate` per second (1..10,000; the next gap uses a new value at once). `totals`: results
    by outcome since the start; `skipped`: registrations left out ("unknown", "invalid")."""

    def __init__(self, clock: IReactorTime, send: Send, rate: float) -> None:
        self.clock, self.send, self.rate = clock, send, rate
        self.last: PushRecord | None = None
        self.totals: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.skipped: dict[str, int] = {"unknown": 0, "invalid": 0}
        self._queue: deque[Contact] = deque()
        self._timer: IDelayedCall | None = None
        self._last_sent: float | None = None  # when the latest NOTIFY left, on any push
        self._in_flight: set[Deferred[Any]] = set()

    @property
    def pending(self) -> int:
        """NOTIFYs not sent yet, or sent and not answered yet, of every push."""
        return len(self._queue) + len(self._in_flight)

    def start(self, contacts: ContactList, generation: int, services: tuple[str, ...]) -> None:
        """A new push of `contacts`: what the previous one has not sent is cancelled."""
        self.cancel()
        record = PushRecord(
            self.clock.seconds(),
            generation,
            services,
            len(contacts.contacts),
            contacts.unknown,
            contacts.invalid,
            contacts.duplicates,
            contacts.truncated,
            contacts.source,
            unchanged=contacts.unchanged,
        )
        self.last = record
        self.skipped["unknown"] += contacts.unknown
        self.skipped["invalid"] += contacts.invalid
        count = len(contacts.contacts)
        log.info(
            "push_started",
            generation=generation,
            services=list(services),
            source=contacts.source,
            count=count,
            unknown=contacts.unknown,
            invalid=contacts.invalid,
            duplicates=contacts.duplicates,
            unchanged=contacts.unchanged,
            truncated=contacts.truncated,
            rate=self.rate,
            estimated_s=round(max(count - 1, 0) / self.rate, 1),
            **({"problems": list(contacts.problems)} if contacts.problems else {}),
        )
        self._queue.extend(contacts.contacts)
        if self._queue:
            self._schedule()
        else:
            self._check_done(record)

    def failed(self, generation: int, services: tuple[str, ...], problem: str) -> None:
        """A push whose contacts could not be read: recorded (status), nothing sent."""
        self.cancel()
        now = self.clock.seconds()
        self.last = PushRecord(now, generation, services, 0, problem=problem, done_at=now)
        log.warning("push_failed", generation=generation, services=list(services), problem=problem)

    def cancel(self) -> None:
        """Send no more of the current push (its NOTIFYs in flight still count)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        record, unsent = self.last, len(self._queue)
        self._queue.clear()
        if record is None or unsent == 0:
            return
        record.cancelled += unsent
        log.info("push_cancelled", generation=record.generation, unsent=unsent)
        self._check_done(record)

    def in_flight(self) -> frozenset[Deferred[Any]]:
        """The NOTIFYs sent and not answered yet (to give them up with their socket)."""
        return frozenset(self._in_flight)

    @staticmethod
    def give_up(running: frozenset[Deferred[Any]]) -> None:
        """Give up these NOTIFYs (their socket is closed): each one not answered by now
        counts as an error."""
        for one in running:
            one.cancel()

    def _schedule(self) -> None:
        now = self.clock.seconds()
        due = now if self._last_sent is None else self._last_sent + 1 / self.rate + SLACK
        self._timer = self.clock.callLater(max(0.0, due - now), self._send_next)

    def _send_next(self) -> None:
        self._timer = None
        record = self.last
        assert record is not None and self._queue
        contact = self._queue.popleft()
        record.sent += 1
        try:
            running = self.send(contact)
        except Exception as exc:  # a sender that cannot send: counted, the push goes on
            running = fail(exc)
        # read once the datagram is out: the next one leaves at least 1/rate after it
        self._last_sent = self.clock.seconds()
        self._in_flight.add(running)
        running.addBoth(self._answered, record, running)
        if self._queue:
            self._schedule()

    def _answered(self, result: Any, record: PushRecord, running: Deferred[Any]) -> None:
        self._in_flight.discard(running)
        if isinstance(result, PushResult) and result.outcome in record.outcomes:
            outcome: str = result.outcome
        else:
            outcome = "error"
            record.send_failures += 1
            if record.send_failures == 1:  # one line per push, not one per phone
                log.warning(
                    "push_send_failed", generation=record.generation, error=error_detail(result)
                )
        record.outcomes[outcome] += 1
        self.totals[outcome] += 1
        self._check_done(record)

    def _check_done(self, record: PushRecord) -> None:
        if record.done_at is not None or record.pending > 0:
            return
        record.done_at = self.clock.seconds()
        log.info(
            "push_done",
            generation=record.generation,
            contacts=record.contacts,
            sent=record.sent,
            cancelled=record.cancelled,
            seconds=round(record.done_at - record.at, 3),
            **record.outcomes,
        )
