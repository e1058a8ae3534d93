"""How late the reactor runs a timer: the longest stall any request could have waited."""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class LagMeter:
    """A timer every `interval` seconds that measures how late it fires."""

    def __init__(self, clock: IReactorTime, interval: float = 0.025, window: int = 60) -> None:
        self.clock, self.interval = clock, interval
        self.max_s = 0.0  # since start
        self._seconds: deque[tuple[int, float]] = deque(maxlen=window)  # (second, max lag)
        self._expected = 0.0
        self._call: IDelayedCall | None = None

    def start(self) -> None:
        self._expected = self.clock.seconds() + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()

    def _tick(self) -> None:
        now = self.clock.seconds()
        lag = max(0.0, now - self._expected)
        self.max_s = max(self.max_s, lag)
        second = int(now)
        if self._seconds and self._seconds[-1][0] == second:
            self._seconds[-1] = (second, max(self._seconds[-1][1], lag))
        else:
            self._seconds.append((second, lag))
        self._expected = now + self.interval
        self._call = self.clock.callLater(self.interval, self._tick)

    def recent_max_s(self) -> float:
        """The longest lag in the last `window` seconds."""
        now = int(self.clock.seconds())
        window = self._seconds.maxlen or 0
        return max((lag for second, lag in self._seconds if second > now - window), default=0.0)
