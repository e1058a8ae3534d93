"""The `xprov` command: serve, check-config, render, probe, status, failover, failback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

from xprov import __version__, config, descriptors, logs
from xprov.config import SERVICES
from xprov.guard import notices
from xprov.mac import normalize_mac
from xprov.provisioning import Failed, NotFound, Provisioner
from xprov.selection import ActiveSites
from xprov.service import BuildError, Service, build, load
from xprov.vendors import identify, unknown_models

DEFAULT_CONFIG = os.environ.get("XPROV_CONFIG", "/etc/xprov/xprov.toml")


def _config(args: argparse.Namespace) -> config.Config | None:
    """The config named by -c, or None after printing every problem with it."""
    try:
        return config.load(args.config)
    except config.ConfigError as exc:
        _print_problems(exc.problems)
        return None


def _print_problems(problems: list[str]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        built = build(args.config)
    except BuildError as exc:
        _print_problems(exc.problems)
        return 1
    cfg = built.inputs.config
    logs.configure(args.log_format or cfg.logging.format, cfg.logging.level)
    logs.begin_twisted_logging()
    from twisted.internet import reactor

    service = Service(built, reactor, descriptors.raise_soft_limit())
    try:
        service.start()
    except Exception as exc:
        logs.get_logger("xprov.service").error("cannot_start", error=str(exc))
        return 1
    reactor.addSystemEventTrigger("before", "shutdown", service.stop)
    reactor.run()  # SIGTERM and SIGINT stop the reactor (Twisted's own handlers)
    logs.get_logger("xprov.service").info("stopped")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        inputs = load(args.config)
    except BuildError as exc:
        _print_problems(exc.problems)
        return 1
    cfg = inputs.config
    print(
        f"{cfg.path}: OK ({len(inputs.inventory)} phones, sites {', '.join(cfg.sites)}, "
        f"primary {cfg.failover.primary}, backup {cfg.failover.backup})"
    )
    for notice in notices(cfg, inputs.inventory):
        print(f"note: {notice}")
    for warning in unknown_models(inputs.inventory.models()):
        print(f"warning: {warning}")
    note = _descriptor_note(cfg)
    if note:
        print(f"note: {note}")
    return 0


def _descriptor_note(cfg: config.Config) -> str | None:
    """What `serve` would do about the descriptor limit if started from this shell (it
    raises the soft limit to the hard one); None if the caps fit."""
    limit = descriptors.current_limit()
    budget = descriptors.budget_of(cfg, limit.hard)
    if budget.fit is descriptors.Fit.FITS:
        return None
    if budget.fit is descriptors.Fit.SHORT:
        return f"serve would refuse to start here: {budget.problem()}"
    caps = ", ".join(f"{kind} {cap}" for kind, cap in budget.caps.fields().items())
    return (
        f"RLIMIT_NOFILE here is {limit.hard} (hard): serve would lower the caps to {caps} "
        f"to keep {budget.reserve} descriptors for the monitor and the rest; "
        f"raise it to at least {budget.needed} (the packaged unit sets LimitNOFILE=65536)"
    )


def cmd_render(args: argparse.Namespace) -> int:
    mac = normalize_mac(args.mac)
    if mac is None:
        print(f"{args.mac!r} is not a MAC address", file=sys.stderr)
        return 2
    try:
        inputs = load(args.config)
    except BuildError as exc:
        _print_problems(exc.problems)
        return 1
    active = ActiveSites(inputs.config.sites, inputs.config.failover.primary)
    try:
        active.switch(dict(item.split("=", 1) for item in args.active))
    except ValueError as exc:
        print(f"--active: {exc}", file=sys.stderr)
        return 2
    provisioner = Provisioner(inputs, active)
    name = args.file_name or provisioner.device_file(mac)
    if name is None:
        print(f"{mac}: unknown device", file=sys.stderr)
        return 1
    named = identify(name, args.user_agent)
    if named is not None and named.mac is not None and named.mac != mac:
        print(f"{name} is another phone's file than {mac}'s", file=sys.stderr)
        return 2
    outcome = provisioner.provide(name, args.user_agent)
    if isinstance(outcome, NotFound):
        print(f"{name}: not found ({outcome.reason})", file=sys.stderr)
        return 1
    if isinstance(outcome, Failed):
        print(f"{name}: render failed: {outcome.error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(outcome.body)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg is None:
        return 1
    from twisted.internet import task
    from twisted.internet.defer import gatherResults

    from xprov.monitor import build_targets, probe_pool

    def run(reactor: Any) -> Any:
        pool = probe_pool(cfg)
        pool.start()
        targets = build_targets(cfg, reactor, pool)

        def report(results: list[Any]) -> None:
            rows = [
                {
                    "target": t.name,
                    "probe": t.description,
                    "ok": r.ok,
                    "cause": r.cause.value,
                    "latency_ms": round(r.latency * 1000, 1),
                    "detail": r.detail,
                }
                for t, r in zip(targets, results, strict=True)
            ]
            print(json.dumps(rows, indent=2) if args.json else _table(rows))
            primary_ok = all(
                row["ok"]
                for t, row in zip(targets, rows, strict=True)
                if t.site == cfg.failover.primary
            )
            raise SystemExit(0 if primary_ok else 1)

        return gatherResults([t.probe() for t in targets]).addCallback(report)

    task.react(run)
    return 0  # not reached: react exits


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("TARGET", "PROBE", "VERDICT", "LATENCY", "DETAIL")
    lines = [
        (r["target"], r["probe"], _verdict(r), f"{r['latency_ms']} ms", r["detail"]) for r in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=False)]
    return "\n".join(
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    )


def _verdict(row: dict[str, Any]) -> str:
    if row["ok"]:
        return "up"
    return "NOT MADE" if row["cause"] == "local" else "DOWN"  # ours: says nothing of the target


def _admin_call(
    args: argparse.Namespace, path: str, body: dict[str, Any] | None
) -> tuple[int, dict[str, Any]] | None:
    """Ask the running server's admin API: (HTTP status, JSON answer), or None after saying
    why it could not be asked."""
    cfg = _config(args)
    if cfg is None:
        return None
    if cfg.admin is None:
        print(f"{cfg.path}: no [admin] section: the server has no admin API", file=sys.stderr)
        return None
    listen = cfg.admin.listen[0]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen.host, listen.host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{listen.port}{path}"
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {cfg.admin.token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {"error": exc.reason}
    except (OSError, ValueError) as exc:
        print(f"cannot reach the admin API at {url}: {exc}", file=sys.stderr)
        return None


def _show(args: argparse.Namespace, answer: tuple[int, dict[str, Any]] | None) -> int:
    """Print a status answer (or the refusal); 0 if the server agreed."""
    if answer is None:
        return 1
    code, body = answer
    if code != 200:
        print(f"refused ({code}): {body.get('error')}", file=sys.stderr)
        return 1
    print(json.dumps(body, indent=2, sort_keys=True) if args.json else _describe(body))
    return 0


def _describe(status: dict[str, Any]) -> str:
    """The status document for people."""
    monitor = status.get("monitor") or {}
    lines = [
        f"xprov {status.get('version')}, up {status.get('uptime_s')} s, selection "
        f"generation {status.get('selection', {}).get('generation')}"
    ]
    inventory = status.get("inventory")
    if inventory:
        lines.append(
            f"inventory: {inventory['phones']} phones from {inventory['source']} "
            f"(generation {inventory['generation']}, {inventory['age_s']} s old)"
        )
    reloads = (status.get("config") or {}).get("reloads") or {}
    last = reloads.get("last")
    if last and not last.get("ok"):
        lines.append(f"LAST RELOAD FAILED: {'; '.join(last.get('problems', []))}")
    if monitor.get("switching_suspended"):
        lines.append("SWITCHING SUSPENDED: every target fails at once")
    services = monitor.get("services") or {}
    for service in [s for s in SERVICES if s in services]:
        info = services[service]
        manual = f" (manual: {info['manual']})" if info.get("manual") else ""
        lines.append(f"{service:5} active at {info['active']}{manual}: {info['why']}")
        if info.get("holding"):
            lines.append(f"      cannot switch: {info['holding']}")
    for name, target in sorted((monitor.get("targets") or {}).items()):
        last_probe = target.get("last") or {}
        lines.append(
            f"  {name:20} {target['state']:8} {last_probe.get('detail', '-')} "
            f"({last_probe.get('latency_ms', '-')} ms)"
        )
    convergence = status.get("convergence")
    if convergence:
        slowest = convergence.get("slowest_s")
        lines.append(
            f"convergence: {convergence['fetched']} of {convergence['regular_phones']} phones "
            f"polling regularly fetched generation {convergence['generation']} "
            f"({convergence['percent']}%, {convergence['pending']} pending"
            + (f", slowest after {slowest} s" if slowest is not None else "")
            + ")"
        )
    return "\n".join(lines)


def cmd_failover(args: argparse.Namespace) -> int:
    body = {"service": args.service, "site": args.to, "force": args.force}
    return _show(args, _admin_call(args, "/failover", body))


def cmd_failback(args: argparse.Namespace) -> int:
    body = {"service": args.service, "force": args.force}
    return _show(args, _admin_call(args, "/failback", body))


def cmd_status(args: argparse.Namespace) -> int:
    return _show(args, _admin_call(args, "/status", None))


def cmd_reload(args: argparse.Namespace) -> int:
    answer = _admin_call(args, "/reload", {})
    if answer is None:
        return 1
    code, body = answer
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif body.get("ok"):
        print(
            f"reloaded: config generation {body['config_generation']}, "
            f"{body['phones']} phones, listening on {body['listen']}"
        )
    else:
        print("reload failed, the server keeps its running configuration:", file=sys.stderr)
        _print_problems([f"  {p}" for p in body.get("problems") or [body.get("error")]])
    return 0 if code == 200 and body.get("ok") else 1


def cmd_db_init(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg is None:
        return 1
    site = args.site or cfg.failover.primary
    db = cfg.sites[site].db if site in cfg.sites else None
    if db is None:
        print(f"site {site!r} has no [sites.{site}.db]", file=sys.stderr)
        return 1
    from xprov.inventory import mysql_source

    try:
        mysql_source.create_schema(db, cfg.inventory.timeout)
    except Exception as exc:
        print(f"{site} ({db.host}:{db.port}/{db.database}): {exc}", file=sys.stderr)
        return 1
    print(f"{site} ({db.host}:{db.port}/{db.database}): tables phones and phone_lines ready")
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if cfg is None:
        return 1
    from twisted.internet import task

    from xprov.drill import report
    from xprov.drill.phones import simulate
    from xprov.drill.run import Drill, summary, switches
    from xprov.service import load_inventory, site_order

    inventory, _ = load_inventory(cfg, 0, site_order(cfg))
    phones = list(inventory.phones.values())[: args.phones or None]
    sim = simulate(phones, args.tftp_share, args.poll)
    low, high = (float(x) for x in args.spa_reboot.split("-"))
    admin = None
    if cfg.admin is not None:
        listen = cfg.admin.listen[0]
        admin = (_local(listen.host), listen.port, cfg.admin.token)
    tftp_port = cfg.tftp.listen[0].port if cfg.tftp else None
    result: dict[str, Any] = {}

    def run(reactor: Any) -> Any:
        drill = Drill(
            sim,
            cfg,
            args.host,
            cfg.http.listen[0].port,
            tftp_port,
            args.poll,
            args.jitter,
            reactor,
            admin=admin,
        )

        def done(record: Any) -> None:
            result.update(
                summary(record),
                phones=len(sim),
                poll_s=args.poll,
                jitter_pct=round(args.jitter * 100),
                seconds=record.ended - record.started,
                mix=_mix(sim),
            )
            seen = switches(record)
            marks = _read_events(args.events) or [
                {
                    "at": s["at"],
                    "what": f"switch to generation {s['generation']}",
                    "services": list(s["moved"]),
                }
                for s in seen
            ]
            result["events"] = [
                _event(mark, seen, record, sim, (low, high), args.poll) for mark in marks
            ]
            print(json.dumps(result, indent=2) if args.json else report.describe(result))

        return drill.run(args.duration).addCallback(done)

    task.react(run)  # exits when the drill is over
    return 0


def _read_events(path: str | None) -> list[dict[str, Any]]:
    """Events written by whoever broke something during the drill: one JSON object per
    line, with `at` (epoch seconds), `what` and the `services` expected to move."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _event(
    mark: dict[str, Any],
    seen: list[dict[str, Any]],
    record: Any,
    sim: list[Any],
    reboot: tuple[float, float],
    poll: float,
) -> dict[str, Any]:
    """Convergence of the phones from an event to where its services went."""
    from xprov.drill import report
    from xprov.drill.run import convergence

    after = [s for s in seen if s["at"] >= mark["at"] - 1.0]
    figures, detection = {}, None
    for service in mark.get("services", []):
        moved = next((s for s in after if service in s["moved"]), None)
        if moved is None:
            continue
        detection = round(moved["at"] - mark["at"], 2) if detection is None else detection
        if service != "db":  # the database is xprov's own: phones see no change
            figures[service] = convergence(
                record, sim, mark["at"], [service], moved["moved"][service], reboot
            )
    return {
        "what": mark["what"],
        "at": mark["at"],
        "detection_s": detection,
        "convergence": figures,
        "seed": report.seed_comparison(len(sim)),
    }


