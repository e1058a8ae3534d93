"""A reload: build to the side on the builder thread (xprov.build), then hand every service
its part of the new config on the reactor, in one place that lists them all."""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from xprov import descriptors, logs
from xprov.build import BuildError, Built, build, report_fields
from xprov.guard import Policy
from xprov.monitor.errors import error_detail
from xprov.monitor.pool import daemon_pool
from xprov.servers import admin
from xprov.services.cluster import Cluster
from xprov.services.core import Core
from xprov.services.listeners import Listeners
from xprov.services.monitoring import Monitoring
from xprov.services.refresher import InventoryRefresher
from xprov.services.tftp import Tftp

log = logs.get_logger("xprov.service")


class ReloadCoordinator(service.Service):
    """SIGHUP, `xprov reload`: `reload()` builds, then `_swap` reconfigures every service, or
    none if the build, the descriptor budget or a listener's bind fails. `reloads` counts
    them for the status document: {"ok": n, "failed": n, "last": {...} | None}."""

    def __init__(
        self,
        core: Core,
        listeners: Listeners,
        tftp: Tftp,
        monitoring: Monitoring,
        refresher: InventoryRefresher,
        admin_api: admin.AdminApi,
        cluster: Cluster,
    ) -> None:
        self.core, self.listeners, self.tftp = core, listeners, tftp
        self.monitoring, self.refresher, self.admin_api = monitoring, refresher, admin_api
        self.cluster = cluster
        self.builder = daemon_pool("xprov-builder", 1)
        self.reloads: dict[str, Any] = {"ok": 0, "failed": 0, "last": None}
        self.config_loaded_at: float = core.reactor.seconds()

    def startService(self) -> None:
        super().startService()
        self.builder.start()  # daemon threads: a build stuck on a database ends with us

    def reload(self) -> Deferred[dict[str, Any]]:
        """Build to the side, then swap; keep the old state on any failure. Fires with a
        summary (never fails): {"ok": True, "config_generation", "phones", "listen"} or
        {"ok": False, "problems": [...]}."""
        core = self.core
        path = core.inputs.config.path
        log.info("reload_started", config=str(path))
        building = deferToThreadPool(
            core.reactor,
            self.builder,
            build,
            path,
            [core.active.current.site_of("db")],
            core.inputs.inventory,
        )
        return building.addCallbacks(self._swap, self._failed)

    def _swap(self, built: Built) -> dict[str, Any]:
        """Every owner of a config key, in order (docs/architecture.md, "Config keys")."""
        core = self.core
        built = built.serving_from(core.reactor.seconds())  # the inventory's age: our clock
        inputs, cfg = built.inputs, built.inputs.config
        budget = self.listeners.budget_for(cfg)
        if budget.fit is descriptors.Fit.SHORT:
            return self._failed(BuildError([budget.problem()]))
        self.tftp.prepare(cfg, budget.caps.tftp)
        try:
            self.listeners.rebind(cfg)  # all or none: the last step that may fail
        except Exception as exc:
            return self._failed(exc)
        core.gate.reconfigure(Policy.of(cfg))  # the sources' budgets carry over
        self.tftp.reconfigure(cfg, budget.caps.tftp)
        core.active.reconfigure(cfg.sites, cfg.failover.primary)
        core.provisioner.use(inputs)
        self.admin_api.reconfigure(cfg.admin.token if cfg.admin else "")
        self.monitoring.reconfigure(cfg)
        core.apply_logs(cfg, built.secrets)
        self.listeners.reconfigure(cfg, budget)
        self.refresher.reconfigure(cfg)
        restart_pending = self.cluster.reconfigure(cfg)  # [cluster]: at the next start
        self.config_loaded_at = core.reactor.seconds()
        self.reloads["ok"] += 1
        self.reloads["last"] = {"at": core.reactor.seconds(), "ok": True}
        summary = {
            "ok": True,
            "config_generation": inputs.config_generation,
            "phones": len(inputs.inventory),
            "listen": self.listeners.listening(),
            "restart_pending": restart_pending,
        }
        log.info("reloaded", **summary, **report_fields(built.report))
        core.warn_unknown_models(inputs.inventory)
        return summary

    def _failed(self, reason: Any) -> dict[str, Any]:
        exc = getattr(reason, "value", reason)
        problems = exc.problems if isinstance(exc, BuildError) else [error_detail(exc)]
        self.reloads["failed"] += 1
        self.reloads["last"] = {
            "at": self.core.reactor.seconds(),
            "ok": False,
            "problems": problems,
        }
        log.error("reload_failed", problems=problems, keeping="the running configuration")
        return {"ok": False, "problems": problems}
