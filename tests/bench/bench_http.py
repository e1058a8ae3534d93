"""HTTP benchmark: xprov serving a cached Yealink <mac>.cfg against a bare twisted.web
static resource of the same bytes, measured in the same run with wrk.

    python -m tests.bench.bench_http [--seconds 5] [--connections 16] [--runs 3]

Prints requests/s for keep-alive and for `Connection: close`, each server's median of
`--runs` alternating runs, and the ratio xprov / twisted.web. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.helpers import (
    USER_AGENTS,
    XPROV,
    YEALINK_T46G,
    XprovProcess,
    free_port,
    port_open,
    sample_config,
    wait_for,
)


def wrk(url: str, seconds: int, connections: int, close: bool) -> float:
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-H",
        f"User-Agent: {USER_AGENTS[YEALINK_T46G]}",
    ]
    if close:
        args += ["-H", "Connection: close"]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors[1]} error responses")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        xprov_port, bare_port = free_port(), free_port()
        config = sample_config(tmp, http_port=xprov_port)
        name = f"{YEALINK_T46G}.cfg"
        body = subprocess.run(
            [*XPROV, "render", "-c", str(config), YEALINK_T46G], capture_output=True, check=True
        ).stdout
        (tmp / name).write_bytes(body)
        bare = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.bare_twisted_web", str(bare_port), str(tmp / name)]
        )
        try:
            with XprovProcess(config, xprov_port, tmp / "xprov.log"):
                wait_for(lambda: port_open(bare_port), 10, "twisted.web to listen")
                urls = {
                    "xprov": f"http://127.0.0.1:{xprov_port}/{name}",
                    "twisted.web": f"http://127.0.0.1:{bare_port}/{name}",
                }
                print(
                    f"file: {name}, {len(body)} bytes; wrk -t1 -c{args.connections} "
                    f"-d{args.seconds}s, median of {args.runs} alternating runs"
                )
                for close in (False, True):
                    results: dict[str, list[float]] = {k: [] for k in urls}
                    for _ in range(args.runs):
                        for server, url in urls.items():
                            results[server].append(wrk(url, args.seconds, args.connections, close))
                    medians = {k: statistics.median(v) for k, v in results.items()}
                    ratio = medians["xprov"] / medians["twisted.web"]
                    mode = "Connection: close" if close else "keep-alive"
                    print(
                        f"{mode:18} xprov {medians['xprov']:8.0f} req/s   "
                        f"twisted.web {medians['twisted.web']:8.0f} req/s   "
                        f"ratio {ratio:.2f}"
                    )
        finally:
            bare.terminate()
            bare.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
