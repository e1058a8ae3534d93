"""The `xprov` command: parse the arguments, call the module that does the work, print what
it answers (serve, check-config, render, probe, status, failover, failback, reload, db init,
drill)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

from xprov import __version__, config, descriptors, logs, status_text
from xprov.admin_client import AdminClient, AdminError, Answer
from xprov.build import BuildError, build, load
from xprov.config import SERVICES
from xprov.drill.servers import ATTEMPT_TIMEOUT, parse_server
from xprov.drill.sipside import KEEPALIVE
from xprov.mac import normalize_mac
from xprov.provisioning import Failed, NotFound, Provisioner
from xprov.selection import ActiveSites
from xprov.service import Service
from xprov.vendors import identify

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
    process_logs = logs.ProcessLogs(args.log_format)
    process_logs.apply(cfg.logging.format, cfg.logging.level, built.secrets)
    logs.begin_twisted_logging()
    from twisted.internet import reactor
    from twisted.internet.interfaces import IReactorThreads

    service = Service(built, reactor, descriptors.raise_soft_limit(), process_logs)
    try:
        service.startService()
    except Exception as exc:
        logs.get_logger("xprov.service").error("cannot_start", error=str(exc))
        return 1
    # SIGHUP (systemctl reload) reloads, on the reactor: installed by the command, not by
    # the service, so building services in a test never takes the process's signal.
    threads = IReactorThreads(reactor)
    signal.signal(signal.SIGHUP, lambda *_: threads.callFromThread(service.reload))
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()  # SIGTERM and SIGINT stop the reactor (Twisted's own handlers)
    logs.get_logger("xprov.service").info("stopped")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        inputs = load(args.config)
    except BuildError as exc:
        _print_problems(exc.problems)
        return 1
    print("\n".join(status_text.check_lines(inputs, descriptors.current_limit())))
    return 0


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

    from xprov.monitor.loop import build_targets
    from xprov.monitor.pool import probe_pool

    def run(reactor: Any) -> Any:
        pool = probe_pool(cfg)
        pool.start()
        targets = build_targets(cfg, reactor, pool)

        def report(results: list[Any]) -> None:
            rows = status_text.probe_rows(targets, results)
            print(json.dumps(rows, indent=2) if args.json else status_text.probe_table(rows))
            primary = cfg.failover.primary
            up = all(r.ok for t, r in zip(targets, results, strict=True) if t.site == primary)
            raise SystemExit(0 if up else 1)  # 0 only if every primary target is up

        return gatherResults([t.probe() for t in targets]).addCallback(report)

    task.react(run)
    return 0  # not reached: react exits


def _admin_call(args: argparse.Namespace, path: str, body: dict[str, Any] | None) -> Answer | None:
    """Ask the running server's admin API (GET if no body); None after saying why it
    could not be asked. Only the config's [admin] table is read: a reload of a file with
    problems is the server's to refuse, with every problem."""
    try:
        client = AdminClient.from_file(args.config)
        return client.get(path) if body is None else client.post(path, body)
    except AdminError as exc:
        print(exc, file=sys.stderr)
        return None


def _show(args: argparse.Namespace, answer: Answer | None) -> int:
    """Print a status answer (or the refusal); 0 if the server agreed."""
    if answer is None:
        return 1
    if not answer.agreed:
        print(status_text.refusal_line(answer.status, answer.body), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer.body, indent=2, sort_keys=True))
    else:
        print("\n".join(status_text.status_lines(answer.body)))
    return 0


def cmd_failover(args: argparse.Namespace) -> int:
    body = {"service": args.service, "site": args.to, "force": args.force, "local": args.local}
    return _show(args, _admin_call(args, "/failover", body))


def cmd_failback(args: argparse.Namespace) -> int:
    body = {"service": args.service, "force": args.force, "local": args.local}
    return _show(args, _admin_call(args, "/failback", body))