def _local(host: str) -> str:
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _mix(phones: list[Any]) -> str:
    kinds = Counter(f"{p.vendor}/{p.transport}" for p in phones)
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))


def _active_item(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected SERVICE=SITE")
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="xprov",
        description="Provisioning server for VoIP desk phones with built-in site failover.",
    )
    top.add_argument("--version", action="version", version=f"xprov {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "-c",
            "--config",
            default=DEFAULT_CONFIG,
            help=f"config file (default {DEFAULT_CONFIG}; env XPROV_CONFIG)",
        )
        return p

    serve = command("serve", "Serve phones' files over HTTP until SIGTERM.")
    serve.add_argument(
        "--log-format", choices=("json", "console"), help="override [logging] format"
    )
    serve.set_defaults(func=cmd_serve)

    check = command(
        "check-config",
        "Validate the config, templates and inventory; "
        "print every problem and exit 1 if there is one.",
    )
    check.set_defaults(func=cmd_check_config)

    render = command("render", "Print exactly the bytes a phone would get.")
    render.add_argument("mac", help="the phone's MAC address")
    render.add_argument(
        "file_name", nargs="?", help="file the phone asks for (default: its per-device file)"
    )
    render.add_argument("--user-agent", help="User-Agent the phone would send")
    render.add_argument(
        "--active",
        action="append",
        default=[],
        type=_active_item,
        metavar="SERVICE=SITE",
        help="render as if SITE were active for SERVICE",
    )
    render.set_defaults(func=cmd_render)

    probe = command(
        "probe",
        "Probe every service at every site once; print a table; exit 0 "
        "only if every primary is up.",
    )
    probe.add_argument("--json", action="store_true", help="print JSON")
    probe.set_defaults(func=cmd_probe)

    status = command("status", "Show the running server's active sites and probe states.")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=cmd_status)

    failover = command(
        "failover",
        "Point SERVICE at SITE on the running server and keep it there until `xprov failback`.",
    )
    failover.add_argument("service", choices=SERVICES)
    failover.add_argument("--to", required=True, metavar="SITE")
    failover.add_argument("--force", action="store_true", help="even if SITE is not up")
    failover.add_argument("--json", action="store_true", help="print JSON")
    failover.set_defaults(func=cmd_failover)

    reload = command(
        "reload",
        "Reload the running server's config, templates and inventory "
        "(as SIGHUP does); print what happened.",
    )
    reload.add_argument("--json", action="store_true", help="print JSON")
    reload.set_defaults(func=cmd_reload)

    db = sub.add_parser("db", help="The MySQL inventory database.")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser(
        "init",
        help="Create the inventory tables (if missing) in a site's database.",
        description="Create the inventory tables "
        "(phones, phone_lines) if missing; the schema is in "
        "xprov/inventory/schema.sql.",
    )
    init.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    init.add_argument("--site", help="whose [sites.<name>.db] (default: the primary)")
    init.set_defaults(func=cmd_db_init)

    drill = command(
        "drill",
        "Simulate phones polling the running server (loopback, or "
        "--host); report requests, errors and, after a switch, how fast the phones "
        "followed it.",
    )
    drill.add_argument(
        "--phones", type=int, default=0, help="how many (default: every phone of the inventory)"
    )
    drill.add_argument("--poll", type=float, default=60.0, help="seconds between two polls")
    drill.add_argument("--jitter", type=float, default=0.1, help="share of the poll period")
    drill.add_argument("--duration", type=float, default=300.0, help="seconds (at most 3600)")
    drill.add_argument("--tftp-share", type=float, default=0.2, help="share of phones on TFTP")
    drill.add_argument(
        "--spa-reboot",
        default="30-60",
        help="seconds an SPA reboots after a change (Yealink phones apply in place)",
    )
    drill.add_argument("--host", default="127.0.0.1", help="the server's address")
    drill.add_argument(
        "--events",
        metavar="FILE",
        help="measure from the events in FILE "
        "(JSON lines: at, what, services) instead of from the switches seen",
    )
    drill.add_argument("--json", action="store_true", help="print JSON")
    drill.set_defaults(func=cmd_drill)

    failback = command(
        "failback", "Return SERVICE to the primary site and hand it back to the monitor."
    )
    failback.add_argument("service", choices=SERVICES)
    failback.add_argument("--force", action="store_true", help="even if the primary is not up")
    failback.add_argument("--json", action="store_true", help="print JSON")
    failback.set_defaults(func=cmd_failback)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
