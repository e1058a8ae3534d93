"""The read-transfer state machine, driven by task.Clock: options, loss at every point,
duplicates, rollover and give-up."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from twisted.internet.task import Clock

from xprov.tftp import codec
from xprov.tftp.options import Limits, negotiate
from xprov.tftp.session import ReadTransfer, Result

LIMITS = Limits(max_blksize=1468, max_windowsize=64, timeout=1.0, retries=3)


class Peer:
    """A transfer with everything it sends read (decoded unless told otherwise), and the
    result it ended with."""

    def __init__(
        self,
        body: bytes,
        options: dict[str, str] | None = None,
        limits: Limits = LIMITS,
        read: Callable[[bytes], Any] = codec.decode,
    ) -> None:
        self.clock = Clock()
        self.sent: list[Any] = []
        self.results: list[Result] = []
        self.negotiated = negotiate((options or {}).items(), len(body), limits)
        self.transfer = ReadTransfer(
            body,
            self.negotiated,
            limits.retries,
            limits.max_stall,
            lambda datagram: self.sent.append(read(datagram)),
            self.clock,
            lambda transfer, result: self.results.append(result),
        )
        self.transfer.start()

    def take(self) -> list[Any]:
        sent, self.sent = self.sent, []
        return sent

    def ack(self, block: int) -> list[Any]:
        self.transfer.receive(codec.Ack(block & 0xFFFF))
        return self.take()

    def receive_all(self) -> bytes:
        """Acknowledge every DATA as a well-behaved client would, until the end."""
        data = b""
        pending = self.take()
        if self.transfer.waiting_for_oack_ack:
            pending = self.ack(0)
        while pending:
            for packet in pending:
                assert isinstance(packet, codec.Data)
                data += packet.payload
            pending = self.ack(pending[-1].block)
        return data


def test_plain_transfer_without_options() -> None:
    body = bytes(range(256)) * 4  # 1024 bytes: two full blocks and an empty one
    peer = Peer(body)
    first = peer.take()
    assert first == [codec.Data(1, body[:512])]  # no OACK: DATA at once
    assert peer.ack(1) == [codec.Data(2, body[512:])]
    assert peer.ack(2) == [codec.Data(3, b"")]
    assert peer.ack(3) == []
    assert peer.results == [Result.OK]
    assert peer.clock.getDelayedCalls() == []


@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1468 * 3, 5000])
def test_every_size_arrives_whole(size: int) -> None:
    body = bytes(i % 251 for i in range(size))
    for options in ({}, {"blksize": "1468"}, {"blksize": "8", "windowsize": "7"}):
        peer = Peer(body, options)
        assert peer.receive_all() == body
        assert peer.results == [Result.OK]


def test_blksize_is_acknowledged_and_used() -> None:
    peer = Peer(b"x" * 3000, {"blksize": "1024"})
    assert peer.take() == [codec.Oack({"blksize": "1024"})]
    (data,) = peer.ack(0)
    assert isinstance(data, codec.Data) and len(data.payload) == 1024


@pytest.mark.parametrize(
    ("requested", "granted"), [("65464", "1468"), ("1468", "1468"), ("8", "8"), ("1500", "1468")]
)
def test_blksize_is_clamped(requested: str, granted: str) -> None:
    assert negotiate([("blksize", requested)], 10, LIMITS).oack == {"blksize": granted}


@pytest.mark.parametrize(
    "options",
    [
        {"blksize": "7"},
        {"blksize": "65465"},
        {"blksize": "abc"},
        {"blksize": "-512"},
        {"blksize": ""},
        {"timeout": "0"},
        {"timeout": "256"},
        {"windowsize": "0"},
        {"tsize": "x"},
        {"multicast": ""},
        {"rollover": "0"},
        {"blksize": "\uff11\uff12\uff13"},
    ],
)
def test_bad_or_unknown_options_are_ignored_and_no_oack(options: dict[str, str]) -> None:
    negotiated = negotiate(options.items(), 10, LIMITS)
    assert negotiated.oack == {}
    assert (negotiated.blksize, negotiated.windowsize, negotiated.timeout) == (512, 1, 1.0)
    peer = Peer(b"abc", options)
    assert peer.take() == [codec.Data(1, b"abc")]


def test_option_names_are_case_insensitive_through_the_codec() -> None:
    request = codec.decode(codec.rrq("f.cfg", {"BlkSize": "1024", "TSIZE": "0"}))
    assert isinstance(request, codec.Request)
    assert negotiate(request.options, 77, LIMITS).oack == {"blksize": "1024", "tsize": "77"}


def test_tsize_answers_the_real_size() -> None:
    peer = Peer(b"y" * 2048, {"tsize": "0"})
    assert peer.take() == [codec.Oack({"tsize": "2048"})]
    assert peer.receive_all() == b"y" * 2048


def test_timeout_option_sets_the_retransmission_interval() -> None:
    peer = Peer(b"z" * 100, {"timeout": "3"})
    assert peer.take() == [codec.Oack({"timeout": "3"})]
    peer.clock.advance(2.9)
    assert peer.take() == []
    peer.clock.advance(0.1)
    assert peer.take() == [codec.Oack({"timeout": "3"})]  # resent after 3 s, not 1


def test_windowsize_sends_a_window_per_ack() -> None:
    body = bytes(8 * 10)  # ten blocks of 8 bytes and an empty eleventh
    peer = Peer(body, {"blksize": "8", "windowsize": "4"})
    assert peer.take() == [codec.Oack({"blksize": "8", "windowsize": "4"})]
    assert [p.block for p in peer.ack(0)] == [1, 2, 3, 4]
    assert [p.block for p in peer.ack(4)] == [5, 6, 7, 8]
    # the client saw a gap after 6: it acknowledges 6, we go on from 7
    assert [p.block for p in peer.ack(6)] == [7, 8, 9, 10]
    assert [p.block for p in peer.ack(10)] == [11]
    assert peer.ack(11) == [] and peer.results == [Result.OK]


def test_windowsize_is_capped() -> None:
    assert negotiate([("windowsize", "1000")], 1, LIMITS).oack == {"windowsize": "64"}


def test_lost_oack_is_resent() -> None:
    peer = Peer(b"abc", {"blksize": "512"})
    assert len(peer.take()) == 1
    peer.clock.advance(1.0)
    assert peer.take() == [codec.Oack({"blksize": "512"})]
    assert peer.ack(0) == [codec.Data(1, b"abc")]
    assert peer.transfer.retransmits == 1


def test_oack_never_acknowledged_gives_up() -> None:
    peer = Peer(b"abc", {"tsize": "0"})
    peer.take()
    for _ in range(LIMITS.retries):
        peer.clock.advance(1.0)
        assert peer.take() == [codec.Oack({"tsize": "3"})]
    peer.clock.advance(1.0)
    assert peer.take() == [] and peer.results == [Result.TIMEOUT]
    assert peer.clock.getDelayedCalls() == []


def test_acknowledged_oack_gives_the_data_its_own_retries() -> None:
    peer = Peer(b"abc", {"tsize": "0"})
    for _ in range(LIMITS.retries):  # the OACK is lost until its last retry
        peer.clock.advance(1.0)
    assert len(peer.take()) == 1 + LIMITS.retries
    assert peer.ack(0) == [codec.Data(1, b"abc")]
    for _ in range(LIMITS.retries):
        peer.clock.advance(1.0)
        assert peer.take() == [codec.Data(1, b"abc")]
    assert peer.results == []
    peer.clock.advance(1.0)
    assert peer.results == [Result.TIMEOUT]


def test_client_refusing_the_oack_ends_the_transfer() -> None:
    peer = Peer(b"abc", {"blksize": "1024"})
    peer.take()
    peer.transfer.receive(codec.Error(codec.OPTIONS_REFUSED, "no"))
    assert peer.results == [Result.ABORTED]
    peer.clock.advance(10)
    assert peer.take() == []


def test_ack_other_than_zero_while_waiting_for_oack_ack_is_ignored() -> None:
    peer = Peer(b"abc", {"blksize": "1024"})
    peer.take()
    assert peer.ack(1) == []
    assert peer.ack(0) == [codec.Data(1, b"abc")]


@pytest.mark.parametrize("lost", [1, 2, 3])
def test_lost_data_or_ack_is_recovered_by_the_timer(lost: int) -> None:
    body = b"d" * (512 * 3)
    peer = Peer(body)
    received = peer.take()
    for block in range(1, lost):
        received = peer.ack(block)
    # DATA `lost` (or its ACK) vanishes: nothing happens until the timer fires
    assert received == [codec.Data(lost, body[(lost - 1) * 512 : lost * 512])]
    peer.clock.advance(0.99)
    assert peer.take() == []
    peer.clock.advance(0.01)
    assert peer.take() == received
    assert peer.transfer.retransmits == 1


def test_lost_window_is_resent_whole() -> None:
    peer = Peer(bytes(8 * 6), {"blksize": "8", "windowsize": "3"})
    peer.take()
    assert [p.block for p in peer.ack(0)] == [1, 2, 3]
    peer.clock.advance(1.0)
    assert [p.block for p in peer.take()] == [1, 2, 3]


def test_duplicate_ack_sends_nothing() -> None:
    peer = Peer(b"e" * 2000)
    peer.take()
    assert len(peer.ack(1)) == 1
    assert peer.ack(1) == []  # the duplicate: no Sorcerer's Apprentice
    assert peer.ack(0) == []  # stale
    assert peer.ack(7) == []  # never sent
    assert [p.block for p in peer.ack(2)] == [3]


def test_block_numbers_roll_over_to_zero() -> None:
    # 65540 full blocks and an empty one, a window of 64 per ACK; only headers are read
    peer = Peer(
        bytes(8 * 65540),
        {"blksize": "8", "windowsize": "64"},
        read=lambda datagram: struct.unpack("!HH", datagram[:4]),
    )
    peer.take()
    sent = peer.ack(0)
    for _ in range(1024 + 1):  # 1024 more windows, then the ACK of the last block
        sent += peer.ack(sent[-1][1])  # the wire number: 0 acknowledges block 65536
    assert {opcode for opcode, _ in sent} == {codec.DATA}
    blocks = [block for _, block in sent]
    assert blocks[65533:65538] == [65534, 65535, 0, 1, 2]
    assert len(blocks) == 65541 and peer.results == [Result.OK]


def test_silent_peer_gives_up_after_bounded_retries() -> None:
    peer = Peer(b"f" * 100)
    assert len(peer.take()) == 1
    for _ in range(LIMITS.retries):
        peer.clock.advance(1.0)
        assert len(peer.take()) == 1
    peer.clock.advance(1.0)
    assert peer.results == [Result.TIMEOUT]
    assert peer.take() == [] and peer.clock.getDelayedCalls() == []
    assert peer.transfer.retransmits == LIMITS.retries


def test_progress_resets_the_retry_count() -> None:
    peer = Peer(b"g" * 512 * 10)
    peer.take()
    for block in range(1, 10):
        for _ in range(LIMITS.retries):
            peer.clock.advance(1.0)
        peer.ack(block)
    assert peer.results == []


def test_client_error_mid_transfer_aborts() -> None:
    peer = Peer(b"h" * 2000)
    peer.take()
    peer.transfer.receive(codec.Error(0, "disk full"))
    assert peer.results == [Result.ABORTED]
    assert peer.ack(1) == []


def test_cancel_stops_everything() -> None:
    peer = Peer(b"i" * 2000)
    peer.take()
    peer.transfer.cancel()
    peer.transfer.cancel()
    assert peer.results == [Result.CANCELLED]
    assert peer.clock.getDelayedCalls() == []


def test_no_progress_for_max_stall_ends_the_transfer_whatever_its_timeout() -> None:
    """RFC 2349 lets a client ask 255 s; the transfer still ends once it has made no
    progress for the server's own give-up time, timeout x (retries + 1) = 4 s here."""
    assert LIMITS.max_stall == 4.0
    peer = Peer(b"j" * 100, {"timeout": "255"})
    assert peer.take() == [codec.Oack({"timeout": "255"})]
    peer.clock.advance(3.99)
    assert peer.results == []
    peer.clock.advance(0.01)
    assert peer.results == [Result.TIMEOUT] and peer.take() == []
    assert peer.clock.getDelayedCalls() == [] and peer.transfer.retransmits == 0


