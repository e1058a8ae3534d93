"""A reload: build to the side on the builder thread (xprov.build), then hand every service
its part of the new config on the reactor, in one place that lists them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool

from xprov import descriptors, logs
from xprov.build import BuildError, Built, build, report_fields
from xprov.guard import Policy
from xprov.inventory import Inventory
from xprov.monitor.errors import error_detail
from xprov.monitor.pool import daemon_pool
from xprov.servers import admin, http
from xprov.services.cluster import Cluster
from xprov.services.core import Core
from xprov.services.listeners import Listeners
from xprov.services.monitoring import Monitoring
from xprov.services.push import Push
from xprov.services.refresher import InventoryRefresher
from xprov.services.tftp import Tftp

log = logs.get_logger("xprov.service")
# A build and the TLS options of its `[https]` (None without it): both read files.
Prepared = tuple[Built, Any]


class ReloadCoordinator(service.Service):
    """SIGHUP, `xprov reload`: `reload()` builds, releases the listeners the new config
    drops, then `_swap` reconfigures every service, or none if the build, the descriptor
    budget or a listener's bind fails (the released listeners then listen again). One at a
    time: `running_since` (s, the reactor's clock) while one runs; another is refused.
    `reloads` counts them for the status document: {"ok": n, "failed": n, "last": {...} |
    None}."""

    def __init__(
        self,
        core: Core,
        listeners: Listeners,
        tftp: Tftp,
        monitoring: Monitoring,
        refresher: InventoryRefresher,
        admin_api: admin.AdminApi,
        cluster: Cluster,
        push: Push,
    ) -> None:
        self.core, self.listeners, self.tftp = core, listeners, tftp
        self.monitoring, self.refresher, self.admin_api = monitoring, refresher, admin_api
        self.cluster, self.push = cluster, push
        self.builder = daemon_pool("xprov-builder", 1)
        self.reloads: dict[str, Any] = {"ok": 0, "failed": 0, "last": None}
        self.config_loaded_at: float = core.reactor.seconds()
        self.running_since: float | None = None  # a reload runs (its build may hang on a file)
        self.again = False  # asked for meanwhile: one more reload when this one is over

    def startService(self) -> None:
        super().startService()
        self.builder.start()  # daemon threads: a build stuck on a database ends with us

    def reload(self) -> Deferred[dict[str, Any]]:
        """Build to the side, release the listeners the new config drops, then swap; keep
        the old state on any failure. Fires with a summary (never fails): {"ok": True,
        "config_generation", "phones", "listen"} or {"ok": False, "problems": [...]}; at
        once with the latter while another reload runs: that one is then followed by one
        more, so the file on disk after a burst of SIGHUPs is the one that serves."""
        core = self.core
        now = core.reactor.seconds()
        if self.running_since is not None:
            self.again = True
            return succeed(self._refused(now - self.running_since))
        self.running_since = now
        path = core.inputs.config.path
        log.info("reload_started", config=str(path))
        building = deferToThreadPool(
            core.reactor,
            self.builder,
            prepare,
            path,
            [core.active.current.site_of("db")],
            core.inputs.inventory,
        )
        applying = building.addCallback(self._apply)
        applying.addErrback(self._failed)
        return applying.addBoth(self._over)

    def in_progress(self) -> dict[str, float] | None:
        """The status document's `reload_in_progress`: {"since": s on the reactor's clock,
        "for_s": s} while a reload runs, else None."""
        if self.running_since is None:
            return None
        elapsed = self.core.reactor.seconds() - self.running_since
        return {"since": self.running_since, "for_s": round(elapsed, 1)}

    def _refused(self, elapsed: float) -> dict[str, Any]:
        problem = (
            f"a reload is already running since {elapsed:.0f} s; "
            "one more will follow it and read the file again"
        )
        log.warning("reload_refused", problem=problem)
        return {"ok": False, "problems": [problem]}

    def _over(self, summary: dict[str, Any]) -> dict[str, Any]:
        self.running_since = None
        if self.again:
            self.again = False
            self.reload()  # its summary is logged; nobody waits for it
        return summary

    def _apply(self, prepared: Prepared) -> Deferred[dict[str, Any]]:
        """On the reactor: the budget, then the listeners the new config drops closed (and
        their sockets with them), then the swap; a failed swap answers once the released
        listeners listen again."""
        built, tls = prepared
        budget = self.listeners.budget_for(built.inputs.config)
        if budget.fit is descriptors.Fit.SHORT:
            return succeed(self._failed(BuildError([budget.problem()])))
        swapping = self.listeners.release(built.inputs.config)
        swapping.addCallback(lambda _: self._swap(built, tls))
        swapping.addErrback(self._failed)  # whatever failed, the released ones come back
        return swapping.addCallback(
            lambda summary: self.listeners.settle().addCallback(lambda _: summary)
        )

    def _swap(self, built: Built, tls: Any = None) -> dict[str, Any]:
        """Every owner of a config key, in order (docs/architecture.md, "Config keys").
        `tls`: the new `[https]` options, read by `prepare` (None: read here). Alone (as in
        tests), it rebinds without `release`: fine while no address moves between
        listeners."""
        core = self.core
        built = built.serving_from(core.reactor.seconds())  # the inventory's age: our clock
        inputs, cfg = built.inputs, built.inputs.config
        budget = self.listeners.budget_for(cfg)
        if budget.fit is descriptors.Fit.SHORT:
            return self._failed(BuildError([budget.problem()]))
        self.tftp.prepare(cfg, budget.caps.tftp)
        try:
            self.listeners.rebind(cfg, tls)  # all or none: the last step that may fail
        except Exception as exc:
            return self._failed(exc)
        core.gate.reconfigure(Policy.of(cfg))  # the sources' budgets carry over
        self.tftp.reconfigure(cfg, budget.caps.tftp)
        core.active.reconfigure(cfg.sites, cfg.failover.primary)
        core.provisioner.use(inputs)
        self.admin_api.reconfigure(
            cfg.admin.token if cfg.admin else "",
            cfg.admin.server_names if cfg.admin else frozenset(),
        )
        self.monitoring.reconfigure(cfg)
        core.apply_logs(cfg, built.secrets)
        self.listeners.reconfigure(cfg, budget)
        self.refresher.reconfigure(cfg)
        self.push.reconfigure(cfg)
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


def prepare(path: Path, sites: list[str], previous: Inventory) -> Prepared:
    """On the builder thread: `build`, and the HTTPS certificate and key read and parsed, so
    that a reload reads no file on the reactor and a bad pair fails before any change."""
    built = build(path, sites, previous)
    https = built.inputs.config.https
    return built, http.tls_options(https) if https is not None else None
