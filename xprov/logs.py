"""structlog set-up: JSON lines for machines, console for people, secrets redacted.

Twisted's and the standard library's logs are bridged into the same stream. Every event,
traceback included, passes the redactor before it is written: values under secret-looking
keys are masked, and every known secret (SIP and DB passwords) is cut out of any string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from twisted.logger import (
    ILogObserver,
    LogLevel,
    formatEvent,
    globalLogBeginner,
    globalLogPublisher,
)
from zope.interface import provider

MASK = "***"
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authorization", re.IGNORECASE)
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


# A secret shorter than this cannot be cut out of log lines without masking ordinary words
# ("123", "abc"), so the config and the inventory refuse one (`secret_problem`).
MIN_SECRET_LENGTH = 4


def secret_problem(value: str) -> str | None:
    """Why `value` cannot be a secret (a password, a token, a PIN); None if it can. An empty
    value is no secret at all, so it has no problem here."""
    if 0 < len(value) < MIN_SECRET_LENGTH:
        return (
            f"shorter than {MIN_SECRET_LENGTH} characters"
            " (a secret that short could not be kept out of the logs)"
        )
    return None


class Redactor:
    """Cuts known secrets out of log text.

    Secrets are grouped by length, so one scan of a line costs a set lookup per position and
    length, whatever the number of secrets (100,000 phones have 200,000 passwords)."""

    MIN_LENGTH = MIN_SECRET_LENGTH  # shorter ones are refused where they are read

    def __init__(self) -> None:
        self._by_length: dict[int, frozenset[str]] = {}

    @classmethod
    def prepare(cls, secrets: Iterable[str]) -> dict[int, frozenset[str]]:
        """Group secrets by length; slow for many secrets, so callers may do it off the
        reactor and `install` the result."""
        groups: dict[int, set[str]] = {}
        for secret in secrets:
            if len(secret) >= cls.MIN_LENGTH:
                groups.setdefault(len(secret), set()).add(secret)
        return {n: frozenset(group) for n, group in groups.items()}

    def install(self, groups: dict[int, frozenset[str]]) -> None:
        self._by_length = groups

    def update(self, secrets: Iterable[str]) -> None:
        self.install(self.prepare(secrets))

    def scrub(self, text: str) -> str:
        found = set()
        for length, group in self._by_length.items():
            for i in range(len(text) - length + 1):
                if text[i : i + length] in group:
                    found.add(text[i : i + length])
        for secret in sorted(found, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        for key, value in event.items():
            event[key] = self._clean(key, value)
        return event

    def _clean(self, key: str, value: Any) -> Any:
        if isinstance(value, int | float | bool) or value is None:
            return value  # a count or a flag, even under a secret's name ("wrong token": 5)
        if _SECRET_KEY.search(key):
            return MASK
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        return self.scrub(str(value))


REDACTOR = Redactor()
_bridged = False


class ProcessLogs:
    """The process's log settings, owned by the command that runs it: the format it was
    given on the command line wins over the config's; `apply` is the one call that changes
    them afterwards (a reload's [logging], its secrets for the redactor)."""

    def __init__(self, format_override: str | None = None) -> None:
        self.format_override = format_override

    def apply(self, fmt: str, level: str, secrets: dict[int, frozenset[str]]) -> None:
        configure(self.format_override or fmt, level)
        self.redact(secrets)

    def redact(self, secrets: dict[int, frozenset[str]]) -> None:
        """New secrets alone (an inventory refresh): the renderer stays as it is."""
        REDACTOR.install(secrets)


def configure(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Send every log event (ours, Twisted's, the standard library's) to `stream`."""
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=True)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # plain text tracebacks: never a formatter that shows local variables
            structlog.processors.format_exc_info,
            REDACTOR,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    _bridge(_LEVELS[level])


def _bridge(level: int) -> None:
    global _bridged
    logging.getLogger().setLevel(level)
    if _bridged:
        return
    _bridged = True
    logging.getLogger().handlers = [_StdlibHandler()]
    globalLogPublisher.addObserver(_twisted_observer)


def begin_twisted_logging() -> None:
    """End Twisted's start-up buffering (once per process, by the server only)."""
    globalLogBeginner.beginLoggingTo([], redirectStandardIO=False)


_TWISTED_LEVELS = {
    LogLevel.debug: "debug",
    LogLevel.info: "info",
    LogLevel.warn: "warning",
    LogLevel.error: "error",
    LogLevel.critical: "critical",
}


# Twisted announces every port it opens and closes; TFTP opens one per transfer, so that
# chatter would be two lines per phone poll. Our own "started" event lists the listeners.
_PORT_CHATTER = re.compile(r"^\(\w+ Port \d+ Closed\)$|^\S+ starting on \d+$")


@provider(ILogObserver)
def _twisted_observer(event: dict[str, Any]) -> None:
    message = event.get("message")
    if message and isinstance(message[0], str) and _PORT_CHATTER.match(message[0]):
        return
    level = _TWISTED_LEVELS.get(event.get("log_level", LogLevel.info), "info")
    failure = event.get("log_failure")
    log = get_logger("twisted")
    fields: dict[str, Any] = {"source": event.get("log_namespace", "twisted")}
    if failure is not None:
        fields["exception"] = failure.getTraceback()
        level = "error"
    getattr(log, level if level != "critical" else "error")(formatEvent(event) or "", **fields)


class _StdlibHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = get_logger(record.name)
        fields: dict[str, Any] = {}
        if record.exc_info:
            fields["exc_info"] = record.exc_info
        log.log(record.levelno, record.getMessage(), **fields)


def get_logger(name: str = "xprov") -> Any:
    """A logger whose events say where they come from (`"component": name`)."""
    return structlog.get_logger(component=name)