def test_the_negotiated_timeout_still_paces_retransmission_up_to_the_bound() -> None:
    peer = Peer(b"k" * 100, {"timeout": "3"})
    peer.take()
    peer.clock.advance(3.0)
    assert peer.take() == [codec.Oack({"timeout": "3"})]  # resent after 3 s
    peer.clock.advance(1.0)
    assert peer.results == [Result.TIMEOUT]  # 4 s without progress, retries left or not


def test_progress_pushes_the_stall_bound_back() -> None:
    peer = Peer(b"l" * 2000, {"timeout": "255"})
    peer.take()
    peer.clock.advance(3.5)
    assert peer.ack(0) == [codec.Data(1, b"l" * 512)] and peer.transfer.answered
    peer.clock.advance(3.5)  # 7 s since the start, 3.5 s since the ACK
    assert peer.ack(1) == [codec.Data(2, b"l" * 512)]
    assert peer.ack(1) == []  # a duplicate ACK is no progress...
    peer.clock.advance(3.99)
    assert peer.results == []
    peer.clock.advance(0.01)  # ...so 4 s after the last progress it ends
    assert peer.results == [Result.TIMEOUT]


def test_retries_still_end_a_transfer_whose_timeout_is_shorter() -> None:
    """Asked 1 s where the server's own is 3 s (max_stall 12 s): the retries end it first."""
    limits = Limits(timeout=3.0, retries=3)
    peer = Peer(b"o" * 100, {"timeout": "1"}, limits=limits)
    peer.take()
    for _ in range(limits.retries):
        peer.clock.advance(1.0)
        assert peer.take() == [codec.Oack({"timeout": "1"})]
    assert peer.results == []
    peer.clock.advance(1.0)
    assert peer.results == [Result.TIMEOUT] and peer.take() == []
    assert peer.transfer.retransmits == limits.retries
    assert peer.clock.getDelayedCalls() == []


