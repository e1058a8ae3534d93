"""What `xprov` prints for people: pure functions from the JSON documents `Service.status()`
and the admin API's `/reload` return, from `xprov probe`'s results and from what
`check-config` loaded, to lines of text."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any, Protocol

from xprov import descriptors
from xprov.config import SERVICES
from xprov.guard import notices
from xprov.provisioning import Inputs
from xprov.vendors import unknown_models


def status_lines(status: dict[str, Any]) -> list[str]:
    """`xprov status`: the status document (shape: `Service.status()`) for people."""
    return [
        *_header(status),
        *_cluster(status.get("cluster") or {}),
        *_services(status.get("monitor") or {}),
        *_convergence(status.get("convergence")),
        *_push(status.get("push")),
    ]


def _header(status: dict[str, Any]) -> list[str]:
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
    running = (status.get("config") or {}).get("reload_in_progress")
    if running:
        lines.append(f"RELOAD IN PROGRESS for {running['for_s']} s")
    reloads = (status.get("config") or {}).get("reloads") or {}
    last = reloads.get("last")
    if last and not last.get("ok"):
        lines.append(f"LAST RELOAD FAILED: {'; '.join(last.get('problems', []))}")
    if (status.get("monitor") or {}).get("switching_suspended"):
        lines.append("SWITCHING SUSPENDED: every target fails at once")
    return lines


def _cluster(cluster: dict[str, Any]) -> list[str]:
    """Cluster mode: the agreement's health, the observers, the inventories' hashes."""
    lines = []
    if cluster.get("restart_pending"):
        lines.append(f"RESTART PENDING for {', '.join(cluster['restart_pending'])}")
    if cluster.get("mode") != "etcd":
        return lines
    link = cluster.get("agreement")
    head = f"cluster: {cluster.get('name')} ({cluster.get('role')}), agreement {link}"
    if link != "ok":
        head = f"NO AGREEMENT ({link}: {cluster.get('problem')}): the last decision stands"
    lines.append(head)
    observers = cluster.get("observers") or {}
    named = ", ".join(f"{name} ({seen.get('role')})" for name, seen in sorted(observers.items()))
    lines.append(f"observers: {named or 'none'}")
    if not cluster.get("inventories_agree", True):
        hashes = {
            n: seen.get("inventory") for n, seen in observers.items() if seen.get("inventory")
        }
        lines.append(f"INVENTORIES DIFFER: {hashes}")
    for service, site in sorted((cluster.get("local_overrides") or {}).items()):
        lines.append(f"LOCAL OVERRIDE: {service} at {site} on this instance only")
    return lines


def _services(monitor: dict[str, Any]) -> list[str]:
    """Where each service is active and why, then every target's last probe."""
    lines = []
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
    return lines


def _convergence(convergence: dict[str, Any] | None) -> list[str]:
    if not convergence:
        return []
    slowest = convergence.get("slowest_s")
    return [
        f"convergence: {convergence['fetched']} of {convergence['regular_phones']} phones "
        f"polling regularly fetched generation {convergence['generation']} "
        f"({convergence['percent']}%, {convergence['pending']} pending"
        + (f", {convergence['silent']} silent" if convergence.get("silent") else "")
        + (f", slowest after {slowest} s" if slowest is not None else "")
        + ")"
    ]


def _push(push: dict[str, Any] | None) -> list[str]:
    """The last push after a switch (shape: `services.push.Push.status`)."""
    last = (push or {}).get("last")
    if not last:
        return []
    if last.get("problem"):
        return [f"push: not sent: {last['problem']}"]
    outcomes = ", ".join(
        f"{last[k]} {k}" for k in ("ok", "timeout", "error", "unauthorized", "unreachable")
    )
    sent = last["sent"] - last["unreachable"]  # "unreachable": no datagram left
    return [
        f"push: NOTIFY sent to {sent} of {last['contacts']} phones after generation "
        f"{last['generation']} ({outcomes}, {last['pending']} pending)"
    ]


def refusal_line(status: int, body: dict[str, Any]) -> str:
    """An admin API refusal (any status but 200; body `{"error": ...}`)."""
    return f"refused ({status}): {body.get('error')}"


def reloaded_line(body: dict[str, Any]) -> str:
    """A `/reload` that took effect (body: ok, config_generation, phones, listen)."""
    line = (
        f"reloaded: config generation {body['config_generation']}, "
        f"{body['phones']} phones, listening on {body['listen']}"
    )
    pending = body.get("restart_pending") or []
    return line + (f"; RESTART PENDING for {', '.join(pending)}" if pending else "")


def reload_failed_lines(body: dict[str, Any]) -> list[str]:
    """A `/reload` that did not: the server's problems (or its error), indented."""
    return [
        "reload failed, the server keeps its running configuration:",
        *(f"  {p}" for p in body.get("problems") or [body.get("error")]),
    ]


def check_lines(inputs: Inputs, limit: descriptors.Limit) -> list[str]:
    """`check-config` of a usable config: what was loaded, then notes and warnings (weak
    settings, models without a template, a descriptor limit too low for `serve` here)."""
    cfg = inputs.config
    lines = [
        f"{cfg.path}: OK ({len(inputs.inventory)} phones, sites {', '.join(cfg.sites)}, "
        f"primary {cfg.failover.primary}, backup {cfg.failover.backup})"
    ]
    lines += [f"note: {notice}" for notice in notices(cfg, inputs.inventory)]
    lines += [f"warning: {warning}" for warning in unknown_models(inputs.inventory.models())]
    note = descriptor_note(limit, descriptors.budget_of(cfg, limit.hard))
    if note:
        lines.append(f"note: {note}")
    if cfg.cluster.mode == "etcd":
        lines.append(
            f"note: cluster mode (etcd, observer {cfg.cluster.name!r}): [cluster] is read at "
            "start; a change needs a restart (a reload reports it as pending)"
        )
    return lines


def descriptor_note(limit: descriptors.Limit, budget: descriptors.Budget) -> str | None:
    """What `serve` would do about the descriptor `limit` if started from this shell (it
    raises the soft limit to the hard one, so `budget` is weighed against `limit.hard`);
    None if the caps fit."""
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


class ProbedTarget(Protocol):
    """What a probe row names (`monitor.Target`)."""

    @property
    def name(self) -> str: ...  # service@site
    @property
    def description(self) -> str: ...  # what is probed: protocol, transport, address


class ProbeOutcome(Protocol):
    """What a probe row says (`monitor.probe.ProbeResult`)."""

    @property
    def ok(self) -> bool: ...
    @property
    def latency(self) -> float: ...  # seconds
    @property
    def detail(self) -> str: ...
    @property
    def cause(self) -> Enum: ...  # whose failure: `local` (ours) or `target`


def probe_rows(
    targets: Sequence[ProbedTarget], results: Sequence[ProbeOutcome]
) -> list[dict[str, Any]]:
    """`xprov probe --json`: one row per target, its result beside it (latency in ms)."""
    return [
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


def probe_table(rows: list[dict[str, Any]]) -> str:
    """`xprov probe`: the rows of `probe_rows` as aligned columns under a header."""
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
