"""The objects every service of the process shares: selection, provisioner, gate, observer,
the process's logs. Built once; a reload reconfigures them, never replaces them."""

from __future__ import annotations

from typing import Any

from xprov import config, logs
from xprov.build import Built
from xprov.guard import Gate, Policy
from xprov.inventory import Inventory
from xprov.observe import Observer
from xprov.provisioning import Inputs, Provisioner
from xprov.selection import ActiveSites
from xprov.vendors import unknown_models

log = logs.get_logger("xprov.service")


class Core:
    """The provisioning core: `active` (service -> site), `provisioner` (inputs and cache),
    `gate` (who may have a file), `observer` (counters), on one `reactor`."""

    def __init__(self, built: Built, reactor: Any, process_logs: logs.ProcessLogs | None) -> None:
        """`process_logs`: the process's log settings, which a reload and a refresh update
        (secrets, [logging]); None, as in tests: global logs are never touched."""
        cfg = built.inputs.config
        self.reactor, self.process_logs = reactor, process_logs
        self.active = ActiveSites(cfg.sites, cfg.failover.primary)
        self.provisioner = Provisioner(built.inputs, self.active)
        self.observer = Observer(reactor.seconds)
        self.gate = Gate(self.provisioner, Policy.of(cfg))
        self.model_warnings: list[str] = []  # the last `unknown_models` logged

    @property
    def inputs(self) -> Inputs:
        """What serves now: config, templates, inventory."""
        return self.provisioner.inputs

    def apply_logs(self, cfg: config.Config, secrets: dict[int, frozenset[str]]) -> None:
        """`[logging]` format, level and the secrets to redact: the process's, if it has any."""
        if self.process_logs is not None:
            self.process_logs.apply(cfg.logging.format, cfg.logging.level, secrets)

    def redact(self, secrets: dict[int, frozenset[str]]) -> None:
        """The secrets to redact, alone (an inventory refresh changes nothing else)."""
        if self.process_logs is not None:
            self.process_logs.redact(secrets)

    def warn_unknown_models(self, inventory: Inventory, refresh: bool = False) -> None:
        """An `unknown_models` warning at start and on every reload (an operator reloading
        reads what it says), and on an inventory refresh only when the list changed."""
        warnings = unknown_models(inventory.models())
        if warnings and not (refresh and warnings == self.model_warnings):
            log.warning("unknown_models", models=warnings)
        self.model_warnings = warnings