def cmd_witness(args: argparse.Namespace) -> int:
    from xprov import config
    from xprov.witness import Witness

    try:
        cfg = config.load(args.config)
        secrets = logs.Redactor.prepare(cfg.secrets())
        logs.ProcessLogs(args.log_format).apply(cfg.logging.format, cfg.logging.level, secrets)
        logs.begin_twisted_logging()
        from twisted.internet import reactor

        witness = Witness(cfg, reactor)
    except (config.ConfigError, ValueError) as exc:
        _print_problems(getattr(exc, "problems", None) or [str(exc)])
        return 1
    witness.startService()
    reactor.addSystemEventTrigger("before", "shutdown", witness.stopService)
    reactor.run()
    logs.get_logger("xprov.witness").info("stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return _show(args, _admin_call(args, "/status", None))


def cmd_reload(args: argparse.Namespace) -> int:
    answer = _admin_call(args, "/reload", {})
    if answer is None:
        return 1
    body = answer.body
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif body.get("ok"):
        print(status_text.reloaded_line(body))
    else:
        _print_problems(status_text.reload_failed_lines(body))
    return 0 if answer.agreed and body.get("ok") else 1


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

    from xprov.build import load_inventory, site_order
    from xprov.drill import outcome, report
    from xprov.drill.phones import simulate
    from xprov.drill.run import against

    inventory, _ = load_inventory(cfg, 0, site_order(cfg))
    phones = list(inventory.phones.values())[: args.phones or None]
    sim = simulate(phones, args.tftp_share, args.poll)
    low, high = (float(x) for x in args.spa_reboot.split("-"))
    settings = outcome.Settings(args.poll, args.jitter, (low, high))

    def run(reactor: Any) -> Any:
        drill = against(
            cfg,
            sim,
            args.host,
            args.poll,
            args.jitter,
            reactor,
            args.server or (),
            args.timeout,
            second_server=args.second_server,
            keepalive=args.keepalive,
            push=args.push,
        )

        def done(record: Any) -> None:
            result = outcome.result(record, sim, outcome.read_events(args.events), settings)
            print(json.dumps(result, indent=2) if args.json else report.describe(result))

        return drill.run(args.duration).addCallback(done)

    task.react(run)  # exits when the drill is over
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _drill_server(text: str) -> str:
    try:
        parse_server(text, 1, None)  # the syntax; the ports left out come from the config
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _active_item(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected SERVICE=SITE")
    return text


LOCAL_HELP = (
    "cluster mode: this instance only, without the cluster's agreement (the escape hatch "
    "when etcd is lost; the other instances keep the cluster's decision)"
)


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

    witness = command(
        "witness",
        "Probe every site and vote in the cluster ([cluster] mode = etcd); serve no phone.",
    )
    witness.add_argument(
        "--log-format", choices=("json", "console"), help="override [logging] format"
    )
    witness.set_defaults(func=cmd_witness)

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
    failover.add_argument("--local", action="store_true", help=LOCAL_HELP)
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
    where = drill.add_mutually_exclusive_group()
    where.add_argument("--host", default="127.0.0.1", help="the server's address")
    where.add_argument(
        "--server",
        action="append",
        type=_drill_server,
        metavar="HOST[:HTTP_PORT[:TFTP_PORT]]",
        help="an address of the provisioning name, repeated in the order phones try them: "
        "each file from the first that answers, the next one after a refused or timed-out "
        "attempt (ports default to the config's first listeners)",
    )
    drill.add_argument(
        "--attempt-timeout",
        dest="timeout",
        type=float,
        default=ATTEMPT_TIMEOUT,
        help=f"seconds a phone waits on one address (default {ATTEMPT_TIMEOUT:g})",
    )
    drill.add_argument(
        "--events",
        metavar="FILE",
        help="measure from the events in FILE "
        "(JSON lines: at, what, services) instead of from the switches seen",
    )
    drill.add_argument(
        "--second-server",
        action="store_true",
        help="phones use the second SIP server their file names: each sends an OPTIONS to "
        "the server it uses every --keepalive s and moves to the next one after its "
        "firmware's Timer F without an answer (Yealink 32 s, SPA 16 s)",
    )
    drill.add_argument(
        "--keepalive",
        type=_positive,
        default=KEEPALIVE,
        help=f"seconds between two requests of a phone to its SIP server (default {KEEPALIVE:g})",
    )
    drill.add_argument(
        "--push",
        metavar="FILE",
        help="each phone listens for a NOTIFY on a UDP port of its own and fetches its files "
        "at once on its vendor's resync event; their contacts are written to FILE for "
        '[push] contacts = "file"',
    )
    drill.add_argument("--json", action="store_true", help="print JSON")
    drill.set_defaults(func=cmd_drill)

    failback = command(
        "failback", "Return SERVICE to the primary site and hand it back to the monitor."
    )
    failback.add_argument("service", choices=SERVICES)
    failback.add_argument("--force", action="store_true", help="even if the primary is not up")
    failback.add_argument(
        "--local", action="store_true", help="release this instance's --local choice"
    )
    failback.add_argument("--json", action="store_true", help="print JSON")
    failback.set_defaults(func=cmd_failback)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
