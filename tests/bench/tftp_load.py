"""Bounded TFTP read-load generator (asyncio, stdlib only), for benchmarks.

Runs `transfers` RRQs, `concurrency` at a time, against HOST:PORT; every transfer has its own
socket, locks onto the server's transfer id, acknowledges every block, retransmits on
timeout and checks the size received. Stops after `transfers` or `max_seconds`, whichever
comes first. Loopback only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct
import time
from dataclasses import dataclass, field

RRQ, DATA, ACK, ERROR, OACK = 1, 3, 4, 5, 6


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    elapsed: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


class _Transfer(asyncio.DatagramProtocol):
    def __init__(self, server: tuple[str, int], name: str, blksize: int, timeout: float) -> None:
        self.server, self.blksize, self.timeout = server, 512, timeout
        options = b"" if not blksize else b"blksize\0%d\0" % blksize
        self.last = struct.pack("!H", RRQ) + name.encode() + b"\0octet\0" + options
        self.last_to = server
        self.peer: tuple[str, int] | None = None
        self.expected, self.size = 1, 0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.max_size = 65536 + 64  # type: ignore[attr-defined]
        self._send(self.last, self.server)

    def _send(self, datagram: bytes, to: tuple[str, int]) -> None:
        self.last, self.last_to = datagram, to
        self.transport.sendto(datagram, to)  # type: ignore[attr-defined]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.done.done() or len(data) < 4:
            return
        if self.peer is None:
            self.peer = addr
        elif addr != self.peer:
            return
        opcode, number = struct.unpack_from("!HH", data)
        if opcode == OACK:
            fields = data[2:].split(b"\0")
            options = dict(zip(fields[0::2], fields[1::2], strict=False))
            self.blksize = int(options.get(b"blksize", 512))
            self._send(struct.pack("!HH", ACK, 0), addr)
        elif opcode == DATA and number == self.expected & 0xFFFF:
            self.size += len(data) - 4
            self.expected += 1
            self._send(struct.pack("!HH", ACK, number), addr)
            if len(data) - 4 < self.blksize:
                self.done.set_result(self.size)
        elif opcode == ERROR:
            self.done.set_exception(RuntimeError(f"ERROR {number}"))

    def retransmit(self) -> None:
        self.transport.sendto(self.last, self.last_to)  # type: ignore[attr-defined]


async def _one(
    server: tuple[str, int], name: str, blksize: int, size: int | None, timeout: float, retries: int
) -> None:
    loop = asyncio.get_running_loop()
    transport, transfer = await loop.create_datagram_endpoint(
        lambda: _Transfer(server, name, blksize, timeout), local_addr=(server[0], 0)
    )
    try:
        tries = 0
        while True:
            progress = transfer.expected
            try:
                received = await asyncio.wait_for(asyncio.shield(transfer.done), timeout)
                break
            except TimeoutError:
                if transfer.expected != progress:
                    tries = 0
                    continue
                tries += 1
                if tries > retries:
                    raise RuntimeError("timeout") from None
                transfer.retransmit()
        if size is not None and received != size:
            raise RuntimeError(f"size {received} != {size}")
    finally:
        transport.close()


async def run_load(
    host: str,
    port: int,
    name: str,
    *,
    transfers: int,
    concurrency: int,
    blksize: int = 0,
    size: int | None = None,
    max_seconds: float = 60.0,
    timeout: float = 1.0,
    retries: int = 5,
) -> LoadResult:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError("loopback only")
    result, started = LoadResult(), 0
    deadline = time.monotonic() + max_seconds

    async def worker() -> None:
        nonlocal started
        while started < transfers and time.monotonic() < deadline:
            started += 1
            try:
                await _one((host, port), name, blksize, size, timeout, retries)
                result.ok += 1
            except Exception as exc:
                result.failed += 1
                result.errors[str(exc)] = result.errors.get(str(exc), 0) + 1

    t0 = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(worker() for _ in range(concurrency))),
        max_seconds + timeout * (retries + 2),
    )
    result.elapsed = time.perf_counter() - t0
    return result
