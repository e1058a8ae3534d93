"""The `xprov` command: serve, check-config, render."""

from __future__ import annotations

import argparse
import os
import sys

from xprov import __version__, logs
from xprov.mac import normalize_mac
from xprov.provisioning import Failed, NotFound, Provisioner
from xprov.selection import ActiveSites
from xprov.service import BuildError, Service, load

DEFAULT_CONFIG = os.environ.get("XPROV_CONFIG", "/etc/xprov/xprov.toml")


def _print_problems(problems: list[str]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        inputs = load(args.config)
    except BuildError as exc:
        _print_problems(exc.problems)
        return 1
    logs.configure(args.log_format or inputs.config.logging.format, inputs.config.logging.level)
    logs.begin_twisted_logging()
    from twisted.internet import reactor

    service = Service(inputs, reactor)
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
    outcome = provisioner.provide(name, args.user_agent)
    if isinstance(outcome, NotFound):
        print(f"{name}: not found ({outcome.reason})", file=sys.stderr)
        return 1
    if isinstance(outcome, Failed):
        print(f"{name}: render failed: {outcome.error}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(outcome.body)
    return 0


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
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
