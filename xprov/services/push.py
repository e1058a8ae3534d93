"""The push as a service (issue 18): when the monitor or an operator switches a service named
in `[push] services`, read the phones' contacts on a thread of our own, then NOTIFY each phone
at `[push] rate` (xprov.push.pusher) so it fetches its file now, not at its next poll.

In a cluster (`[cluster] mode = "etcd"`) every instance serves the decision and every
instance pushes: a phone gets at most one NOTIFY per instance per switch, and the second
fetch of a file that has not changed costs a request and nothing else (docs/
phone-redundancy.md, "Contacts and rate")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from twisted.application import service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool

from xprov import config, logs
from xprov.config import DbService
from xprov.inventory import Inventory
from xprov.monitor.errors import error_detail
from xprov.monitor.pool import daemon_pool
from xprov.push import contacts
from xprov.push.contacts import ContactList, ContactsError
from xprov.push.model import Contact, PushResult
from xprov.push.pusher import Pusher
from xprov.push.transaction import NotifySender
from xprov.services.core import Core
from xprov.vendors import VENDORS
from xprov.vendors.base import ServerOrder

if TYPE_CHECKING:
    from xprov.selection import Selection

log = logs.get_logger("xprov.push")


class Sender(Protocol):
    """The NOTIFY sender (xprov.push.transaction.NotifySender): one UDP socket."""

    def send(self, contact: Contact, event: str | None = None) -> Deferred[PushResult]: ...

    def close(self) -> Any: ...


def open_sender(reactor: Any, bind: str) -> Sender:
    """The NOTIFY socket on `bind` (an ephemeral port); raises if it cannot be bound."""
    return NotifySender(reactor, bind)


@dataclass(frozen=True)
class ContactSource:
    """Where the next push reads its contacts: `kind` "location" (usrloc `table` in the
    active db site's database) or "file" (`path`); `timeout`: s per database operation."""

    kind: str
    timeout: float
    table: str = "location"
    site: str | None = None
    db: DbService | None = None
    path: Path | None = None
    domains: frozenset[str] | None = None  # our phones' SIP domains; None: not compared

    def read(self, inventory: Inventory) -> ContactList:
        """The contacts, mapped to `inventory` (blocking: a thread). ContactsError."""
        if self.kind == "file":
            assert self.path is not None  # the config requires contacts_file with "file"
            return contacts.from_file(self.path, inventory)
        if self.db is None:
            raise ContactsError([f"site {self.site}: no [sites.{self.site}.db] to read from"])
        assert self.site is not None
        return contacts.from_location(
            self.db, self.site, self.table, self.timeout, inventory, self.domains
        )


# The SIP domain an SPA registers in with its static SRV list (vendor_templates/linksys:
# "xprov:SRV=host:port:p=0|...")
SPA_SRV_LABEL = "xprov"


class Push(service.Service):
    """Owns `[push]`: enabled (the socket opened or closed), rate (the pusher's next gap),
    bind (the socket reopened there), services (which switches push), contacts,
    contacts_file, location_table and timeout (read by the next push). One read of contacts
    at a time: a switch during a read reads again once it ends, and only the newest read is
    pushed."""

    def __init__(self, core: Core, opener: Any = None, reader: Any = None) -> None:
        """`opener(reactor, bind) -> Sender`: `open_sender`; `reader(source, inventory) ->
        Deferred[ContactList]`: `source.read` on our thread. Fakes in tests."""
        self.core = core
        self.opener = opener or open_sender
        self.reader = reader or self._read_on_thread
        self.settings: config.PushConfig | None = core.inputs.config.push
        self.pusher = Pusher(core.reactor, self._send, self.settings.rate if self.settings else 1)
        self.readers = daemon_pool("xprov-push", 1)
        self.sender: Sender | None = None
        self.sender_bind: str | None = None  # the address the open socket is bound to
        self.sender_problem: str | None = None  # why it could not be opened
        self.reading: dict[str, Any] | None = None  # {"generation", "since"} while one runs
        self.again: tuple[int, tuple[str, ...]] | None = None  # a switch during the read
        core.active.subscribe(self.switched)

    @property
    def enabled(self) -> bool:
        return self.settings is not None and self.settings.enabled

    def startService(self) -> None:
        super().startService()
        self.readers.start()  # daemon threads: a read stuck on a hung database ends with us
        if self.enabled:
            self._open()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self.pusher.cancel()
        return self._close()

    def reconfigure(self, cfg: config.Config) -> None:
        """A reload's `[push]`: rate at once; off closes the socket and cancels what is not
        sent; a new bind reopens the socket there (NOTIFYs in flight on the old one end)."""
        self.settings = cfg.push
        if cfg.push is not None:
            self.pusher.rate = cfg.push.rate
        if not self.enabled:
            self.pusher.cancel()
            self._close()
            return
        assert cfg.push is not None
        if self.running and (self.sender is None or self.sender_bind != cfg.push.bind):
            self._close()
            self._open()

    def pushes_on(self) -> tuple[str, ...]:
        """The services whose switch pushes (none while push is off)."""
        return self.settings.services if self.settings is not None and self.enabled else ()

    def contact_source(self) -> ContactSource:
        """Where a push started now would read its contacts."""
        settings = self.settings or config.PushConfig()
        if settings.contacts == "file":
            return ContactSource("file", settings.timeout, path=settings.contacts_file)
        site = self.core.active.current.site_of("db")
        sites = self.core.inputs.config.sites
        # a phone registers in its SIP server's name: a site's host, or our SPA SRV label
        domains = {s.sip.host.lower() for s in sites.values()} | {SPA_SRV_LABEL}
        return ContactSource(
            "location",
            settings.timeout,
            settings.location_table,
            site,
            sites[site].db,
            domains=frozenset(domains | set(settings.domains)),
        )

    # Switches ------------------------------------------------------------------------------

    def switched(self, old: Selection, new: Selection) -> None:
        """`core.active`'s listener: a switch of a service in `[push] services` cancels what
        the running push has not sent and starts a new one with fresh contacts."""
        moved = tuple(s for s in self.pushes_on() if old.site_of(s) != new.site_of(s))
        if not moved or not self.running:
            return
        self.pusher.cancel()
        self._read(new.generation, moved)

    def _read(self, generation: int, services: tuple[str, ...]) -> None:
        if self.reading is not None:
            # read again once this read ends: its contacts may predate the switch
            pending = self.again[1] if self.again else ()
            self.again = (generation, tuple(dict.fromkeys((*pending, *services))))
            return
        source, inventory = self.contact_source(), self.core.inputs.inventory
        self.reading = {"generation": generation, "since": self.core.reactor.seconds()}
        reading: Deferred[ContactList] = self.reader(source, inventory)
        reading.addCallbacks(
            self._read_done,
            self._read_failed,
            callbackArgs=(generation, services),
            errbackArgs=(generation, services),
        )
        reading.addBoth(self._read_over)

    def _read_on_thread(self, source: ContactSource, inventory: Inventory) -> Deferred[ContactList]:
        return deferToThreadPool(self.core.reactor, self.readers, source.read, inventory)

    def _read_done(self, found: ContactList, generation: int, services: tuple[str, ...]) -> None:
        if self.again is not None or not self.enabled or not self.running:
            log.info("push_read_dropped", generation=generation, reason="superseded or stopped")
            return
        if self.sender is None:
            self._open()  # the address may exist by now
        if self.sender is None:
            problem = f"no NOTIFY socket: {self.sender_problem}"
            self.pusher.failed(generation, services, problem)
            return
        self.pusher.start(self._changed(found, services), generation, services)

    def _changed(self, found: ContactList, services: tuple[str, ...]) -> ContactList:
        """Leave out the phones this switch changed nothing for: with phone_redundancy, a
        SIP switch leaves a vendor whose servers are in the configured order (SPA: its SRV
        list) byte for byte; a NOTIFY would only cost the rate (break-it pass)."""
        config = self.core.inputs.config
        if services != ("sip",) or not config.failover.phone_redundancy:
            return found
        configured = ServerOrder.CONFIGURED
        fixed = {name for name, vendor in VENDORS.items() if vendor.SERVER_ORDER is configured}
        kept = tuple(c for c in found.contacts if c.vendor not in fixed)
        return replace(found, contacts=kept, unchanged=len(found.contacts) - len(kept))

    def _read_failed(self, reason: Any, generation: int, services: tuple[str, ...]) -> None:
        exc = reason.value
        problem = "; ".join(exc.problems) if isinstance(exc, ContactsError) else error_detail(exc)
        if self.again is None and self.enabled and self.running:
            self.pusher.failed(generation, services, problem)

    def _read_over(self, _: Any) -> None:
        self.reading = None
        if self.again is not None:
            (generation, services), self.again = self.again, None
            if self.enabled and self.running:
                self._read(generation, services)

    # The socket ----------------------------------------------------------------------------

    def _send(self, contact: Contact) -> Deferred[PushResult]:
        if self.sender is None:  # closed by a reload while a push ran: nothing to send with
            return succeed(PushResult("unreachable", None, "no NOTIFY socket", 0))
        return self.sender.send(contact)

    def _open(self) -> None:
        assert self.settings is not None
        bind = self.settings.bind
        try:
            self.sender = self.opener(self.core.reactor, bind)
        except Exception as exc:  # CannotListenError: an address this host does not have
            self.sender, self.sender_bind = None, None
            self.sender_problem = f"cannot bind {bind}: {error_detail(exc)}"
            log.error("push_socket_failed", bind=bind, problem=self.sender_problem)
            return
        self.sender_bind, self.sender_problem = bind, None
        log.info("push_socket_opened", bind=bind)

    def _close(self) -> Deferred[None]:
        """Close the socket; the NOTIFYs still in flight on it are given up once it is
        closed (each an error)."""
        sender, self.sender, self.sender_bind = self.sender, None, None
        if sender is None:
            return succeed(None)
        self.pusher.cancel()  # nothing more goes out through a closing socket
        on_it = self.pusher.in_flight()
        closing = maybeDeferred(sender.close)
        closing.addErrback(
            lambda reason: log.warning("push_close_failed", error=error_detail(reason))
        )
        return closing.addBoth(lambda _: self.pusher.give_up(on_it))

    # Status --------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The status document's `push`: settings in use, the socket, the read running, and
        the last push (`last`: None before any; see PushRecord.report)."""
        settings = self.settings
        last = self.pusher.last
        return {
            "enabled": self.enabled,
            "rate": settings.rate if settings else None,
            "source": settings.contacts if settings else None,
            "services": list(self.pushes_on()),
            "socket": {"bind": self.sender_bind, "problem": self.sender_problem},
            "reading": self.reading,
            "pending": self.pusher.pending,
            "last": last.report() if last is not None else None,
        }
