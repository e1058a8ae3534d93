"""Wiring: build everything from a config, listen, monitor, stop."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IListeningPort

from xprov import __version__, config, logs
from xprov.inventory import InventoryError
from xprov.inventory.file_source import load_file
from xprov.monitor import Monitor, build_targets, probe_pool
from xprov.provisioning import Inputs, Provisioner
from xprov.render import TemplateProblems, Templates
from xprov.selection import ActiveSites
from xprov.servers import admin, http
from xprov.servers.tftp import TftpServer
from xprov.tftp.options import Limits
from xprov.vendors import all_templates

log = logs.get_logger("xprov.service")


class BuildError(Exception):
    """The config, templates or inventory are not usable; `problems` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def build_inputs(cfg: config.Config, generation: int) -> Inputs:
    """Templates and inventory for a validated config, built to the side of anything live."""
    problems: list[str] = []
    templates = inventory = None
    try:
        templates = Templates(cfg.templates.dirs, all_templates(), generation)
    except TemplateProblems as exc:
        problems += exc.problems
    try:
        inventory = load_file(cfg.inventory.path, generation)
    except InventoryError as exc:
        problems += exc.problems
    if problems or templates is None or inventory is None:
        raise BuildError(problems)
    return Inputs(cfg, generation, templates, inventory)


def load(path: str | Path, generation: int = 1) -> Inputs:
    """Read the config file and build everything it names; BuildError lists every problem."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        raise BuildError(exc.problems) from None
    return build_inputs(cfg, generation)


def secrets_of(inputs: Inputs) -> Iterable[str]:
    return itertools.chain(inputs.config.secrets(), inputs.inventory.secrets())


def site_order(cfg: config.Config) -> list[str]:
    order = [cfg.failover.primary, cfg.failover.backup]
    return order + sorted(set(cfg.sites) - set(order))


class Service:
    """One xprov process: the provisioning core, its listeners and the monitor."""

    def __init__(self, inputs: Inputs, reactor: Any) -> None:
        self.reactor = reactor
        self.started = time.time()
        cfg = inputs.config
        self.active = ActiveSites(cfg.sites, cfg.failover.primary)
        self.provisioner = Provisioner(inputs, self.active)
        self.tftp = self._tftp_server(cfg)
        self.pool = probe_pool(cfg)
        self.monitor = self._monitor(cfg)
        self.ports: list[IListeningPort] = []
        logs.REDACTOR.update(secrets_of(inputs))

    def start(self) -> None:
        """Bind every listener, or none: a failure closes what was opened and raises."""
        cfg = self.provisioner.inputs.config
        web = http.site(self.provisioner)
        try:
            for listen in cfg.http.listen:
                self.ports.append(self.reactor.listenTCP(listen.port, web, interface=listen.host))
            if self.tftp is not None and cfg.tftp is not None:
                for listen in cfg.tftp.listen:
                    self.ports.append(self.tftp.listen(listen))
            if cfg.admin is not None:
                api = admin.site(admin.AdminApi(cfg.admin.token, self.monitor, self.status))
                for listen in cfg.admin.listen:
                    self.ports.append(
                        self.reactor.listenTCP(listen.port, api, interface=listen.host)
                    )
        except Exception:
            self.stop()
            raise
        if self.monitor is not None:
            self.pool.start()
            self.monitor.start()
        log.info(
            "started",
            version=__version__,
            http=[str(x) for x in cfg.http.listen],
            tftp=[str(x) for x in cfg.tftp.listen] if cfg.tftp else [],
            admin=[str(x) for x in cfg.admin.listen] if cfg.admin else [],
            phones=len(self.provisioner.inputs.inventory),
            active=dict(self.active.current.active),
            monitor=self.monitor is not None,
        )

    def _tftp_server(self, cfg: config.Config) -> TftpServer | None:
        if cfg.tftp is None:
            return None
        limits = Limits(
            cfg.tftp.max_blksize, cfg.tftp.max_windowsize, cfg.tftp.timeout, cfg.tftp.retries
        )
        return TftpServer(self.provisioner, limits, cfg.tftp.max_transfers, self.reactor)

    def _monitor(self, cfg: config.Config) -> Monitor | None:
        if not cfg.monitor.enabled:
            return None
        targets = build_targets(cfg, self.reactor, self.pool)
        return Monitor(targets, self.active, site_order(cfg), cfg.monitor, self.reactor)

    def status(self) -> dict[str, Any]:
        inputs = self.provisioner.inputs
        selection = self.active.current
        return {
            "version": __version__,
            "uptime_s": round(time.time() - self.started, 1),
            "selection": {"generation": selection.generation, "active": dict(selection.active)},
            "monitor": self.monitor.status() if self.monitor else None,
            "inventory": {"phones": len(inputs.inventory), "source": inputs.inventory.source},
        }

    def stop(self) -> None:
        # The probe pool's threads are daemons: a probe stuck on a hung database ends with
        # the process instead of holding the shutdown up.
        if self.monitor is not None:
            self.monitor.stop()
        if self.tftp is not None:
            self.tftp.stop()
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
