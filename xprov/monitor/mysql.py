"""Database probe: authenticate, `SELECT 1` and `@@global.read_only` (checked against the
site's expectation when it has one). PyMySQL blocks, so it runs on a thread pool of its own.

ProxySQL's model: one connection is kept per database and pinged with the query every
round (one round trip: a lost packet is retransmitted by TCP well inside the deadline),
and every `FRESH_EVERY` rounds, or whenever the kept connection fails, a new connection is
made, authenticated and checked. Connecting anew every second made a lost SYN (1 s before
the kernel retries) a failed probe: with 5% of packets dropped, three in a row came often
enough to switch a healthy database twice in ten minutes.

A new connection resends its SYN every third of the deadline rather than after the kernel's
one second. All three PyMySQL timeouts are set: `connect_timeout` alone does not bound the
handshake, and a server that accepts and never greets would hang the thread forever. The
reactor side still gives its verdict at the deadline; a late thread ends on its own
timeouts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from xprov import database
from xprov.config import DbService
from xprov.monitor.probe import Outcome, Verdict, failed, run_probe
from xprov.monitor.registry import ProbeContext
from xprov.monitor.state import ProbeResult

if TYPE_CHECKING:
    from xprov.monitor.probe import IProbeReactor

FRESH_EVERY = 30  # rounds between two checks on a new connection


def _query(db: DbService, connection: Any) -> Verdict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1, @@global.read_only")
        row = cursor.fetchone()
    if not row or row[0] != 1:
        return False, "SELECT 1 returned no row"
    read_only = bool(row[1])
    if db.expect_read_only is not None and read_only != db.expect_read_only:
        return False, f"read_only is {int(read_only)}, expected {int(db.expect_read_only)}"
    return True, f"SELECT 1 ok, read_only={int(read_only)}"


def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):  # COM_QUIT: a clean goodbye, if it can
        connection.close()


def check(db: DbService, timeout: float) -> Outcome:
    """A whole check on a new connection: connect, authenticate, query, quit (blocking)."""
    try:
        connection = database.connect(db, timeout)
    except Exception as exc:  # PyMySQL raises assorted errors on connect
        return failed(exc)
    try:
        return _query(db, connection)
    except Exception as exc:
        return failed(exc)
    finally:
        _close(connection)


class DatabaseProbe:
    """The kept connection of one database and the checks made on it (pool threads only)."""

    def __init__(self, db: DbService, timeout: float, fresh_every: int = FRESH_EVERY) -> None:
        self.db, self.timeout, self.fresh_every = db, timeout, fresh_every
        self.connection: Any = None
        self.rounds = 0
        self._busy = threading.Lock()

    def check(self) -> Outcome:
        if not self._busy.acquire(blocking=False):
            return check(self.db, self.timeout)  # the last round is still at it
        try:
            self.rounds += 1
            fresh = self.connection is None or self.rounds % self.fresh_every == 0
            if fresh:
                self.close()
                try:
                    self.connection = database.connect(self.db, self.timeout)
                except Exception as exc:
                    return failed(exc)
            try:
                ok, detail = _query(self.db, self.connection)
            except Exception as exc:
                self.close()  # broken or timed out: the next round connects anew
                return failed(exc)
            return ok, detail + (" (new connection)" if fresh and ok else "")
        finally:
            self._busy.release()

    def close(self) -> None:
        if self.connection is not None:
            _close(self.connection)
            self.connection = None


def probe_database(
    database: DatabaseProbe, timeout: float, reactor: IProbeReactor, pool: ThreadPool
) -> Deferred[ProbeResult]:
    def attempt(done: Deferred[Outcome]) -> Callable[[], None]:
        def settle(outcome: Outcome) -> None:
            if not done.called:
                done.callback(outcome)

        running = deferToThreadPool(reactor, pool, database.check)
        running.addCallbacks(settle, lambda reason: settle(failed(reason)))
        return lambda: None  # a thread cannot be stopped; its own timeouts end it

    return run_probe(attempt, timeout, reactor)


class MysqlProbe:
    """The database probe as a registry `Probe`, bound to the reactor and the probe pool.
    One per target: it keeps that database's connection (`DatabaseProbe`) across rounds."""

    settings = None  # nothing from [monitor] but the deadline

    def __init__(self, context: ProbeContext) -> None:
        self.reactor, self.pool = context.reactor, context.pool
        self.kept: DatabaseProbe | None = None

    def describe(self, target: DbService) -> str:
        return f"mysql {target.host}:{target.port}/{target.database}"

    def probe(self, target: DbService, deadline: float) -> Deferred[ProbeResult]:
        if self.kept is None or (self.kept.db, self.kept.timeout) != (target, deadline):
            self.close()
            self.kept = DatabaseProbe(target, deadline)
        return probe_database(self.kept, deadline, self.reactor, self.pool)

    def close(self) -> None:
        if self.kept is not None:
            self.pool.callInThread(self.kept.close)  # a pool thread may be using it
            self.kept = None
