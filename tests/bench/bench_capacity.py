"""Capacity: how many phones one xprov serves.

    python -m tests.bench.bench_capacity [--phones 10000] [--minutes 3]

1. N simulated phones (`xprov drill`, HTTP without keep-alive, as phones do) polling every
   60 s: xprov's CPU use over the run and the phones' p99 latency.
2. xprov pinned to one core (taskset), wrk on the other with `Connection: close` at rising
   concurrency: the highest request rate whose p99 stays under 100 ms, turned into phones at
   60 s polls (a Yealink asks for 3 files per poll, an SPA for 2: 2.5 on average).
Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.drill_world import inventory_toml
from tests.helpers import XPROV, XprovProcess, free_port, sample_config

FILES_PER_POLL = 2.5
HZ = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def with_phones(tmp: Path, phones: int) -> tuple[Path, int]:
    http = free_port()
    config = sample_config(tmp, http_port=http, inventory=inventory_toml(phones))
    # The probes have nothing to answer them here; keep them out of the figures.
    text = config.read_text().replace("[monitor]\n", "[monitor]\nenabled = false\n")
    # every simulated phone and wrk connection comes from 127.0.0.1
    text = text.replace("max_connections_per_source = 64", "max_connections_per_source = 100000")
    config.write_text(text)
    return config, http


def polling(phones: int, minutes: float, tmp: Path) -> dict:
    config, http = with_phones(tmp / "polling", phones)
    with XprovProcess(config, http, tmp / "polling" / "xprov.log") as proc:
        before, started = cpu_seconds(proc.proc.pid), time.monotonic()
        done = subprocess.run(
            [
                *XPROV,
                "drill",
                "-c",
                str(config),
                "--poll",
                "60",
                "--duration",
                str(minutes * 60),
                "--tftp-share",
                "0",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=minutes * 60 + 300,
        )
        cpu = (cpu_seconds(proc.proc.pid) - before) / (time.monotonic() - started)
    result = json.loads(done.stdout)
    return {
        "phones": phones,
        "requests_per_s": result["requests_per_s"],
        "errors": result["errors"],
        "latency_ms": result["latency_ms"],
        "xprov_cpu_pct": round(cpu * 100, 1),
    }


def wrk(url: str, connections: int, seconds: int) -> tuple[float, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            "-H",
            "Connection: close",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rate, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def one_core(tmp: Path, seconds: int) -> dict:
    config, http = with_phones(tmp / "core", 1000)
    url = f"http://127.0.0.1:{http}/0015{999:08x}.cfg"  # a Yealink of the inventory
    with XprovProcess(config, http, tmp / "core" / "xprov.log") as proc:
        subprocess.run(["taskset", "-cp", "0", str(proc.proc.pid)], check=True, capture_output=True)
        steps = []
        for connections in (4, 16, 64, 256):
            rate, p99 = wrk(url, connections, seconds)
            steps.append(
                {"connections": connections, "requests_per_s": round(rate), "p99_ms": round(p99, 1)}
            )
    best = max((s for s in steps if s["p99_ms"] < 100), key=lambda s: s["requests_per_s"])
    return {
        "steps": steps,
        "best_requests_per_s": best["requests_per_s"],
        "phones_per_core_at_60s": int(best["requests_per_s"] * 60 / FILES_PER_POLL),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=10000)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seconds", type=int, default=8, help="each wrk step")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "polling").mkdir()
        (tmp / "core").mkdir()
        print(json.dumps({"polling": polling(args.phones, args.minutes, tmp)}), flush=True)
        print(json.dumps({"one_core": one_core(tmp, args.seconds)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
