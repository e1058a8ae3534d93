"""The MySQL inventory refresh: a `LoopingCall`, and a read of the active db site's database
on a thread of that site's own."""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool

from xprov import config, logs
from xprov.build import load_inventory, next_generation, redaction, report_fields
from xprov.inventory import Inventory, InventoryError
from xprov.inventory.reads import InventoryReads, Verdict
from xprov.monitor.errors import error_detail
from xprov.monitor.pool import daemon_pool
from xprov.services.core import Core

log = logs.get_logger("xprov.service")

Read = tuple[Inventory, Any, dict[int, frozenset[str]]]  # inventory, load report, secrets


class InventoryRefresher(service.Service):
    """Owns `[inventory]` refresh (seconds between reads) and the reader threads, one per
    site, so a hung database's read never holds up the read of the site switched to."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.readers = daemon_pool("xprov-inventory", len(core.inputs.config.sites))
        self.reads = InventoryReads()
        self.loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self.readers.start()
        self._schedule(self.core.inputs.config)

    def stopService(self) -> None:
        super().stopService()
        if self.loop is not None and self.loop.running:
            self.loop.stop()

    def reconfigure(self, cfg: config.Config) -> None:
        """A reload's sites (reader threads) and `[inventory]` (the refresh rescheduled)."""
        self.readers.adjustPoolsize(maxthreads=len(cfg.sites))
        self._schedule(cfg)

    def _schedule(self, cfg: config.Config) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None
        if cfg.inventory.source == "mysql":
            self.loop = LoopingCall(self.refresh)
            self.loop.clock = self.core.reactor
            self.loop.start(cfg.inventory.refresh, now=False)

    def refresh(self) -> Deferred[bool]:
        """Reload the phones from the database of the active db site; the last good
        snapshot keeps serving if that fails. Fires with whether the new inventory now
        serves (False: failed, dropped as stale, or a read of that site still running)."""
        core = self.core
        site = core.active.current.site_of("db")
        ticket = self.reads.begin(site)
        if ticket is None:
            return succeed(False)  # this site's read is still running: its answer will do
        current = core.inputs
        generation = next_generation()

        def work() -> Read:
            inventory, report = load_inventory(
                current.config, generation, [site], current.inventory
            )
            return inventory, report, redaction(current.config, inventory)

        def swap(result: Read) -> bool:
            inventory, report, secrets = result
            verdict = self.reads.end(site, ticket, core.active.current.site_of("db"))
            if verdict is not Verdict.APPLY:
                log.info("inventory_read_dropped", site=site, reason=verdict.value)
                return False
            live = core.inputs
            if live.config_generation != current.config_generation:
                return False  # a reload replaced the config meanwhile: its inventory wins
            self.reads.applying(ticket)
            inventory = inventory.serving_from(core.reactor.seconds())  # on our clock
            core.provisioner.use(dataclasses.replace(live, inventory=inventory))
            core.redact(secrets)
            log.info(
                "inventory_refreshed",
                source=inventory.source,
                phones=len(inventory),
                generation=inventory.generation,
                **report_fields(report),
            )
            core.warn_unknown_models(inventory, refresh=True)
            return True

        def failed(reason: Any) -> bool:
            self.reads.end(site, ticket, core.active.current.site_of("db"))
            exc = reason.value
            problems = exc.problems if isinstance(exc, InventoryError) else [error_detail(exc)]
            log.warning(
                "inventory_refresh_failed",
                site=site,
                problems=problems,
                keeping=f"snapshot generation {current.inventory.generation}",
            )
            return False

        running = deferToThreadPool(core.reactor, self.readers, work)
        return running.addCallbacks(swap, failed)
