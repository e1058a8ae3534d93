"""Error text every part of the monitor shares: a short, secret-free description of a
failure, and whether it is a shortage of our own (out of file descriptors) rather than the
target's fault. Generic: the service uses `error_detail` for inventory errors too.
"""

from __future__ import annotations

import errno
import unicodedata
from dataclasses import dataclass
from typing import Any

# Our own process (EMFILE) or host (ENFILE) out of descriptors: errors of ours, not a target's.
LOCAL_ERRNOS = {errno.EMFILE: "EMFILE", errno.ENFILE: "ENFILE"}
_CAUSES = 8  # exceptions followed down a chain of causes: Twisted and PyMySQL wrap once or twice
# Characters of a probe's detail: it quotes remote servers (a SIP reason phrase), and goes to
# the log, the status, switch reasons and the status page.
DETAIL_LENGTH = 200


@dataclass(frozen=True)
class NotMade:
    """A probe this process could not make (it is out of file descriptors): it says nothing
    about the target."""

    detail: str


def printable(text: str, limit: int = DETAIL_LENGTH) -> str:
    """`text` with every control, format (bidirectional overrides, zero-width) and unassigned
    character replaced by "?" and cut to `limit` characters ("..." marks a cut): what a
    remote server says can neither reverse nor flood what an operator reads."""
    clean = "".join("?" if unicodedata.category(c)[0] == "C" else c for c in text)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def error_detail(reason: Any) -> str:
    """A short, secret-free description of a failure (a Failure or an exception); "out of
    file descriptors (EMFILE)" when that is what it comes down to, whatever wraps it."""
    shortage = local_shortage(reason)
    if shortage is not None:
        return shortage
    exc = getattr(reason, "value", reason)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}"[:200] if text else name


def local_shortage(reason: Any) -> str | None:
    """The label "out of file descriptors (EMFILE)" (or ENFILE) when `reason` (a Failure or an
    exception) is, or was caused by, an OSError with that errno; None otherwise. Follows
    what wraps one: Twisted's CannotListenError (`socketError`) and ConnectError
    (`osError`, the errno itself), PyMySQL's OperationalError (`original_exception`), and
    Python's `__cause__` and `__context__`."""
    exc = getattr(reason, "value", reason)
    for _ in range(_CAUSES):
        if not isinstance(exc, BaseException):
            return None
        number = exc.errno if isinstance(exc, OSError) else getattr(exc, "osError", None)
        if number in LOCAL_ERRNOS:
            return f"out of file descriptors ({LOCAL_ERRNOS[number]})"
        exc = next(
            (
                cause
                for cause in (
                    getattr(exc, "socketError", None),
                    getattr(exc, "original_exception", None),
                    exc.__cause__,
                    exc.__context__,
                )
                if isinstance(cause, BaseException)
            ),
            None,
        )
    return None
