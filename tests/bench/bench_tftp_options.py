"""What a TFTP request stuffed with options costs, against a normal one.

    python -m tests.bench.bench_tftp_options [--requests 2000]

1. Decode alone, per request: xprov's codec against tftpy's parser (what the codec used
   before it read requests itself), for a normal RRQ, an 8 KB and a 64 KB option flood.
2. A running xprov: the server's CPU time per request answered, for N requests of each
   kind (mode "mail": decoded whole, then refused with ERROR 4, so nothing else costs).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import timeit
from pathlib import Path

from tftpy.TftpPacketFactory import TftpPacketFactory

from tests.bench.bench_capacity import cpu_seconds
from tests.helpers import YEALINK_T46G, XprovProcess, free_port, sample_config
from xprov.tftp import codec


def flooded(size: int, mode: str = "octet") -> bytes:
    """An RRQ asking blksize and tsize, then tiny options ("0" = "v", ...) up to `size`."""
    request = bytearray(codec.rrq(f"{YEALINK_T46G}.cfg", {"blksize": "1468", "tsize": "0"}, mode))
    n = 0
    while len(request) < size:
        request += f"{n}\x00v\x00".encode()
        n += 1
    return bytes(request)


KINDS = {"normal": 0, "8 KB flood": 8192, "64 KB flood": 65000}


def per_call(call, seconds: float = 0.5) -> float:
    """Microseconds per call: the best of 5 runs of about `seconds` / 5 each."""
    number = max(1, int(seconds / 5 / max(timeit.timeit(call, number=1), 1e-7)))
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def decode_figures() -> None:
    factory = TftpPacketFactory()
    print("decode, per request          xprov codec    tftpy parser")
    for kind, size in KINDS.items():
        datagram = flooded(size)
        ours = per_call(lambda d=datagram: codec.decode(d))
        theirs = per_call(lambda d=datagram: factory.parse(d))
        print(f"  {kind:12s} {len(datagram):6d} B  {ours:9.1f} us  {theirs:11.1f} us")


def server_figures(requests: int) -> None:
    print(f"running xprov, CPU per request ({requests} requests of each kind)")
    with tempfile.TemporaryDirectory() as tmp:
        http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
        config = sample_config(Path(tmp), http_port=http, tftp_port=tftp)
        with XprovProcess(config, http, Path(tmp) / "xprov.log") as proc:
            assert proc.proc is not None
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind(("127.0.0.1", 0))
            client.settimeout(5)
            for kind, size in KINDS.items():
                datagram = flooded(size, mode="mail")
                before = cpu_seconds(proc.proc.pid)
                for _ in range(requests):  # one at a time: each answered before the next
                    client.sendto(datagram, ("127.0.0.1", tftp))
                    answer = codec.decode(client.recvfrom(2048)[0])
                    assert answer == codec.Error(4, "Unsupported mode"), answer
                used = cpu_seconds(proc.proc.pid) - before
                print(f"  {kind:12s} {used / requests * 1e6:7.0f} us")
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    decode_figures()
    server_figures(args.requests)


if __name__ == "__main__":
    main()
