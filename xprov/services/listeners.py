"""The listeners: the phones' HTTP and HTTPS sites, the admin site, the TFTP ports, bound
all or none, and the descriptor budget that caps each kind of connection."""

from __future__ import annotations

import contextlib
from typing import Any, cast

from twisted.application import service
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IListeningPort

from xprov import config, descriptors, logs
from xprov.servers import admin, http
from xprov.services.core import Core
from xprov.services.tftp import Tftp

log = logs.get_logger("xprov.service")
# Twisted's default accept backlog is 50: a few hundred phones rebooting at once after a
# switch overflowed it and waited out SYN retransmissions (p99 2.7 s at 256 connections).
BACKLOG = 1024

# (kind, address, what it depends on): a listener whose key changes is closed and reopened.
Key = tuple[str, config.Listen, Any]


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
        self.ports: dict[Key, IListeningPort] = {}

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
        ports, self.ports = self.ports, {}
        for port in ports.values():
            port.stopListening()

    def budget_for(self, cfg: config.Config) -> descriptors.Budget:
        """The budget `cfg` would have under this process's descriptor limit."""
        return descriptors.budget_of(cfg, self.limit.soft)

    def rebind(self, cfg: config.Config) -> None:
        """The listeners `cfg` asks for, all or none (raises; the old ones then stay)."""
        self._bind(self._wanted(cfg))

    def reconfigure(self, cfg: config.Config, budget: descriptors.Budget) -> None:
        """A reload's bounds on the running sites, and its budget (announced)."""
        self.budget = budget
        security = cfg.security
        for web, allow, cap in (
            (self.web, cfg.http.allow, budget.caps.http),
            (self.secure_web, cfg.https.allow if cfg.https else (), budget.caps.https),
        ):
            web.reconfigure(
                allow, security.header_timeout, cap, security.max_connections_per_source
            )
        admin_allow = cfg.admin.allow if cfg.admin else ()
        self.admin_web.reconfigure(
            admin_allow, security.header_timeout, descriptors.ADMIN, descriptors.ADMIN
        )
        self.announce(budget)

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
        wanted: dict[Key, Any] = {("http", x, None): self.web for x in cfg.http.listen}
        if cfg.https is not None:
            secure = http.BoundedTLSFactory(http.tls_options(cfg.https), False, self.secure_web)
            wanted.update({("https", x, cfg.https): secure for x in cfg.https.listen})
        if cfg.tftp is not None:
            wanted.update({("tftp", x, None): None for x in cfg.tftp.listen})
        if cfg.admin is not None:
            api = self.admin_web
            wanted.update({("admin", x, None): api for x in cfg.admin.listen})
        return wanted

    def _bind(self, wanted: dict[Key, Any]) -> None:
        """Open the listeners in `wanted` that are not open yet, all or none; close the
        others. A listener moving to an address another one leaves is closed first."""
        gone = [key for key in self.ports if key not in wanted]
        taking = {key[1] for key in wanted if key not in self.ports}
        first = [key for key in gone if key[1] in taking]
        for key in first:
            self.ports[key].stopListening()
        opened: list[tuple[Key, Any]] = []
        try:
            for key, factory in wanted.items():
                if key in self.ports and key not in first:
                    continue
                kind, address, _ = key
                if kind == "tftp":
                    assert self.tftp.server is not None
                    port = self.tftp.server.listen(address)
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

    def hold_phones(self) -> None:
        """Accept no phone's connection or datagram (the admin API still answers): they
        wait in the kernel's queues until `release_phones`."""
        for (kind, _, _), port in self.ports.items():
            if kind != "admin":
                cast(FileDescriptor, port).stopReading()

    def release_phones(self) -> None:
        for (kind, _, _), port in self.ports.items():
            if kind != "admin":
                cast(FileDescriptor, port).startReading()

    def listening(self) -> dict[str, list[str]]:
        """kind ("http", "https", "tftp", "admin") -> the addresses bound."""
        out: dict[str, list[str]] = {}
        for kind, address, _ in self.ports:
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
