"""The listeners: the phones' HTTP and HTTPS sites, the admin site, the TFTP ports, bound
all or none, and the descriptor budget that caps each kind of connection."""

from __future__ import annotations

from typing import Any, cast

from twisted.application import service
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.python.failure import Failure

from xprov import config, descriptors, logs
from xprov.monitor.errors import error_detail
from xprov.servers import admin, http
from xprov.services.core import Core
from xprov.services.tftp import Tftp

log = logs.get_logger("xprov.service")
# Twisted's default accept backlog is 50: a few hundred phones rebooting at once after a
# switch overflowed it and waited out SYN retransmissions (p99 2.7 s at 256 connections).
BACKLOG = 1024

# (kind, address): a listener whose key changes is closed and reopened. HTTPS's TLS options
# are not part of it: a reload hands the open ports new ones (`http.CurrentTLS`).
Key = tuple[str, config.Listen]


class Listeners(service.Service):
    """Owns `[http]`/`[https]`/`[tftp]`/`[admin]` listen, the sites' allow-lists, deadlines
    and caps (`[security]` header_timeout, max_connections, max_connections_per_source),
    `[admin]` allow, and the descriptor budget (RLIMIT_NOFILE)."""

    def __init__(
        self,
        core: Core,
        limit: descriptors.Limit,
        budget: descriptors.Budget,
        admin_api: admin.AdminApi,
        tftp: Tftp,
    ) -> None:
        cfg = core.inputs.config
        self.core, self.reactor, self.tftp = core, core.reactor, tftp
        self.limit, self.budget = limit, budget
        self.web = self._site(cfg, tls=False)
        self.secure_web = self._site(cfg, tls=True)
        # The admin API's connections come out of the descriptor reserve: capped to it, so
        # no client of the admin port can take the monitor's descriptors.
        self.admin_web = admin.site(
            admin_api,
            cfg.admin.allow if cfg.admin else (),
            cfg.security.header_timeout,
            descriptors.ADMIN,
            descriptors.ADMIN,
            clock=self.reactor,
        )
        self.secure_tls = http.CurrentTLS(self.secure_web)  # the HTTPS ports' factory
        self.ports: dict[Key, IListeningPort] = {}
        self.factories: dict[Key, Any] = {}  # the running config's: key -> factory
        # Closed for a reload that may still fail (`release`): key -> factory, opened again
        # by `settle` unless the rebind succeeds.
        self.released: dict[Key, Any] = {}
        # stopListening's Deferreds that have not fired: a TCP or UDP port's socket is closed
        # on a later reactor turn, and its address is in use until then.
        self.closing: set[Deferred[Any]] = set()

    def startService(self) -> None:
        """Bind every listener, or none: a failure closes what was opened and raises
        (`descriptors.Shortage` if the budget cannot keep its reserve)."""
        if self.budget.fit is descriptors.Fit.SHORT:
            raise descriptors.Shortage(self.budget.problem())
        self.announce(self.budget)
        self.rebind(self.core.inputs.config)
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        self.released.clear()  # closed already; a reload that fails now brings none back
        ports, self.ports = self.ports, {}
        for port in ports.values():
            port.stopListening()

    def budget_for(self, cfg: config.Config) -> descriptors.Budget:
        """The budget `cfg` would have under this process's descriptor limit."""
        return descriptors.budget_of(cfg, self.limit.soft)

    def release(self, cfg: config.Config) -> Deferred[None]:
        """A reload's first step, on the reactor: close every listener `cfg` drops (among
        them, any whose address a new listener takes); fires once they and any earlier
        closes are done, so that their addresses are free for `rebind`. `settle` starts
        them again unless the rebind succeeds."""
        wanted = self._wanted(cfg)
        for key in [key for key in self.ports if key not in wanted]:
            self.released[key] = self.factories[key]
            self._close(self.ports.pop(key))
        return self._closed()

    def rebind(self, cfg: config.Config, tls: Any = None) -> None:
        """The listeners `cfg` asks for, all or none: opens the new ones, then closes those
        it drops (unless `release` did), and hands the HTTPS ports `tls` (the options of
        `cfg.https`, read here if None). Raises if one cannot be opened: those opened are
        closed, and the old ones stay (those released come back with `settle`)."""
        if cfg.https is not None and tls is None:
            tls = http.tls_options(cfg.https)  # may raise: before anything changes
        wanted = self._wanted(cfg)
        opened = self._open({key: f for key, f in wanted.items() if key not in self.ports})
        for key in [key for key in self.ports if key not in wanted]:
            self._close(self.ports.pop(key))
        self.ports.update(opened)
        self.factories = wanted
        self.released.clear()  # closed for good
        if cfg.https is not None:
            self.secure_tls.use(tls, cfg.https)

    def settle(self) -> Deferred[None]:
        """Fires once every close asked for is done; then the listeners a failed reload
        released listen again, each on a new socket (one that cannot, its address taken
        meanwhile, is logged and no longer listed)."""
        return self._closed().addCallback(lambda _: self._reopen_released())

    def reconfigure(self, cfg: config.Config, budget: descriptors.Budget) -> None:
        """A reload's bounds on the running sites, and its budget (announced). The open
        connections it no longer admits (their source, or the listener that accepted them,
        gone) are dismissed: else a phone's keep-alive connection kept what a reload took."""
        self.budget = budget
        security = cfg.security
        https_allow, https_listen = (cfg.https.allow, cfg.https.listen) if cfg.https else ((), ())
        for kind, web, allow, cap, listen in (
            ("http", self.web, cfg.http.allow, budget.caps.http, cfg.http.listen),
            ("https", self.secure_web, https_allow, budget.caps.https, https_listen),
        ):
            web.reconfigure(
                allow, security.header_timeout, cap, security.max_connections_per_source
            )
            self._dismiss(kind, web, listen)
        admin_allow = cfg.admin.allow if cfg.admin else ()
        self.admin_web.reconfigure(
            admin_allow, security.header_timeout, descriptors.ADMIN, descriptors.ADMIN
        )
        self._dismiss("admin", self.admin_web, cfg.admin.listen if cfg.admin else ())
        self.announce(budget)

    def _dismiss(self, kind: str, web: http.PhoneSite, listen: tuple[config.Listen, ...]) -> None:
        dismissed = web.admit_only(listen)
        if dismissed:
            log.info("connections_dismissed", kind=kind, count=dismissed)

    def _site(self, cfg: config.Config, tls: bool) -> http.PhoneSite:
        allow = (cfg.https.allow if cfg.https else ()) if tls else cfg.http.allow
        security = cfg.security
        core = self.core
        files = http.PhoneFiles(core.gate, core.observer, tls=tls, clock=self.reactor.seconds)
        return http.site(
            files,
            security.header_timeout,
            allow,
            self.budget.caps.https if tls else self.budget.caps.http,
            security.max_connections_per_source,
            clock=self.reactor,
        )

    def _wanted(self, cfg: config.Config) -> dict[Key, Any]:
        """Every listener the config asks for: its key -> its factory (None: TFTP)."""
        wanted: dict[Key, Any] = {("http", x): self.web for x in cfg.http.listen}
        if cfg.https is not None:
            wanted.update({("https", x): self.secure_tls for x in cfg.https.listen})
        if cfg.tftp is not None:
            wanted.update({("tftp", x): None for x in cfg.tftp.listen})
        if cfg.admin is not None:
            wanted.update({("admin", x): self.admin_web for x in cfg.admin.listen})
        return wanted

    def _open(self, wanted: dict[Key, Any]) -> dict[Key, IListeningPort]:
        """Every listener in `wanted`, or none: a failure closes those opened and raises."""
        opened: dict[Key, IListeningPort] = {}
        try:
            for (kind, address), factory in wanted.items():
                if kind == "tftp":
                    assert self.tftp.server is not None
                    opened[kind, address] = self.tftp.server.listen(address)
                else:
                    opened[kind, address] = self.reactor.listenTCP(
                        address.port, factory, backlog=BACKLOG, interface=address.host
                    )
        except Exception:
            for port in opened.values():
                self._close(port)
            raise
        return opened

    def _close(self, port: IListeningPort) -> None:
        """Stop listening; the socket closes on a later turn (`closing` until then)."""
        closing: Deferred[Any] = maybeDeferred(port.stopListening)
        closing.addErrback(self._close_failed)
        self.closing.add(closing)
        closing.addBoth(lambda _: self.closing.discard(closing))

    def _close_failed(self, reason: Failure) -> None:
        log.warning("listener_close_failed", error=error_detail(reason))

    def _closed(self) -> Deferred[None]:
        """Fires once every close asked for so far is done (at once if none is pending)."""
        return DeferredList(list(self.closing)).addCallback(lambda _: None)

    def _reopen_released(self) -> None:
        # Opened anew: a UDP port stopped once reads nothing if restarted (Twisted sets its
        # maxThroughput to -1 when it closes).
        released, self.released = self.released, {}
        for key, factory in released.items():
            try:
                self.ports.update(self._open({key: factory}))
            except Exception as exc:
                kind, address = key
                log.error("listener_lost", kind=kind, listen=str(address), error=error_detail(exc))

    def hold_phones(self) -> None:
        """Accept no phone's connection or datagram (the admin API still answers): they
        wait in the kernel's queues until `release_phones`."""
        for (kind, _), port in self.ports.items():
            if kind != "admin":
                cast(FileDescriptor, port).stopReading()

    def release_phones(self) -> None:
        for (kind, _), port in self.ports.items():
            if kind != "admin":
                cast(FileDescriptor, port).startReading()

    def listening(self) -> dict[str, list[str]]:
        """kind ("http", "https", "tftp", "admin") -> the addresses bound."""
        out: dict[str, list[str]] = {}
        for kind, address in self.ports:
            out.setdefault(kind, []).append(str(address))
        return out

    def announce(self, budget: descriptors.Budget) -> None:
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

    def descriptors(self) -> dict[str, Any]:
        """The budget, and the descriptors phones hold now (each kind stops at its cap)."""
        server = self.tftp.server
        held = {
            "http": len(self.web.channels),
            "https": len(self.secure_web.channels),
            "tftp": server.ports_open if server is not None else 0,
        }
        return {**self.budget.fields(), "held": {k: held[k] for k in self.budget.caps.fields()}}
