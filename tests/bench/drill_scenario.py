"""The failover drill, scripted end to end (`make drill`):

    python -m tests.bench.drill_scenario [--phones 1000] [--poll 60] [--scenarios sip,stun,db,site]
                                         [--kills 10] [--loss-minutes 10] [--json-out FILE]

Real Kamailio, coturn and MariaDB at two sites and xprov with its default monitor settings.
For each scenario, N simulated phones (`xprov drill`) poll every P seconds; once every phone
has polled, the primary's peer(s) are killed (SIGKILL); reported: detection (kill -> the
switch event in xprov's log) and when the phones fetched the backup's address and worked
again, beside the seed design. Then `--kills` kill/switch/restart/failback cycles per service
for detection statistics, and a run of `--loss-minutes` with 5% of probe packets dropped
(nftables in a network namespace) that must switch nothing. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.drill_world import World
from tests.helpers import XPROV, wait_for
from tests.peers import Namespace

SERVICES = {"sip": ["sip"], "stun": ["stun"], "db": ["db"], "site": ["sip", "stun", "db"]}


def drill(
    world: World, poll: float, seconds: float, events: Path, phones: int | None = None
) -> subprocess.Popen[str]:
    args = [
        *XPROV,
        "drill",
        "-c",
        str(world.config),
        "--poll",
        str(poll),
        "--duration",
        str(seconds),
        "--events",
        str(events),
        "--json",
    ]
    if phones:
        args += ["--phones", str(phones)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def every_phone_polled(world: World) -> bool:
    convergence = world.status().get("convergence") or {}
    return convergence.get("regular_phones", 0) >= world.phones


def scenario(name: str, phones: int, poll: float, tmp: Path) -> dict[str, Any]:
    world = World(tmp / name, phones).start()
    try:
        events = tmp / name / "events.jsonl"
        observe = poll + 15.0
        run = drill(world, poll, poll * 2 + observe + 10, events)
        wait_for(lambda: every_phone_polled(world), poll * 2 + 30, "every phone polled")
        services = SERVICES[name]
        killed = world.kill(services)
        events.write_text(
            json.dumps({"at": killed, "what": f"{name} killed", "services": services}) + "\n"
        )
        out, err = run.communicate(timeout=poll * 3 + observe + 120)
        if run.returncode != 0:
            raise RuntimeError(err)
        result = json.loads(out)
        switches = [e for e in world.events("switch") if e["at"] >= killed]
        result["detection_s"] = {
            s: round(next(e["at"] for e in switches if e["service"] == s) - killed, 2)
            for s in services
            if any(e["service"] == s for e in switches)
        }
        return result
    finally:
        world.stop()


def detection_series(kills: int, tmp: Path) -> dict[str, list[float]]:
    world = World(tmp / "detection", 10).start()
    out: dict[str, list[float]] = {"sip": [], "stun": [], "db": []}
    try:
        for service in out:
            for _ in range(kills):
                before = len(world.events("switch"))
                killed = world.kill([service])
                wait_for(lambda b=before: len(world.events("switch")) > b, 30, "switch")
                out[service].append(round(world.events("switch")[before]["at"] - killed, 3))
                world.restart(service)
                wait_for(world.all_up, 30, "primary back up")
                subprocess.run(
                    [*XPROV, "failback", service, "-c", str(world.config)],
                    check=True,
                    capture_output=True,
                    timeout=60,
                )
    finally:
        world.stop()
    return out


def loss_run(minutes: float, tmp: Path) -> dict[str, Any]:
    with Namespace("xprov-drill", 77) as namespace:
        world = World(tmp / "loss", 200, netns=namespace).start()
        try:
            namespace.drop(5)
            events = tmp / "loss" / "events.jsonl"
            run = drill(world, 5.0, minutes * 60, events)
            out, err = run.communicate(timeout=minutes * 60 + 120)
            if run.returncode != 0:
                raise RuntimeError(err)
            result = json.loads(out)
            status = world.status()
            failures = sum(t["consecutive_failures"] for t in status["monitor"]["targets"].values())
            metrics = subprocess.run(
                [
                    "curl",
                    "-s",
                    "-H",
                    f"Authorization: Bearer {_token(world)}",
                    f"http://127.0.0.1:{_admin_port(world)}/metrics",
                ],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
            failed = {}
            for line in metrics.splitlines():
                if line.startswith('xprov_probe_results_total{result="failed"'):
                    labels, value = line.rsplit(" ", 1)
                    target = "{service}@{site}".format(
                        **dict(
                            part.split("=")
                            for part in labels[labels.index("{") + 1 : -1]
                            .replace('"', "")
                            .split(",")
                            if not part.startswith("result")
                        )
                    )
                    failed[target] = int(float(value))
            probes = sum(
                float(line.rsplit(" ", 1)[1])
                for line in metrics.splitlines()
                if line.startswith("xprov_probe_results_total{")
            )
            return {
                "minutes": minutes,
                "switches": [
                    f"{e['service']} {e['before']}->{e['after']}" for e in world.events("switch")
                ],
                "target_state_changes": len(world.events("target_state")) - 6,
                "packets_dropped": namespace.dropped(),
                "probes": int(probes),
                "failed_probes": failed,
                "still_failing_now": failures,
                "phone_requests": result["requests"],
                "phone_errors": result["errors"],
            }
        finally:
            world.stop()


def _token(world: World) -> str:
    return "dev-admin-token-change-me"


def _admin_port(world: World) -> int:
    text = world.config.read_text()
    section = text[text.index("[admin]") :]
    return int(section.split('listen = ["127.0.0.1:', 1)[1].split('"', 1)[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--poll", type=float, default=60.0)
    parser.add_argument("--scenarios", default="sip,stun,db,site")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--loss-minutes", type=float, default=10.0)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    results: dict[str, Any] = {"phones": args.phones, "poll_s": args.poll, "scenarios": {}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in [s for s in args.scenarios.split(",") if s]:
            result = scenario(name, args.phones, args.poll, tmp)
            results["scenarios"][name] = result
            print(_describe(name, result), flush=True)
        if args.kills:
            series = detection_series(args.kills, tmp)
            results["detection"] = series
            everything = [d for values in series.values() for d in values]
            for service, values in series.items():
                print(
                    f"detection {service}: p50 {statistics.median(values):.2f} s, worst "
                    f"{max(values):.2f} s over {len(values)} kills",
                    flush=True,
                )
            print(
                f"detection, all services: p50 {statistics.median(everything):.2f} s, worst "
                f"{max(everything):.2f} s",
                flush=True,
            )
        if args.loss_minutes and os.geteuid() == 0:
            loss = loss_run(args.loss_minutes, tmp)
            results["loss"] = loss
            print(
                f"5% of probe packets dropped for {loss['minutes']} min: "
                f"{len(loss['switches'])} switches {loss['switches'] or ''}, "
                f"{loss['target_state_changes']} target state changes, "
                f"{sum(loss['failed_probes'].values())} of {loss['probes']} probes failed "
                f"{loss['failed_probes']} "
                f"({loss['packets_dropped']} packets dropped); phones: "
                f"{loss['phone_requests']} requests, errors {loss['phone_errors'] or 0}",
                flush=True,
            )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


def _describe(name: str, result: dict[str, Any]) -> str:
    (event,) = result["events"]
    lines = [
        f"scenario {name}: {result['phones']} phones every {result['poll_s']} s, "
        f"{result['requests']} requests, {sum(result['errors'].values())} errors, "
        f"p99 {result['latency_ms']['p99']} ms",
        f"  detection (kill -> switch): {result['detection_s']}",
    ]
    for service, figures in event["convergence"].items():
        lines.append(
            f"  {service}: fetched the backup {_marks(figures['fetched'])}; working "
            f"{_marks(figures['working'])}"
        )
    for label, marks in event["seed"].items():
        lines.append(f"  seed design, {label}: working {_marks(marks)}")
    return "\n".join(lines)


def _marks(marks: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {'never' if v is None else f'{v} s'}" for k, v in marks.items())


if __name__ == "__main__":
    start = time.monotonic()
    code = main()
    print(f"({time.monotonic() - start:.0f} s)")
    sys.exit(code)