def test_cancel_before_start_sends_nothing() -> None:
    sent: list[bytes] = []
    results: list[Result] = []
    clock = Clock()

    def finished(transfer: ReadTransfer, result: Result) -> None:
        results.append(result)

    transfer = ReadTransfer(b"p", negotiate((), 1, LIMITS), 3, 4.0, sent.append, clock, finished)
    transfer.cancel()
    assert results == [Result.CANCELLED] and sent == [] and clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    ("options", "first_ack"), [({"blksize": "8"}, 0), ({}, 1)], ids=["oack", "plain"]
)
def test_answered_once_an_ack_moves_the_transfer(options: dict[str, str], first_ack: int) -> None:
    peer = Peer(b"m" * 100, options)
    peer.take()
    peer.transfer.receive(codec.Ack(first_ack + 5))  # not a block we sent: proves nothing
    peer.transfer.receive(codec.Data(1, b"x"))
    assert peer.transfer.answered is False
    peer.ack(first_ack)
    assert peer.transfer.answered is True


def test_eviction_ends_with_its_own_result() -> None:
    peer = Peer(b"n" * 2000)
    peer.take()
    peer.transfer.cancel(Result.EVICTED)
    assert peer.results == [Result.EVICTED] and peer.clock.getDelayedCalls() == []
    assert peer.take() == []
