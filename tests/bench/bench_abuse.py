"""Abuse benchmark: what each abuse of issue 13 costs a running xprov, beside its bound.

    python -m tests.bench.bench_abuse [--seconds 8]

One xprov (HTTP, TFTP, admin API; the monitor off: nothing to probe here) is attacked over
loopback, one abuse at a time, each bounded in count and in time. For each the table prints
the process's resident memory before and at its peak (sampled every 50 ms), the CPU seconds
it spent, what the abuse achieved, and the bound the server promises. Not a test: the tests
assert the behaviour; this prints what it costs.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.helpers import XprovProcess, free_port, sample_config
from xprov.tftp import codec

HZ = os.sysconf("SC_CLK_TCK")
TOKEN = "dev-admin-token-change-me"  # the sample config's


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def measured(pid: int, row: dict) -> Iterator[None]:
    """RSS before and at peak, CPU seconds and descriptors at peak, around the block."""
    peak = {"rss": rss_mb(pid), "fds": open_fds(pid)}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            with contextlib.suppress(OSError, ValueError):
                peak["rss"] = max(peak["rss"], rss_mb(pid))
                peak["fds"] = max(peak["fds"], open_fds(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    row["rss_before"], before, started = rss_mb(pid), cpu_s(pid), time.monotonic()
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()
        row["rss_peak"], row["fds_peak"] = peak["rss"], peak["fds"]
        row["cpu_s"], row["wall_s"] = cpu_s(pid) - before, time.monotonic() - started


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return s


def post_bodies(world: World, seconds: float) -> str:
    """4 connections each announce a 300 MiB POST body and stream it until cut."""
    sent, chunk = 0, b"x" * 65536
    deadline = time.monotonic() + seconds
    for i in range(4):
        s = connect(world.http)
        s.sendall(
            b"POST /y000000000028.cfg HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
            % (300 << 20)
        )
        with contextlib.suppress(OSError):
            while time.monotonic() < deadline and sent < (i + 1) * (300 << 20):
                sent += s.send(chunk)
        s.close()
    temp = sum(1 for _ in world.tmpdir.iterdir())
    return f"{sent / 2**20:.1f} MiB sent into kernel buffers before the close; {temp} temp files"


def pipelined_unread(world: World, seconds: float) -> str:
    """8 connections write pipelined GETs and never read."""
    request = b"GET /y000000000028.cfg HTTP/1.1\r\nHost: x\r\n\r\n"
    sockets = [connect(world.http) for _ in range(8)]
    for s in sockets:
        s.setblocking(False)
    written, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        progress = False
        for s in sockets:
            with contextlib.suppress(BlockingIOError, OSError):
                written += s.send(request * 64)
                progress = True
        if not progress:
            time.sleep(0.05)  # every send buffer full: the server stopped reading
    for s in sockets:
        s.close()
    return f"{written // len(request)} requests written, {written / 2**20:.1f} MiB"


def idle_connections(world: World, seconds: float) -> str:
    """Idle connections from 20 addresses, until the server refuses (at most 3,000)."""
    held: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while len(held) < 3000 and time.monotonic() < deadline:
            held.append(connect(world.http, f"127.0.1.{len(held) % 20 + 1}"))
    served = _status(world.http, "/y000000000028.cfg", "127.0.2.1")
    for s in held:
        s.close()
    return f"{len(held)} opened (the server keeps its caps); a new client then got {served}"


def _status(port: int, path: str, source: str) -> int | str:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
        c.request("GET", path)
        status = c.getresponse().status
        c.close()
        return status
    except OSError as exc:
        return type(exc).__name__


def _udp(source: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.settimeout(0.5)
    return s


def _answers(s: socket.socket, count: int, deadline: float) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < count and time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            out.append(s.recvfrom(70000)[0])
    return out


def _ask(world: World, request: bytes, source: str = "127.0.0.1") -> bytes | None:
    """One request from a fresh port; its first answer within 0.5 s, if any."""
    with _udp(source) as s:
        s.sendto(request, ("127.0.0.1", world.tftp))
        answers = _answers(s, 1, time.monotonic() + 0.5)
    return answers[0] if answers else None


def oversized_rrq(world: World, seconds: float) -> str:
    """Read requests of 65,500 bytes, one at a time (at most 1,000)."""
    request = codec.rrq("y000000000028.cfg", {"x" * 10: "y" * (65500 - 40)})
    answers, deadline = [], time.monotonic() + seconds
    while len(answers) < 1000 and time.monotonic() < deadline:
        answers.append(_ask(world, request))
    errors = sum(1 for a in answers if a is not None and a[:4] == b"\x00\x05\x00\x04")
    return f"{len(answers)} sent: {errors} ERROR 4, {len(answers) - errors} other or none"


def option_flood(world: World, seconds: float) -> str:
    """8 KB requests of 2-byte options against normal requests: CPU per request of each."""
    options = b"".join(b"%x\x00%x\x00" % (i, i) for i in range(1600))[:8000]
    flood = struct.pack("!H", codec.RRQ) + b"y000000000028.cfg\x00octet\x00" + options
    normal = codec.rrq("y000000000028.cfg", {"blksize": "1428", "tsize": "0"})
    cost = {}
    for name, request in (("normal", normal), ("flood", flood)):
        before, sent, deadline = cpu_s(world.pid), 0, time.monotonic() + seconds / 2
        while time.monotonic() < deadline and sent < 20_000:
            with _udp() as s:
                s.sendto(request, ("127.0.0.1", world.tftp))
            sent += 1
        cost[name] = (cpu_s(world.pid) - before) / sent * 1000
    ratio = cost["flood"] / cost["normal"] if cost["normal"] else float("nan")
    return (
        f"CPU per request: normal {cost['normal']:.3f} ms, {len(flood)}-byte flood"
        f" {cost['flood']:.3f} ms ({ratio:.1f}x)"
    )


def _raw_udp(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> None:
    """One UDP datagram with a forged source (IPv4, raw socket: root only)."""
    udp = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(source[0]), socket.inet_aton(target[0]),
    )  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.sendto(ip + udp, (target[0], 0))


def error_ping_pong(world: World, seconds: float) -> str:
    """Two transfers, then one ERROR forged from the first transfer's port to the second's."""
    ports = []
    clients = [_udp(), _udp()]
    for client in clients:
        client.sendto(codec.rrq("y000000000028.cfg", {"timeout": "10"}), ("127.0.0.1", world.tftp))
        _, address = client.recvfrom(70000)  # the first DATA, from the transfer's own port
        ports.append(address)
    _raw_udp(ports[0], ports[1], codec.error(codec.NOT_DEFINED, "forged"))
    time.sleep(seconds)  # the cost over this time is what is measured
    for client in clients:
        client.close()
    return "one forged ERROR between two transfer ports"


def timeout_255(world: World, seconds: float) -> str:
    """As many never-acknowledged `timeout 255` requests as there are transfer slots."""
    held = [_udp(f"127.0.3.{i % 200 + 1}") for i in range(world.max_transfers)]
    for s in held:
        s.sendto(codec.rrq("y000000000028.cfg", {"timeout": "255"}), ("127.0.0.1", world.tftp))
    started, deadline = time.monotonic(), time.monotonic() + max(seconds, 120)
    busy = True
    while busy and time.monotonic() < deadline:
        probe = _udp("127.0.4.1")
        probe.sendto(codec.rrq("y000000000028.cfg"), ("127.0.0.1", world.tftp))
        answer = _answers(probe, 1, time.monotonic() + 1)
        busy = not answer or answer[0][:4] == b"\x00\x05\x00\x00"
        probe.close()
        if busy:
            time.sleep(0.5)
    for s in held:
        s.close()
    state = "still busy" if busy else "a new source served"
    return f"{world.max_transfers} stalled; {state} after {time.monotonic() - started:.1f} s"


def name_flood(world: World, seconds: float) -> str:
    """Distinct `y<12 digits>.cfg` names over one keep-alive connection."""
    c = http.client.HTTPConnection("127.0.0.1", world.http, timeout=10)
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline and count < 200_000:
        c.request("GET", f"/y{count:012d}.cfg")
        c.getresponse().read()
        count += 1
    c.close()
    entries = world.metric("xprov_render_cache_entries")
    return f"{count} names; render cache {entries:.0f} entries"


def slow_admin_body(world: World, seconds: float) -> str:
    """An admin request whose body trickles one byte a second."""
    s = connect(world.admin)
    s.sendall(
        b"POST /reload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        b"Content-Length: 1000\r\n\r\n" % TOKEN.encode()
    )
    started = time.monotonic()
    with contextlib.suppress(OSError):
        while time.monotonic() - started < max(seconds, 40):
            s.send(b"{")
            time.sleep(1)
    s.close()
    return f"cut after {time.monotonic() - started:.1f} s"


ABUSES: list[tuple[str, Callable[[World, float], str], str]] = [
    ("POST bodies (item 1)", post_bodies, "refused at the head: nothing read, no temp file"),
    ("pipelined, unread (2)", pipelined_unread, "reading stops past a small output bound"),
    ("idle connections (3)", idle_connections, "max_connections, descriptor reserve kept"),
    ("65,500-byte RRQ (4)", oversized_rrq, "whole datagram judged: ERROR 4"),
    ("slow admin body (7)", slow_admin_body, "whole request bounded in time"),
    ("TFTP option flood (8)", option_flood, "options parsed bounded; cost near a normal one"),
    ("forged ERROR (9)", error_ping_pong, "never answered: no ping-pong"),
    ("timeout 255 (10)", timeout_255, "slots released by the server's own give-up time"),
    ("name flood (11)", name_flood, "one cache entry per model"),
]


class World:
    def __init__(self, tmp: Path) -> None:
        self.http, self.admin, self.tftp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        self.max_transfers = 64
        self.pid = 0
        self.tmpdir = tmp / "process-tmp"
        self.tmpdir.mkdir()
        config = sample_config(tmp, http_port=self.http, tftp_port=self.tftp, admin_port=self.admin)
        text = config.read_text().replace("[monitor]\n", "[monitor]\nenabled = false\n")
        text = text.replace("max_transfers = 1000 ", f"max_transfers = {self.max_transfers} ")
        text = text.replace("bad_answer_burst = 20 ", "bad_answer_burst = 100000 ")
        config.write_text(text)
        self.process = XprovProcess(config, self.http, tmp / "xprov.log")
        os.environ["TMPDIR"] = str(self.tmpdir)  # where twisted.web would spool a body

    def metric(self, name: str) -> float:
        scraped = subprocess.run(
            ["curl", "-s", "-H", f"Authorization: Bearer {TOKEN}",
             f"http://127.0.0.1:{self.admin}/metrics"],
            capture_output=True, text=True, timeout=10,
        ).stdout  # fmt: skip
        lines = [x for x in scraped.splitlines() if x.startswith(name + " ")]
        return float(lines[0].split()[1]) if lines else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each abuse")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp))
        with world.process as proc:
            assert proc.proc is not None
            pid = world.pid = proc.proc.pid
            for name, abuse, bound in ABUSES:
                row: dict = {"abuse": name, "bound": bound}
                with measured(pid, row):
                    try:
                        row["result"] = abuse(world, args.seconds)
                    except Exception as exc:  # a benchmark reports, it does not stop
                        row["result"] = f"failed: {type(exc).__name__}: {exc}"
                rows.append(row)
                print(
                    f"{name:24} RSS {row['rss_before']:6.1f} -> {row['rss_peak']:6.1f} MB"
                    f"  CPU {row['cpu_s']:5.2f} s in {row['wall_s']:5.1f} s"
                    f"  fds<={row['fds_peak']:5}  {row['result']}  [{bound}]",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
