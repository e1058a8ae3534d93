"""Wiring: listen, monitor, reload, refresh, stop (the inputs come from xprov.build).

Reload is build-then-swap: the new config, templates and inventory are built on a worker
thread, to the side of everything live (xprov.build); only if all of it succeeds are the
listeners rebound and the new state swapped in, on the reactor, in one step. Anything that
fails leaves the running state untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool

from xprov import __version__, config, descriptors, logs, metrics
from xprov.build import (
    BuildError,
    Built,
    build,
    load_inventory,
    next_generation,
    redaction,
    report_fields,
    site_order,
)
from xprov.guard import Gate, Policy, notices
from xprov.inventory import Inventory, InventoryError
from xprov.inventory.reads import InventoryReads, Verdict
from xprov.lag import LagMeter
from xprov.metrics import Sources as MetricSources
from xprov.monitor.errors import error_detail
from xprov.monitor.loop import Monitor, build_targets
from xprov.monitor.pool import daemon_pool, probe_pool
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites, Selection
from xprov.servers import admin, http
from xprov.servers.tftp import TftpServer
from xprov.tftp.options import Limits
from xprov.vendors import unknown_models

log = logs.get_logger("xprov.service")
# Twisted's default accept backlog is 50: a few hundred phones rebooting at once after a
# switch overflowed it and waited out SYN retransmissions (p99 2.7 s at 256 connections).
BACKLOG = 1024


class Service:
    """One xprov process: the provisioning core, its listeners, the monitor, reloads."""

    def __init__(
        self,
        built: Built,
        reactor: Any,
        limit: descriptors.Limit | None = None,
        process_logs: logs.ProcessLogs | None = None,
    ) -> None:
        """`process_logs`: the process's log settings, which this service updates on a reload
        and a refresh (its secrets, its [logging]); None, as in tests: it never touches
        them, so two services in one process leave the logs alone."""
        inputs = built.inputs
        self.process_logs = process_logs
        self.reactor = reactor
        self.started = reactor.seconds()
        self.reloads: dict[str, Any] = {"ok": 0, "failed": 0, "last": None}
        self.model_warnings: list[str] = []  # the last `unknown_models` logged
        self.running = False  # between start() and stop()
        cfg = inputs.config
        self.active = ActiveSites(cfg.sites, cfg.failover.primary)
        self.provisioner = Provisioner(inputs, self.active)
        self.observer = Observer(reactor.seconds)
        self.active.subscribe(self._switched)
        self.config_loaded_at = reactor.seconds()
        self.pool = probe_pool(cfg)
        self.builder = daemon_pool("xprov-builder", 1)  # reloads
        # Inventory refreshes: one thread per site, so a hung database's read never holds up
        # the read of the site the monitor switched to.
        self.readers = daemon_pool("xprov-inventory", len(cfg.sites))
        self.reads = InventoryReads()
        self.monitor = self._monitor(cfg)
        self.registry = metrics.registry(self._metric_sources())
        self.admin_api = admin.AdminApi(
            cfg.admin.token if cfg.admin else "",
            self.monitor,
            self.status,
            self.reload,
            self.metrics,
        )
        self.gate = Gate(self.provisioner, Policy.of(cfg))
        self.limit = limit or descriptors.current_limit()
        self.budget = descriptors.budget_of(cfg, self.limit.soft)
        self.tftp = self._tftp_server(cfg)
        self.web = self._site(cfg, tls=False)
        self.secure_web = self._site(cfg, tls=True)
        # The admin API's connections come out of the descriptor reserve: capped to it, so
        # no client of the admin port can take the monitor's descriptors.
        self.admin_web = admin.site(
            self.admin_api,
            cfg.admin.allow if cfg.admin else (),
            cfg.security.header_timeout,
            descriptors.ADMIN,
            descriptors.ADMIN,
            clock=self.reactor,
        )
        self.ports: dict[tuple[str, config.Listen, Any], IListeningPort] = {}
        self.refresher: LoopingCall | None = None
        self.lag = LagMeter(reactor)
        self.load_report = built.report
        self._apply_logs(inputs.config, built.secrets)

    def _apply_logs(self, cfg: config.Config, secrets: dict[int, frozenset[str]]) -> None:
        if self.process_logs is not None:
            self.process_logs.apply(cfg.logging.format, cfg.logging.level, secrets)

    # Start and stop ----------------------------------------------------------------

    def start(self) -> None:
        """Bind every listener, or none: a failure closes what was opened and raises."""
        cfg = self.provisioner.inputs.config
        if self.budget.fit is descriptors.Fit.SHORT:
            raise descriptors.Shortage(self.budget.problem())
        self._announce(self.budget)
        try:
            self._bind(self._wanted(cfg))
        except Exception:
            self.stop()
            raise
        self.builder.start()
        self.readers.start()
        self.lag.start()
        if self.monitor is not None:
            self.pool.start()
            self.monitor.start()
        self._schedule_refresh(cfg)
        log.info(
            "started",
            version=__version__,
            listen=self._listening(),
            phones=len(self.provisioner.inputs.inventory),
            inventory=self.provisioner.inputs.inventory.source,
            active=dict(self.active.current.active),
            monitor=self.monitor is not None,
            policy=notices(cfg, self.provisioner.inputs.inventory),
            **report_fields(self.load_report),
        )
        self._warn_unknown_models(self.provisioner.inputs.inventory)
        self.running = True

    def _warn_unknown_models(self, inventory: Inventory, refresh: bool = False) -> None:
        """An `unknown_models` warning at start and on every reload (an operator reloading
        reads what it says), and on an inventory refresh only when the list changed."""
        warnings = unknown_models(inventory.models())
        if warnings and not (refresh and warnings == self.model_warnings):
            log.warning("unknown_models", models=warnings)
        self.model_warnings = warnings

    def stop(self) -> None:
        # The probe and builder threads are daemons: a thread stuck on a hung database ends
        # with the process instead of holding the shutdown up.
        self.running = False
        if self.monitor is not None:
            self.monitor.stop()
        self.lag.stop()
        if self.refresher is not None and self.refresher.running:
            self.refresher.stop()
        if self.tftp is not None:
            self.tftp.stop()
        ports, self.ports = self.ports, {}
        for port in ports.values():
            port.stopListening()

    def _site(self, cfg: config.Config, tls: bool) -> http.PhoneSite:
        allow = (cfg.https.allow if cfg.https else ()) if tls else cfg.http.allow
        security = cfg.security
        files = http.PhoneFiles(self.gate, self.observer, tls=tls, clock=self.reactor.seconds)
        return http.site(
            files,
            security.header_timeout,
            allow,
            self.budget.caps.https if tls else self.budget.caps.http,
            security.max_connections_per_source,
            clock=self.reactor,
        )

    def _wanted(self, cfg: config.Config) -> dict[tuple[str, config.Listen, Any], Any]:
        """Every listener the config asks for: (kind, address, what it depends on) ->
        its factory. A listener whose key changes is closed and opened again."""
        wanted: dict[tuple[str, config.Listen, Any], Any] = {
            ("http", x, None): self.web for x in cfg.http.listen
        }
        if cfg.https is not None:
            secure = http.BoundedTLSFactory(http.tls_options(cfg.https), False, self.secure_web)
            wanted.update({("https", x, cfg.https): secure for x in cfg.https.listen})
        if cfg.tftp is not None:
            wanted.update({("tftp", x, None): None for x in cfg.tftp.listen})
        if cfg.admin is not None:
            api = self.admin_web
            wanted.update({("admin", x, None): api for x in cfg.admin.listen})
        return wanted

    def _bind(self, wanted: dict[tuple[str, config.Listen, Any], Any]) -> None:
        """Open the listeners in `wanted` that are not open yet, all or none; close the
        others. A listener moving to an address another one leaves is closed first."""
        gone = [key for key in self.ports if key not in wanted]
        taking = {key[1] for key in wanted if key not in self.ports}
        first = [key for key in gone if key[1] in taking]
        for key in first:
            self.ports[key].stopListening()
        opened: list[tuple[tuple[str, config.Listen, Any], Any]] = []
        try:
            for key, factory in wanted.items():
                if key in self.ports and key not in first:
                    continue
                kind, address, _ = key
                if kind == "tftp":
                    assert self.tftp is not None
                    port = self.tftp.listen(address)
                else:
                    port = self.reactor.listenTCP(
                        address.port, factory, backlog=BACKLOG, interface=address.host
                    )
                opened.append((key, port))
        except Exception:
            for _, port in opened:
                port.stopListening()
            for key in first:  # best effort: the old listener back on its address
                with contextlib.suppress(Exception):
                    self.ports[key].startListening()
            raise
        for key in gone:
            port = self.ports.pop(key)
            if key not in first:
                port.stopListening()
        self.ports.update(opened)

    def _listening(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind, address, _ in self.ports:
            out.setdefault(kind, []).append(str(address))
        return out

    def _announce(self, budget: descriptors.Budget) -> None:
        """The descriptor budget in the log: a warning with the numbers if the caps were
        lowered to keep the reserve (phones get fewer connections than configured)."""
        fields = budget.fields()
        if self.limit.raised_from is not None:
            fields["raised_from"] = self.limit.raised_from
        if budget.fit is descriptors.Fit.LOWERED:
            log.warning(
                "descriptor_caps_lowered",
                **fields,
                fix=f"raise RLIMIT_NOFILE (LimitNOFILE=, ulimit -n) to at least {budget.needed}",
            )
        else:
            log.info("descriptors", **fields)

    def _tftp_server(self, cfg: config.Config) -> TftpServer | None:
        if cfg.tftp is None:
            return None
        return TftpServer(
            self.gate,
            _limits(cfg),
            self.budget.caps.tftp,
            self.reactor,
            self.observer,
            cfg.tftp.allow,
            cfg.security.max_tftp_per_source,
        )

    def _monitor(self, cfg: config.Config) -> Monitor | None:
        if not cfg.monitor.enabled:
            return None
        targets = build_targets(cfg, self.reactor, self.pool)
        return Monitor(targets, self.active, site_order(cfg), cfg.monitor, self.reactor)

    # Reload --------------------------------------------------------------------------

    def reload(self) -> Deferred[dict[str, Any]]:
        """SIGHUP, `xprov reload`: build to the side, then swap; keep the old state on any
        failure. Fires with a summary (never fails)."""
        path = self.provisioner.inputs.config.path
        log.info("reload_started", config=str(path))
        current = self.provisioner.inputs
        building = deferToThreadPool(
            self.reactor,
            self.builder,
            build,
            path,
            [self.active.current.site_of("db")],
            current.inventory,
        )
        return building.addCallbacks(self._swap, self._reload_failed)

    def _swap(self, built: Built) -> dict[str, Any]:
        inputs, cfg = built.inputs, built.inputs.config
        budget = descriptors.budget_of(cfg, self.limit.soft)
        if budget.fit is descriptors.Fit.SHORT:
            return self._reload_failed(BuildError([budget.problem()]))
        if self.tftp is None and cfg.tftp is not None:
            self.tftp = self._tftp_server(cfg)
        try:
            self._bind(self._wanted(cfg))
        except Exception as exc:
            return self._reload_failed(exc)
        self.gate.reconfigure(Policy.of(cfg))  # the sources' budgets carry over
        self.budget = budget
        for web, allow, cap in (
            (self.web, cfg.http.allow, budget.caps.http),
            (self.secure_web, cfg.https.allow if cfg.https else (), budget.caps.https),
        ):
            web.allow = tuple(allow)
            web.set_header_timeout(cfg.security.header_timeout)
            web.max_connections = cap
            web.per_source = cfg.security.max_connections_per_source
        if self.tftp is not None and cfg.tftp is not None:
            self.tftp.limits, self.tftp.max_transfers = _limits(cfg), budget.caps.tftp
            self.tftp.allow, self.tftp.per_source = cfg.tftp.allow, cfg.security.max_tftp_per_source
        self.active.reconfigure(cfg.sites, cfg.failover.primary)
        self.readers.adjustPoolsize(maxthreads=len(cfg.sites))
        self.provisioner.inputs = inputs
        self.admin_api.token = admin.bearer(cfg.admin.token if cfg.admin else "")
        self.admin_web.allow = tuple(cfg.admin.allow) if cfg.admin else ()
        self.admin_web.set_header_timeout(cfg.security.header_timeout)
        self._reconfigure_monitor(cfg)
        self._apply_logs(cfg, built.secrets)
        self._announce(budget)
        self._schedule_refresh(cfg)
        self.config_loaded_at = self.reactor.seconds()
        self.reloads["ok"] += 1
        self.reloads["last"] = {"at": self.reactor.seconds(), "ok": True}
        summary = {
            "ok": True,
            "config_generation": inputs.config_generation,
            "phones": len(inputs.inventory),
            "listen": self._listening(),
        }
        log.info("reloaded", **summary, **report_fields(built.report))
        self._warn_unknown_models(inputs.inventory)
        return summary

    def _reconfigure_monitor(self, cfg: config.Config) -> None:
        """A reload's [monitor] and sites: `enabled` turned off stops the monitor, turned on
        starts one (once the service runs); else new targets and settings, each unchanged
        target keeping its state. The probe pool follows the number of databases."""
        self.pool.adjustPoolsize(maxthreads=probe_pool(cfg).max)  # a pool not started: free
        if not cfg.monitor.enabled:
            if self.monitor is not None:
                self.monitor.stop()
                log.info("monitor_stopped", reason="[monitor] enabled = false")
            self.monitor = self.admin_api.monitor = None
            return
        if self.monitor is not None:
            targets = build_targets(cfg, self.reactor, self.pool)
            self.monitor.reconfigure(targets, site_order(cfg), cfg.monitor)
            return
        self.monitor = self.admin_api.monitor = self._monitor(cfg)
        if self.running and self.monitor is not None:
            if not self.pool.started:
                self.pool.start()
            self.monitor.start()
            log.info("monitor_started", reason="[monitor] enabled = true")

    def _reload_failed(self, reason: Any) -> dict[str, Any]:
        exc = getattr(reason, "value", reason)
        problems = exc.problems if isinstance(exc, BuildError) else [error_detail(exc)]
        self.reloads["failed"] += 1
        self.reloads["last"] = {"at": self.reactor.seconds(), "ok": False, "problems": problems}
        log.error("reload_failed", problems=problems, keeping="the running configuration")
        return {"ok": False, "problems": problems}

    def _switched(self, old: Selection, new: Selection) -> None:
        self.observer.convergence.switched(new.generation, self.reactor.seconds())
        database_moved = old.site_of("db") != new.site_of("db")
        if database_moved and self.provisioner.inputs.config.inventory.source == "mysql":
            self.refresh_inventory()  # read the newly active database now, not at the next tick

    # MySQL inventory refresh -----------------------------------------------------------

    def _schedule_refresh(self, cfg: config.Config) -> None:
        if self.refresher is not None and self.refresher.running:
            self.refresher.stop()
        self.refresher = None
        if cfg.inventory.source == "mysql":
            self.refresher = LoopingCall(self.refresh_inventory)
            self.refresher.clock = self.reactor
            self.refresher.start(cfg.inventory.refresh, now=False)

    def refresh_inventory(self) -> Deferred[bool]:
        """Reload the phones from the database of the active db site (on a thread of its
        own: a hung read of another site never delays it); the last good snapshot keeps
        serving if that fails. Fires with whether the new inventory now serves."""
        site = self.active.current.site_of("db")
        ticket = self.reads.begin(site)
        if ticket is None:
            return succeed(False)  # this site's read is still running: its answer will do
        current = self.provisioner.inputs
        generation = next_generation()

        def work() -> tuple[Inventory, Any, dict[int, frozenset[str]]]:
            inventory, report = load_inventory(
                current.config, generation, [site], current.inventory
            )
            return inventory, report, redaction(current.config, inventory)

        def swap(result: tuple[Inventory, Any, dict[int, frozenset[str]]]) -> bool:
            inventory, report, secrets = result
            verdict = self.reads.end(site, ticket, self.active.current.site_of("db"))
            if verdict is not Verdict.APPLY:
                log.info("inventory_read_dropped", site=site, reason=verdict.value)
                return False
            live = self.provisioner.inputs
            if live.config_generation != current.config_generation:
                return False  # a reload replaced the config meanwhile: its inventory wins
            self.reads.applying(ticket)
            self.provisioner.inputs = dataclasses.replace(live, inventory=inventory)
            self._apply_logs(live.config, secrets)
            log.info(
                "inventory_refreshed",
                source=inventory.source,
                phones=len(inventory),
                generation=inventory.generation,
                **report_fields(report),
            )
            self._warn_unknown_models(inventory, refresh=True)
            return True

        def failed(reason: Any) -> bool:
            self.reads.end(site, ticket, self.active.current.site_of("db"))
            exc = reason.value
            problems = exc.problems if isinstance(exc, InventoryError) else [error_detail(exc)]
            log.warning(
                "inventory_refresh_failed",
                site=site,
                problems=problems,
                keeping=f"snapshot generation {current.inventory.generation}",
            )
            return False

        running = deferToThreadPool(self.reactor, self.readers, work)
        return running.addCallbacks(swap, failed)

    # Status ----------------------------------------------------------------------------

    def convergence_report(self) -> dict[str, Any]:
        selection = self.active.current
        poll = self.provisioner.inputs.config.provisioning.poll_seconds
        return self.observer.convergence.report(selection.generation, self.reactor.seconds(), poll)

    def status(self) -> dict[str, Any]:
        inputs = self.provisioner.inputs
        selection = self.active.current
        return {
            "version": __version__,
            "uptime_s": round(self.reactor.seconds() - self.started, 1),
            "config": {
                "path": str(inputs.config.path),
                "generation": inputs.config_generation,
                "loaded_at": self.config_loaded_at,
                "templates_generation": inputs.templates.generation,
                "reloads": self.reloads,
            },
            "inventory": {
                "source": inputs.inventory.source,
                "phones": len(inputs.inventory),
                "generation": inputs.inventory.generation,
                "loaded_at": inputs.inventory.loaded_at,
                "age_s": round(time.time() - inputs.inventory.loaded_at, 1),
            },
            "selection": {"generation": selection.generation, "active": dict(selection.active)},
            "monitor": self.monitor.status() if self.monitor else None,
            "convergence": self.convergence_report(),
            "listen": self._listening(),
            "descriptors": self._descriptors(),
            "reactor_lag": {
                "max_s": round(self.lag.max_s, 4),
                "last_minute_max_s": round(self.lag.recent_max_s(), 4),
            },
        }

    def _descriptors(self) -> dict[str, Any]:
        """The budget, and the descriptors phones hold now (each kind stops at its cap)."""
        held = {
            "http": len(self.web.channels),
            "https": len(self.secure_web.channels),
            "tftp": self.tftp.ports_open if self.tftp is not None else 0,
        }
        return {**self.budget.fields(), "held": {k: held[k] for k in self.budget.caps.fields()}}

    def metrics(self) -> bytes:
        return metrics.exposition(self.registry)

    def _metric_sources(self) -> MetricSources:
        """Looked up at each scrape: a reload replaces the objects behind these."""
        return MetricSources(
            observer=lambda: self.observer,
            gate=lambda: self.gate,
            provisioner=lambda: self.provisioner,
            tftp=lambda: self.tftp,
            monitor=lambda: self.monitor,
            active=lambda: self.active,
            convergence=self.convergence_report,
            lag=lambda: self.lag.recent_max_s(),
            now=self.reactor.seconds,  # the service's one clock (time.time on a real reactor)
        )


def _limits(cfg: config.Config) -> Limits:
    assert cfg.tftp is not None
    return Limits(cfg.tftp.max_blksize, cfg.tftp.max_windowsize, cfg.tftp.timeout, cfg.tftp.retries)
