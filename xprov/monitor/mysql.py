"""Database probe: connect, authenticate, `SELECT 1`, optionally check `@@global.read_only`,
quit cleanly. PyMySQL blocks, so it runs on a thread pool of its own.

All three PyMySQL timeouts are set: `connect_timeout` alone does not bound the handshake,
and a server that accepts and never greets would hang the thread forever. The reactor side
still gives its verdict at the deadline; a late thread finishes on its own timeouts.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pymysql
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from xprov.config import DbService
from xprov.monitor.probe import Verdict, error_detail, run_probe
from xprov.monitor.state import ProbeResult


def connect(db: DbService, timeout: float) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password,
        database=db.database,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        ssl_disabled=not db.tls,
        autocommit=True,
    )


def check(db: DbService, timeout: float) -> Verdict:
    """The blocking check (thread pool only). Error details never hold the password."""
    try:
        connection = connect(db, timeout)
    except Exception as exc:  # PyMySQL raises assorted errors on connect
        return False, error_detail(exc)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1, @@global.read_only")
            row = cursor.fetchone()
    except Exception as exc:
        return False, error_detail(exc)
    finally:
        with contextlib.suppress(Exception):  # COM_QUIT: a clean goodbye, if it can
            connection.close()
    if not row or row[0] != 1:
        return False, "SELECT 1 returned no row"
    read_only = bool(row[1])
    if db.expect_read_only is not None and read_only != db.expect_read_only:
        return False, f"read_only is {int(read_only)}, expected {int(db.expect_read_only)}"
    return True, f"SELECT 1 ok, read_only={int(read_only)}"


def daemon_pool(name: str, size: int) -> ThreadPool:
    """A thread pool whose threads never hold the process up at exit: a probe stuck on a
    hung database must not delay a SIGTERM."""
    pool = ThreadPool(minthreads=0, maxthreads=size, name=name)
    pool.threadFactory = lambda *args, **kwargs: threading.Thread(  # type: ignore[misc]
        *args, daemon=True, **kwargs
    )
    return pool


def probe_database(
    db: DbService, timeout: float, reactor: Any, pool: ThreadPool
) -> Deferred[ProbeResult]:
    def attempt(done: Any) -> Any:
        running = deferToThreadPool(reactor, pool, check, db, timeout)
        running.addCallbacks(
            lambda result: done.called or done.callback(result),
            lambda reason: done.called or done.callback((False, error_detail(reason))),
        )
        return lambda: None  # a thread cannot be stopped; its own timeouts end it

    return run_probe(attempt, timeout, reactor)
