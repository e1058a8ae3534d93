"""TFTP benchmark: xprov against tftpd-hpa serving the same bytes from disk, same run.

    python -m tests.bench.bench_tftp [--runs 3] [--transfers 2000] [--blksize 0]

Transfers/s of a 2 KB phone config with 1, 16 and 64 concurrent clients, and of a 64 KB file
with 16, each the median of `--runs` alternating runs, and the ratio xprov / tftpd-hpa.
tftpd-hpa forks a process per transfer; xprov answers from one event loop. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.tftp_load import run_load
from tests.helpers import (
    XPROV,
    XprovProcess,
    copy_templates,
    free_port,
    sample_config,
    udp_port_free,
    wait_for,
)

# A phone whose per-device file is padded to an exact size through a template override.
PADDED = """
[[phones]]
mac = "{mac}"
vendor = "yealink"
model = "T46G"
vars = {{ padding = "{padding}" }}
lines = [{{ user = "1001", password = "bench-Secret", display_name = "Bench" }}]
"""
SIZES = {"001565000002": 2048, "001565000064": 65536}


def padded_inventory(tmp: Path, config_for, sizes: dict[str, int]) -> str:
    """Render each bench phone unpadded, then pad its file to the wanted size."""
    text = ""
    for mac, size in sizes.items():
        base = PADDED.format(mac=mac, padding="")
        config = config_for(base)
        bare = subprocess.run(
            [*XPROV, "render", "-c", str(config), mac], capture_output=True, check=True
        ).stdout
        text += PADDED.format(mac=mac, padding="x" * (size - len(bare)))
    return text


def start_tftpd(root: Path, port: int) -> subprocess.Popen[bytes]:
    args = ["in.tftpd", "-L", "-4", "-a", f"127.0.0.1:{port}", "-s", root.as_posix()]
    if os.geteuid() == 0:
        args[-1:-1] = ["-u", "nobody"]
    proc = subprocess.Popen(args, start_new_session=True)
    wait_for(lambda: not udp_port_free(port) or proc.poll() is not None, 10, "in.tftpd")
    if proc.poll() is not None:
        raise RuntimeError("in.tftpd did not start")
    return proc


def measure(
    port: int, name: str, size: int, concurrency: int, transfers: int, blksize: int
) -> float:
    result = asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            name,
            transfers=transfers,
            concurrency=concurrency,
            blksize=blksize,
            size=size,
            max_seconds=60,
        )
    )
    if result.failed:
        raise RuntimeError(f"{result.failed} failed transfers: {result.errors}")
    return result.rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--transfers", type=int, default=2000)
    parser.add_argument("--blksize", type=int, default=0, help="request blksize (0: none)")
    args = parser.parse_args()
    if not shutil.which("in.tftpd"):
        print("tftpd-hpa is not installed (apt-get install tftpd-hpa)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        templates = copy_templates(tmp)
        device = templates / "yealink" / "device.cfg"
        device.write_text(device.read_text() + "# {{ vars.padding }}\n")
        http_port, tftp_port, tftpd_port = free_port(), free_port(socket.SOCK_DGRAM), 0
        work = tmp / "work"
        work.mkdir()
        inventory = padded_inventory(
            tmp, lambda inv: sample_config(work, templates=templates, inventory=inv), SIZES
        )
        config = sample_config(
            tmp,
            http_port=http_port,
            tftp_port=tftp_port,
            templates=templates,
            inventory=inventory,
            replace={
                "max_transfers = 1000": "max_transfers = 4096",
                # every load client is 127.0.0.1
                "max_tftp_per_source = 8": "max_tftp_per_source = 4096",
            },
        )
        root = tmp / "tftproot"
        root.mkdir(mode=0o755)
        tmp.chmod(0o755)
        for mac in SIZES:
            body = subprocess.run(
                [*XPROV, "render", "-c", str(config), mac], capture_output=True, check=True
            ).stdout
            assert len(body) == SIZES[mac], (mac, len(body))
            (root / f"{mac}.cfg").write_bytes(body)
            (root / f"{mac}.cfg").chmod(0o644)
        tftpd_port = free_port(socket.SOCK_DGRAM)
        tftpd = start_tftpd(root, tftpd_port)
        try:
            with XprovProcess(config, http_port, tmp / "xprov.log"):
                cases = [
                    ("001565000002", 1),
                    ("001565000002", 16),
                    ("001565000002", 64),
                    ("001565000064", 16),
                ]
                print(
                    f"median of {args.runs} alternating runs, {args.transfers} transfers each "
                    f"(64 KB: a quarter), blksize {args.blksize or 'none (512)'}"
                )
                for mac, concurrency in cases:
                    size = SIZES[mac]
                    n = args.transfers if size < 10000 else args.transfers // 4
                    rates: dict[str, list[float]] = {"xprov": [], "tftpd-hpa": []}
                    for _ in range(args.runs):
                        rates["xprov"].append(
                            measure(tftp_port, f"{mac}.cfg", size, concurrency, n, args.blksize)
                        )
                        rates["tftpd-hpa"].append(
                            measure(tftpd_port, f"{mac}.cfg", size, concurrency, n, args.blksize)
                        )
                    x, t = (statistics.median(rates[k]) for k in ("xprov", "tftpd-hpa"))
                    print(
                        f"{size // 1024:>3} KB  c={concurrency:<3} xprov {x:7.0f}/s   "
                        f"tftpd-hpa {t:7.0f}/s   ratio {x / t:.2f}"
                    )
        finally:
            os.killpg(tftpd.pid, signal.SIGTERM)
            tftpd.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
