"""Inventory benchmark: 10,000 and 100,000 phones (two lines each) from a real MariaDB.

    python -m tests.bench.bench_inventory [--sizes 10000,100000] [--reload-seconds 10]

For each size: the load time (the `started` event's load_s), xprov's RSS once serving and its
peak RSS (VmHWM) after a refresh (two snapshots alive at once), then the longest reactor
stall (the lag meter) while SIGHUP reloads run under an HTTP load. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.helpers import XprovProcess, free_port, site_config, wait_for
from tests.inventory_db import insert, reset, synthetic
from tests.peers import MariaDB, free_udp_tcp_port


def rss_mb(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


def run(size: int, db: MariaDB, tmp: Path, reload_seconds: int) -> dict:
    reset(db)
    insert(db, synthetic(size))
    http = free_port()
    database = {
        "host": db.host,
        "port": db.port,
        "database": db.DATABASE,
        "user": db.USER,
        "password": db.PASSWORD,
    }
    work = tmp / f"n{size}"
    work.mkdir()
    config = site_config(
        work,
        {
            "chicago": {"sip": {"host": "127.0.0.1", "port": 5060}, "db": database},
            "virginia": {"sip": {"host": "127.0.0.1", "port": 5070}, "db": database},
        },
        {"enabled": False},
        http_port=http,
    )
    config.write_text(
        config.read_text().replace(
            'source = "file"\npath = "inventory.toml"',
            'source = "mysql"\nrefresh = 5.0\ntimeout = 30.0',
        )
    )
    with XprovProcess(config, http, work / "xprov.log") as proc:
        pid = proc.proc.pid
        started = proc.events("started")[0]
        serving, _ = rss_mb(pid)
        wait_for(lambda: proc.events("inventory_refreshed"), 60, "a refresh")
        refreshed = proc.events("inventory_refreshed")[0]
        _, peak = rss_mb(pid)
        lag_before = proc.status()["reactor_lag"]["max_s"]
        url = f"http://127.0.0.1:{http}/0015{size - 1:08x}.cfg"
        wrk = subprocess.Popen(
            ["wrk", "-t1", "-c8", f"-d{reload_seconds}s", url], stdout=subprocess.PIPE, text=True
        )
        reloads = 0
        deadline = time.monotonic() + reload_seconds - 1
        while time.monotonic() < deadline:
            count = len(proc.events("reloaded"))
            os.kill(pid, signal.SIGHUP)
            wait_for(lambda n=count: len(proc.events("reloaded")) > n, 60, "reload")
            reloads += 1
        out, _ = wrk.communicate(timeout=reload_seconds + 30)
        after = proc.status()["reactor_lag"]
        reload_s = [e.get("load_s") for e in proc.events("reloaded")]
        return {
            "phones": size,
            "load_s": started["load_s"],
            "refresh_load_s": refreshed["load_s"],
            "rss_mb": round(serving, 1),
            "peak_rss_mb": round(peak, 1),
            "reloads": reloads,
            "reload_load_s": max(x for x in reload_s if x is not None),
            "max_lag_ms_before": round(lag_before * 1000, 1),
            "max_lag_ms_during_reloads": round(after["max_s"] * 1000, 1),
            "wrk_errors": "Non-2xx" in out or "Socket errors" in out,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reload-seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("mariadbd") or not shutil.which("wrk"):
        print("needs mariadb-server and wrk (apt-get install mariadb-server wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with MariaDB(tmp / "db", free_udp_tcp_port()) as db:
            for size in (int(x) for x in args.sizes.split(",")):
                result = run(size, db, tmp, args.reload_seconds)
                print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
