"""One TFTP read transfer as a state machine: OACK, windows of DATA, ACKs, retransmission.

No sockets: the transfer sends through a callable and keeps time with an injected clock
(the reactor, or `task.Clock` in tests). The transport has already checked the peer's
transfer id; everything that arrives here comes from the peer.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from xprov.tftp import codec
from xprov.tftp.options import Negotiated


class Result(Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # the peer stopped answering: retries exhausted, or max_stall passed
    ABORTED = "aborted"  # the peer sent an ERROR (refused our options, gave up, ...)
    CANCELLED = "cancelled"  # the server ended it (a new request replaced it, shutdown)
    EVICTED = "evicted"  # the server needed its slot, and its peer had never answered


class ReadTransfer:
    """Sends `body` in blocks of `blksize`, `windowsize` blocks per window (RFC 7440).

    Block numbers are absolute inside (1, 2, ... n) and wrap to 0 after 65535 on the wire.
    Only an ACK that moves the acknowledged point forward causes a send, so a duplicated
    ACK never duplicates DATA (no Sorcerer's Apprentice); lost packets are recovered by the
    timer alone, a bounded number of times, every negotiated timeout (RFC 2349). Whatever
    that timeout, a transfer that makes no progress for `max_stall` seconds ends with
    Result.TIMEOUT (see Limits.max_stall)."""

    def __init__(
        self,
        body: bytes,
        negotiated: Negotiated,
        retries: int,
        max_stall: float,
        send: Callable[[bytes], None],
        clock: IReactorTime,
        finished: Callable[[ReadTransfer, Result], None],
    ) -> None:
        self.body = body
        self.blksize = negotiated.blksize
        self.windowsize = negotiated.windowsize
        self.timeout = negotiated.timeout
        self.oack = negotiated.oack
        self.retries, self.max_stall = retries, max_stall
        self.send, self.clock, self.finished = send, clock, finished
        self.blocks = len(body) // self.blksize + 1  # the last block is short, maybe empty
        self.acked = 0  # highest block the peer acknowledged
        self.sent = 0  # highest block sent
        self.tries = 0
        self.retransmits = 0
        self.bytes_sent = 0
        self.result: Result | None = None
        self.answered = False  # an ACK moved the transfer on: the peer receives what we send
        self._timer: IDelayedCall | None = None  # the retransmission timer
        self._stall: IDelayedCall | None = None  # the give-up timer, pushed back on progress

    @property
    def waiting_for_oack_ack(self) -> bool:
        """Options to acknowledge, and no DATA sent yet: only ACK 0 may follow the OACK."""
        return bool(self.oack) and self.sent == 0

    def start(self) -> None:
        self._stall = self.clock.callLater(self.max_stall, self._finish, Result.TIMEOUT)
        self._send()

    def _send(self) -> None:
        """The OACK while it is unacknowledged, else the window from the first unacknowledged
        block; then wait for an ACK."""
        if self.waiting_for_oack_ack:
            self.send(codec.oack(self.oack))
            self._arm()
        else:
            self._send_window()

    def receive(self, packet: codec.Packet) -> None:
        if self.result is not None:
            return
        if isinstance(packet, codec.Error):
            self._finish(Result.ABORTED)
        elif isinstance(packet, codec.Ack):
            self._on_ack(packet.block)
        # anything else from the peer (DATA, a stray RRQ, ...) is ignored

    def cancel(self, result: Result = Result.CANCELLED) -> None:
        """End it from the server's side: CANCELLED, or EVICTED."""
        if self.result is None:
            self._finish(result)

    def _on_ack(self, block: int) -> None:
        if self.waiting_for_oack_ack:
            if block == 0:
                self._progress()
                self._send_window()
            return
        acked = self._absolute(block)
        if acked is None:
            return  # a duplicate or stale ACK: never answer it with DATA
        self.acked = acked
        self._progress()
        if acked == self.blocks:
            self._finish(Result.OK)
        else:
            self._send_window()

    def _progress(self) -> None:
        self.tries, self.answered = 0, True
        assert self._stall is not None  # start() set it before any packet could arrive
        self._stall.reset(self.max_stall)

    def _absolute(self, block: int) -> int | None:
        """The outstanding absolute block whose 16-bit number is `block`, if any."""
        candidate = self.sent - ((self.sent - block) & 0xFFFF)
        return candidate if self.acked < candidate <= self.sent else None

    def _send_window(self) -> None:
        """(Re)send every block from the first unacknowledged one, up to a window."""
        last = min(self.acked + self.windowsize, self.blocks)
        for block in range(self.acked + 1, last + 1):
            start = (block - 1) * self.blksize
            payload = self.body[start : start + self.blksize]
            self.send(codec.data(block, payload))
            self.bytes_sent += len(payload)
        self.sent = max(self.sent, last)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.timeout)
        else:
            self._timer = self.clock.callLater(self.timeout, self._on_timeout)

    def _on_timeout(self) -> None:
        self._timer = None
        if self.tries >= self.retries:
            self._finish(Result.TIMEOUT)
            return
        self.tries += 1
        self.retransmits += 1
        self._send()

    def _finish(self, result: Result) -> None:
        self.result = result
        for timer in (self._timer, self._stall):
            if timer is not None and timer.active():
                timer.cancel()
        self.finished(self, result)
