"""The monitor as a service: the probe pool and the loop that fails services over."""

from __future__ import annotations

from collections.abc import Callable

from twisted.application import service

from xprov import config, logs
from xprov.build import site_order
from xprov.monitor.loop import Monitor, build_targets
from xprov.monitor.pool import probe_pool, probe_threads
from xprov.services.core import Core

log = logs.get_logger("xprov.service")


class Monitoring(service.Service):
    """Owns `[monitor]` (enabled, interval, timeout, fall, rise, failback, hold_down,
    sip_down_codes), the sites' probe targets and the probe pool's size. `monitor` is None
    while `[monitor] enabled = false`; `on_monitor` hears of every replacement (the admin
    API's failover and failback act on the current one)."""

    def __init__(self, core: Core, on_monitor: Callable[[Monitor | None], None]) -> None:
        cfg = core.inputs.config
        self.core, self.on_monitor = core, on_monitor
        self.pool = probe_pool(cfg)
        self.monitor = self._monitor(cfg) if cfg.monitor.enabled else None
        self.resting: Monitor | None = None  # the monitor `enabled = false` stopped
        on_monitor(self.monitor)

    def startService(self) -> None:
        super().startService()
        self._start()

    def stopService(self) -> None:
        # The probe threads are daemons: one stuck on a hung database ends with the process.
        super().stopService()
        if self.monitor is not None:
            self.monitor.stop()

    def reconfigure(self, cfg: config.Config) -> None:
        """`enabled` turned off stops the monitor, turned on starts it again (once the
        service runs: the same monitor, its manual choices and counters kept); else new
        targets and settings, each unchanged target keeping its state. The probe pool
        follows the number of databases."""
        self.pool.adjustPoolsize(maxthreads=probe_threads(cfg))
        if not cfg.monitor.enabled:
            if self.monitor is not None:
                self.monitor.stop()
                self.resting = self.monitor  # its manual choices and counters, for later
                log.info("monitor_stopped", reason="[monitor] enabled = false")
            self._use(None)
            return
        monitor = self.monitor or self.resting
        if monitor is not None:
            targets = build_targets(cfg, self.core.reactor, self.pool)
            monitor.reconfigure(targets, site_order(cfg), cfg.monitor)
        if self.monitor is not None:
            return
        self._use(monitor or self._monitor(cfg))
        self.resting = None
        if self.running:
            self._start()
            log.info("monitor_started", reason="[monitor] enabled = true")

    def _start(self) -> None:
        """The probe pool (once) and the monitor's rounds, if there is a monitor."""
        if self.monitor is None:
            return
        if not self.pool.started:
            self.pool.start()
        self.monitor.start()

    def _use(self, monitor: Monitor | None) -> None:
        self.monitor = monitor
        self.on_monitor(monitor)

    def _monitor(self, cfg: config.Config) -> Monitor:
        core = self.core
        targets = build_targets(cfg, core.reactor, self.pool)
        return Monitor(targets, core.active, site_order(cfg), cfg.monitor, core.reactor)
