"""Wiring: build everything from a config, listen, stop."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IListeningPort

from xprov import __version__, config, logs
from xprov.inventory import InventoryError
from xprov.inventory.file_source import load_file
from xprov.provisioning import Inputs, Provisioner
from xprov.render import TemplateProblems, Templates
from xprov.selection import ActiveSites
from xprov.servers import http
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


class Service:
    """One xprov process: the provisioning core and its listeners on one reactor."""

    def __init__(self, inputs: Inputs, reactor: Any) -> None:
        self.reactor = reactor
        cfg = inputs.config
        self.active = ActiveSites(cfg.sites, cfg.failover.primary)
        self.provisioner = Provisioner(inputs, self.active)
        self.tftp = self._tftp_server(cfg)
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
        except Exception:
            self.stop()
            raise
        log.info(
            "started",
            version=__version__,
            http=[str(x) for x in cfg.http.listen],
            tftp=[str(x) for x in cfg.tftp.listen] if cfg.tftp else [],
            phones=len(self.provisioner.inputs.inventory),
            active=dict(self.active.current.active),
        )

    def _tftp_server(self, cfg: config.Config) -> TftpServer | None:
        if cfg.tftp is None:
            return None
        limits = Limits(
            cfg.tftp.max_blksize, cfg.tftp.max_windowsize, cfg.tftp.timeout, cfg.tftp.retries
        )
        return TftpServer(self.provisioner, limits, cfg.tftp.max_transfers, self.reactor)

    def stop(self) -> None:
        if self.tftp is not None:
            self.tftp.stop()
        ports, self.ports = self.ports, []
        for port in ports:
            port.stopListening()
