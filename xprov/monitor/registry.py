"""The probe interface and the one table of service types.

Everything that depends on which services exist derives from `SERVICE_TYPES`: the service
names (`services()`: config, selection, the command line), the `[sites.<site>.<name>]` tables
the config reads, the services whose variables templates see (`template_services()`), the
ones never failed back automatically (`never_auto_failback()`), the monitor's targets and the
size of its thread pool.

Adding a probe type: write one module with its config reader and a class that implements
`Probe` (see monitor/stun.py, the smallest), then add one row here.

This module imports nothing of xprov at run time: `config/sites.py` reads the table, and the
probe modules (which import the config's dataclasses) are loaded only when a row's `probe` or
`reader` is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from pathlib import Path

    from twisted.internet.defer import Deferred
    from twisted.python.threadpool import ThreadPool

    from xprov.config import MonitorConfig
    from xprov.monitor.probe import IProbeReactor
    from xprov.monitor.state import ProbeResult


@dataclass(frozen=True)
class ProbeContext:
    """What a probe is bound to at construction: the reactor it runs on (a clock too), the
    thread pool for blocking probes, and the `[monitor]` settings."""

    reactor: IProbeReactor
    pool: ThreadPool
    settings: MonitorConfig


@runtime_checkable
class Probe(Protocol):
    """One probe type bound to its context; the monitor makes one per target."""

    # The [monitor] settings this probe depends on (beyond the deadline): a reload that
    # changes them makes a new target, with a fresh state.
    settings: Hashable

    def describe(self, target: Any) -> str:
        """What is probed, for logs and status: e.g. "sip udp 127.0.0.1:5060"."""
        ...

    def probe(self, target: Any, deadline: float) -> Deferred[ProbeResult]:
        """Probe `target` (its service's config dataclass, e.g. SipService); the Deferred
        fires with a ProbeResult, never an error, within `deadline` seconds."""
        ...

    def close(self) -> None:
        """Release what the probe keeps (a database's connection); the target is gone."""
        ...


ProbeFactory = Callable[[ProbeContext], Probe]
Reader = Callable[[Any, "Path"], Hashable]  # (the table being read, config dir) -> dataclass


@dataclass(frozen=True)
class ServiceType:
    """One row: a service every site may have, and everything that depends on its type."""

    name: str  # the service: [sites.<site>.<name>], target "<name>@<site>", failover's SERVICE
    probe_path: str  # "module:attribute" of its ProbeFactory (a Probe class)
    reader_path: str  # "module:attribute" of its Reader of [sites.<site>.<name>]
    required: bool  # every site must have it; else all sites or none (a failover needs both)
    templates: bool  # templates see its variables (False when phones never need it or it
    #   holds a secret)
    auto_failback: bool  # may return to the primary on its own ([monitor] failback = "auto")
    threads: int = 0  # probe pool threads per target (blocking probes)

    @property
    def probe(self) -> ProbeFactory:
        return _load(self.probe_path)

    @property
    def reader(self) -> Reader:
        return _load(self.reader_path)


def _load(path: str) -> Any:
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


SERVICE_TYPES: tuple[ServiceType, ...] = (
    ServiceType(
        "sip",
        "xprov.monitor.sip:SipProbe",
        "xprov.config.sites:read_sip",
        required=True,
        templates=True,
        auto_failback=True,
    ),
    ServiceType(
        "stun",
        "xprov.monitor.stun:StunProbe",
        "xprov.config.sites:read_stun",
        required=False,
        templates=True,
        auto_failback=True,
    ),
    # Phones never need the database and it holds a password: templates never see it. It is
    # xprov's own inventory, failed back by hand (a switch rereads every phone).
    ServiceType(
        "db",
        "xprov.monitor.mysql:MysqlProbe",
        "xprov.config.sites:read_db",
        required=False,
        templates=False,
        auto_failback=False,
        # a hung database holds a thread until PyMySQL's timeouts (up to three) end it
        threads=4,
    ),
)

# Read at each call, never copied at import: a row added (or a test's table) counts at once.


def services() -> tuple[str, ...]:
    """Every service name, in the table's order (targets, status and switches follow it)."""
    return tuple(t.name for t in SERVICE_TYPES)


def template_services() -> tuple[str, ...]:
    """The services whose variables templates see (`selection.service_variables`)."""
    return tuple(t.name for t in SERVICE_TYPES if t.templates)


def never_auto_failback() -> frozenset[str]:
    """The services the rule never returns to the primary on its own (`state.Policy`)."""
    return frozenset(t.name for t in SERVICE_TYPES if not t.auto_failback)
