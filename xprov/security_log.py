"""The `security` log events, bounded: a flood can never fill the disk.

Every refused connection, charged refusal and wrong admin token is a `security` event (for
fail2ban), and an outsider decides how many of those happen: a source reconnecting in a loop
wrote 10,000 lines in 7 s, forged TFTP sources 21 MB per 100,000 datagrams. So each reason
has a token bucket of lines (`BURST` at once, `PER_SECOND` after that); what its bucket
refuses is counted, and the counts are written as one `security_suppressed` event with the
next line that passes. A flood from one address has written its address `BURST` times before
anything is dropped, which is what fail2ban needs. Other lines an outsider can cause (a
request for an unknown model's file) use the same bound at their own level.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

from xprov.logs import get_logger
from xprov.ratelimit import BadAnswerLimiter

BURST = 100  # lines per reason at once
PER_SECOND = 1.0  # lines per reason and second after that: at most 86,400 a day each
MAX_REASONS = 256  # reasons are a fixed set of phrases; a bound all the same


class BoundedLog:
    """`write(event, reason=..., **fields)` to a structlog logger at `level`, within each
    reason's budget of lines. `clock` is monotonic seconds."""

    def __init__(
        self,
        logger: Any = None,
        level: str = "warning",
        burst: float = BURST,
        per_second: float = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger if logger is not None else get_logger("xprov.security")
        self.level = level
        self.burst, self.per_second, self.clock = burst, per_second, clock
        self.reset()
        _ALL.add(self)

    def reset(self) -> None:
        """Every reason's budget full, nothing suppressed."""
        self.lines = BadAnswerLimiter(self.burst, self.per_second, max_sources=MAX_REASONS)
        self.suppressed: Counter[str] = Counter()  # reason -> lines not written yet

    def write(self, event: str, *, reason: str, **fields: Any) -> bool:
        """Write the event if its reason's budget allows; True if it was written."""
        now = self.clock()
        if self.lines.blocked(reason, now):
            self.suppressed[reason] += 1
            return False
        self.lines.spend(reason, now)
        if self.suppressed:
            counts, self.suppressed = dict(sorted(self.suppressed.items())), Counter()
            getattr(self.logger, self.level)(f"{event}_suppressed", counts=counts)
        getattr(self.logger, self.level)(event, reason=reason, **fields)
        return True


_ALL: weakref.WeakSet[BoundedLog] = weakref.WeakSet()


def reset_all() -> None:
    """Every bounded log's budgets full (tests: a test session is one long process)."""
    for bounded in list(_ALL):
        bounded.reset()


SECURITY = BoundedLog()
