"""The thread pool blocking probes (PyMySQL) run on, and its size."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from twisted.python.threadpool import ThreadPool

from xprov.monitor import registry

if TYPE_CHECKING:
    from xprov.config import Config

MIN_THREADS = 2  # the pool's floor, whatever the table asks for


class _DaemonThread(threading.Thread):
    """A thread that never holds the process up at exit (ThreadPool's `threadFactory`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # as ThreadPool passes them
        super().__init__(*args, daemon=True, **kwargs)


def daemon_pool(name: str, size: int) -> ThreadPool:
    """A thread pool whose threads never hold the process up at exit: a probe stuck on a
    hung database must not delay a SIGTERM."""
    pool = ThreadPool(minthreads=0, maxthreads=size, name=name)
    pool.threadFactory = _DaemonThread
    return pool


def probe_threads(config: Config) -> int:
    """Enough threads that a hung target of a blocking probe type (a database: each stuck
    thread ends on PyMySQL's timeouts, up to three of them) cannot starve the next rounds
    of the others: each row's `threads` per target it has, at least MIN_THREADS."""
    wanted = sum(
        kind.threads
        for site in config.sites.values()
        for kind in registry.SERVICE_TYPES
        if site.service(kind.name) is not None
    )
    return max(MIN_THREADS, wanted)


def probe_pool(config: Config) -> ThreadPool:
    """The pool blocking probes run on, `probe_threads` strong (a reload resizes it)."""
    return daemon_pool("xprov-db-probes", probe_threads(config))
