"""One xprov process as a `twisted.application` service tree (the inputs come from
xprov.build; the children are in xprov.services).

Reload is build-then-swap: the new config, templates and inventory are built on a worker
thread, to the side of everything live; only if all of it succeeds are the listeners
rebound and each service handed its new config, on the reactor, in one step
(`ReloadCoordinator._swap`), after the listeners it drops have closed. Anything that fails
leaves the running state untouched. One reload runs at a time.
"""

from __future__ import annotations

from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred

from xprov import __version__, descriptors, logs, metrics
from xprov.build import Built, report_fields
from xprov.guard import notices
from xprov.lag import LagMeter
from xprov.metrics import Sources as MetricSources
from xprov.monitor import registry
from xprov.selection import Selection
from xprov.servers import admin
from xprov.services.cluster import Cluster
from xprov.services.core import Core
from xprov.services.listeners import Listeners
from xprov.services.monitoring import Monitoring
from xprov.services.push import Push
from xprov.services.refresher import InventoryRefresher
from xprov.services.reload import ReloadCoordinator
from xprov.services.tftp import Tftp

log = logs.get_logger("xprov.service")


class Service(service.MultiService):
    """One xprov process: the shared `core`, the admin API, and the children `listeners`,
    `tftp`, `push`, `cluster`, `monitoring`, `refresher`, `reloader` (started in that order,
    stopped in the reverse)."""

    def __init__(
        self,
        built: Built,
        reactor: Any,
        limit: descriptors.Limit | None = None,
        process_logs: logs.ProcessLogs | None = None,
    ) -> None:
        """`process_logs`: the process's log settings, applied once by the command line
        before it builds the service; the service updates them on a reload and a refresh
        (its secrets, its [logging]). None, as in tests: it never touches them, so two
        services in one process leave the logs alone."""
        super().__init__()
        cfg = built.inputs.config
        self.reactor, self.started = reactor, reactor.seconds()
        self.core = core = Core(built.serving_from(self.started), reactor, process_logs)
        core.active.subscribe(self._switched)
        self.files_generation = core.active.current.generation  # of the last switch of files
        self.admin_api = admin.AdminApi(
            cfg.admin.token if cfg.admin else "",
            None,
            self.status,
            self.reload,
            self.metrics,
            cfg.admin.server_names if cfg.admin else frozenset(),
        )
        limit = limit or descriptors.current_limit()
        budget = descriptors.budget_of(cfg, limit.soft)
        self.monitoring = Monitoring(core, self.admin_api.use_monitor)
        self.tftp = Tftp(core, budget.caps.tftp)
        self.listeners = Listeners(core, limit, budget, self.admin_api, self.tftp)
        self.refresher = InventoryRefresher(core)
        self.push = Push(core)  # NOTIFYs after a switch ([push])
        self.cluster = Cluster(
            cfg.cluster,
            lambda: self.monitoring.monitor,
            reactor,
            "instance",
            lambda: core.inputs.inventory.content_hash,
            self.admin_api.use_cluster,
        )
        self.reloader = ReloadCoordinator(
            core,
            self.listeners,
            self.tftp,
            self.monitoring,
            self.refresher,
            self.admin_api,
            self.cluster,
            self.push,
        )
        # the cluster before the monitor: no round may be judged by the standalone rule; the
        # push's socket before either: the cluster's first decision may be a switch
        children = (
            self.listeners,
            self.tftp,
            self.push,
            self.cluster,
            self.monitoring,
            self.refresher,
            self.reloader,
        )
        for child in children:
            child.setServiceParent(self)
        self.registry = metrics.registry(self._metric_sources())
        self.lag = LagMeter(reactor)
        self.load_report = built.report

    def startService(self) -> None:
        """Bind every listener, or none (a failure stops what started and raises), then
        start the threads, the monitor and the refresh."""
        try:
            super().startService()
        except Exception:
            self.stopService()
            raise
        self.lag.start()
        node = self.cluster.node
        if node is not None:
            # phones wait until the decisions are read: a restarted instance never serves
            # the primary where the cluster chose another site
            held = self.reactor.seconds()
            self.listeners.hold_phones()
            node.when_known(lambda: self._release_phones(held))
        inputs = self.core.inputs
        log.info(
            "started",
            version=__version__,
            listen=self.listeners.listening(),
            phones=len(inputs.inventory),
            inventory=inputs.inventory.source,
            active=dict(self.core.active.current.active),
            monitor=self.monitoring.monitor is not None,
            policy=notices(inputs.config, inputs.inventory),
            **report_fields(self.load_report),
        )
        self.core.warn_unknown_models(inputs.inventory)

    def _release_phones(self, held: float) -> None:
        self.listeners.release_phones()
        log.info(
            "phones_released",
            held_s=round(self.reactor.seconds() - held, 3),
            active=dict(self.core.active.current.active),
        )

    def stopService(self) -> Deferred[None]:
        self.lag.stop()
        return super().stopService()

    def reload(self) -> Deferred[dict[str, Any]]:
        """SIGHUP, `xprov reload`: see `ReloadCoordinator.reload`."""
        return self.reloader.reload()

    def _switched(self, old: Selection, new: Selection) -> None:
        core = self.core
        if any(old.site_of(s) != new.site_of(s) for s in registry.template_services()):
            # phones' files changed: convergence counts who fetched them (a db switch
            # changes no file, so it starts no count that could never complete)
            self.files_generation = new.generation
            core.observer.convergence.switched(new.generation, self.reactor.seconds())
        database_moved = old.site_of("db") != new.site_of("db")
        if database_moved and core.inputs.config.inventory.source == "mysql":
            self.refresher.refresh()  # read the newly active database now, not at the next tick

    # Status ----------------------------------------------------------------------------

    def convergence_report(self) -> dict[str, Any]:
        poll = self.core.inputs.config.provisioning.poll_seconds
        return self.core.observer.convergence.report(
            self.files_generation, self.reactor.seconds(), poll
        )

    def status(self) -> dict[str, Any]:
        inputs = self.core.inputs
        selection = self.core.active.current
        monitor = self.monitoring.monitor
        admin = inputs.config.admin
        return {
            "now": self.reactor.seconds(),
            "version": __version__,
            "uptime_s": round(self.reactor.seconds() - self.started, 1),
            "page": {"refresh_s": admin.page_refresh if admin is not None else None},
            "config": {
                "path": str(inputs.config.path),
                "generation": inputs.config_generation,
                "loaded_at": self.reloader.config_loaded_at,
                "templates_generation": inputs.templates.generation,
                "reloads": self.reloader.reloads,
                "reload_in_progress": self.reloader.in_progress(),
            },
            "inventory": {
                "source": inputs.inventory.source,
                "phones": len(inputs.inventory),
                "generation": inputs.inventory.generation,
                "loaded_at": inputs.inventory.loaded_at,
                "age_s": round(self.reactor.seconds() - inputs.inventory.loaded_at, 1),
                "content_hash": inputs.inventory.content_hash,
            },
            "selection": {"generation": selection.generation, "active": dict(selection.active)},
            "monitor": monitor.status() if monitor else None,
            "cluster": self.cluster.status(),
            "restart_pending": self.cluster.restart_pending,
            "convergence": self.convergence_report(),
            "push": self.push.status(),
            "listen": self.listeners.listening(),
            "descriptors": self.listeners.descriptors(),
            "reactor_lag": {
                "max_s": round(self.lag.max_s, 4),
                "last_minute_max_s": round(self.lag.recent_max_s(), 4),
            },
        }

    def metrics(self) -> bytes:
        return metrics.exposition(self.registry)

    def _metric_sources(self) -> MetricSources:
        """Looked up at each scrape: a reload replaces the objects behind some of these."""
        core = self.core
        return MetricSources(
            observer=lambda: core.observer,
            gate=lambda: core.gate,
            provisioner=lambda: core.provisioner,
            tftp=lambda: self.tftp.server,
            monitor=lambda: self.monitoring.monitor,
            active=lambda: core.active,
            convergence=self.convergence_report,
            lag=lambda: self.lag.recent_max_s(),
            now=self.reactor.seconds,  # the service's one clock (time.time on a real reactor)
            cluster=self.cluster.status,
            push=lambda: self.push.pusher,
        )
