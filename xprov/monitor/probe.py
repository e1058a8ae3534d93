"""What every probe shares: a verdict within its own deadline, whatever happens.

A probe is started with `run_probe(attempt, timeout, clock)`. `attempt(done)` begins the
work, fires `done` with `(ok, detail)` when it knows, and returns a cleanup to call at the
end. The returned Deferred always fires with a ProbeResult, never with an error, and never
later than `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred

from xprov.monitor.state import ProbeResult

Verdict = tuple[bool, str]
Attempt = Callable[[Deferred[Verdict]], Callable[[], None]]


def run_probe(attempt: Attempt, timeout: float, clock: Any) -> Deferred[ProbeResult]:
    started = clock.seconds()
    done: Deferred[Verdict] = Deferred()

    def settle(verdict: Verdict) -> None:
        if not done.called:
            done.callback(verdict)

    timer = clock.callLater(timeout, settle, (False, "timeout"))
    watched: Deferred[Verdict] = Deferred()
    watched.addCallback(settle)
    try:
        cleanup = attempt(watched)
    except Exception as exc:  # a probe that cannot even start has failed, nothing more
        cleanup = _nothing
        settle((False, f"cannot start: {type(exc).__name__}: {exc}"))

    def finish(verdict: Verdict) -> ProbeResult:
        if timer.active():
            timer.cancel()
        with contextlib.suppress(Exception):  # a dead connection may not clean up; no matter
            cleanup()
        ok, detail = verdict
        return ProbeResult(ok, clock.seconds() - started, detail)

    return done.addCallback(finish)


def _nothing() -> None:
    pass


def resolve(host: str, reactor: Any) -> Deferred[str]:
    """An IP address for `host` (itself when it is one)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return reactor.resolve(host)
    done: Deferred[str] = Deferred()
    done.callback(host)
    return done


def error_detail(reason: Any) -> str:
    """A short, secret-free description of a failure (a Failure or an exception)."""
    exc = getattr(reason, "value", reason)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:200] if text else name
