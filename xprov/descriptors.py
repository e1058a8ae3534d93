"""The file-descriptor budget: phones never get the descriptors the monitor needs.

Every HTTP(S) connection and every TFTP transfer port is a descriptor, and at the process's
RLIMIT_NOFILE every further socket fails with EMFILE: an accept, a probe's socket, a
database connection, a template file. Phones therefore get at most `limit - reserve`
descriptors in all. At start the soft limit is raised to the hard one (as servers do:
systemd's default soft limit of 1,024 is for select(), which the epoll reactor does not
use); if the caps that hold phones' descriptors (`[security] max_connections` for the HTTP
listeners, the same again for the HTTPS ones: each kind has its own, and
`[tftp] max_transfers`) do not fit in what is left after the reserve, they are lowered in
proportion and the start says so with the numbers. The caps then hold exactly: a PhoneSite
counts a connection until its socket is closed, the TFTP server a transfer port until its
socket is closed, so phones stop getting descriptors before the process holds
`limit - reserve` of theirs.

Pure arithmetic, but `raise_soft_limit` and `current_limit`, which ask the kernel.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Any

from xprov.config import Config

# The reserve: what the process holds or may open at once besides phones' descriptors.
# Measured at rest (`ls /proc/PID/fd`): 9 of PROCESS's, one per listener, one per probe
# socket in flight.
PROCESS = 16  # stdin, stdout, stderr (3); epoll (1); Twisted's two wake-up pipes (4);
#   the descriptor Twisted keeps to shed a connection at EMFILE (1); a refused connection
#   between its accept and its close (1); the builder thread's one file at a time (config,
#   template, certificate, inventory file) (1); spare for the libraries (5)
RESOLVER = 2 * 10  # Twisted's reactor pool (10 threads) resolving host names: a socket
#   and a file each
ADMIN = 16  # admin API connections at once (operators' commands, a Prometheus scraper):
#   the admin listeners' own cap in all (a connection beyond it is closed at once)
PER_LISTENER = 1  # every listening socket: HTTP, HTTPS, TFTP, admin
PER_PROBE = 2  # a SIP or STUN probe's socket, and the last round's (a UDP port is closed
#   one reactor turn after its verdict)
TFTP_CLOSING = 16  # transfer ports whose transfer was evicted in this reactor turn and whose
#   socket closes in the next: the requests that evicted them may open theirs first
PER_DATABASE = 6  # the probe's kept connection (1); new connections while a round hangs,
#   one per thread of the probe pool (4 per database); the inventory load or refresh (1)


class Shortage(RuntimeError):
    """RLIMIT_NOFILE leaves phones not one descriptor per kind of listener after the
    reserve (the message says the numbers)."""


class Fit(Enum):
    """How the configured caps fit the descriptor limit."""

    FITS = "fits"
    LOWERED = "lowered"  # lowered in proportion so that the reserve holds
    SHORT = "short"  # not one descriptor per kind left after the reserve: refuse to start


@dataclass(frozen=True)
class Caps:
    """Descriptors phones may hold, per kind of listener; 0: the kind has no listener."""

    http: int
    https: int
    tftp: int

    @property
    def total(self) -> int:
        return self.http + self.https + self.tftp

    @property
    def kinds(self) -> int:
        return sum(1 for cap in (self.http, self.https, self.tftp) if cap > 0)

    def fields(self) -> dict[str, int]:
        """The kinds that have listeners, for logs and status."""
        every = {"http": self.http, "https": self.https, "tftp": self.tftp}
        return {kind: cap for kind, cap in every.items() if cap > 0}


@dataclass(frozen=True)
class Budget:
    limit: int  # RLIMIT_NOFILE's soft limit the process runs with
    reserve: int  # kept for everything but phones
    wanted: Caps  # as configured
    caps: Caps  # in force: `wanted`, or lowered so that caps.total <= limit - reserve
    fit: Fit

    @property
    def room(self) -> int:
        """Descriptors phones may hold in all."""
        return self.limit - self.reserve

    @property
    def needed(self) -> int:
        """The smallest limit under which nothing is lowered."""
        return self.wanted.total + self.reserve

    def fields(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "reserve": self.reserve,
            "phones": self.room,
            "wanted": self.wanted.fields(),
            "caps": self.caps.fields(),
            "needed": self.needed,
        }

    def problem(self) -> str:
        """Why a SHORT budget refuses to start."""
        return (
            f"RLIMIT_NOFILE is {self.limit}: after the reserve of {self.reserve} descriptors "
            f"(monitor, inventory, listeners, logs) phones would get {max(0, self.room)}, "
            f"fewer than one per kind of listener ({self.wanted.kinds}); raise it "
            f"(LimitNOFILE=, ulimit -n) to at least {self.needed}"
        )


def reserve(listeners: int, probes: int, databases: int) -> int:
    """Descriptors kept from phones: the process's own, the resolver's, the admin API's,
    and those of `listeners` listening sockets, `probes` SIP and STUN targets and
    `databases` databases."""
    return (
        PROCESS
        + RESOLVER
        + ADMIN
        + listeners * PER_LISTENER
        + probes * PER_PROBE
        + databases * PER_DATABASE
    )


def reserve_of(cfg: Config) -> int:
    """The reserve for what `cfg` listens on and probes."""
    listeners = len(cfg.http.listen)
    listeners += len(cfg.https.listen) if cfg.https else 0
    listeners += len(cfg.tftp.listen) if cfg.tftp else 0
    listeners += len(cfg.admin.listen) if cfg.admin else 0
    sites = cfg.sites.values()
    probes = sum(1 + (site.stun is not None) for site in sites)
    databases = sum(1 for site in sites if site.db is not None)
    closing = TFTP_CLOSING if cfg.tftp and cfg.tftp.listen else 0
    return reserve(listeners, probes, databases) + closing


def wanted_caps(cfg: Config) -> Caps:
    """The caps as configured, for the kinds `cfg` listens on."""
    cap = cfg.security.max_connections
    return Caps(
        http=cap if cfg.http.listen else 0,
        https=cap if cfg.https and cfg.https.listen else 0,
        tftp=cfg.tftp.max_transfers if cfg.tftp and cfg.tftp.listen else 0,
    )


def plan(limit: int, reserve: int, wanted: Caps) -> Budget:
    """The caps in force under `limit` when `reserve` descriptors are kept from phones."""
    room = limit - reserve
    if wanted.total <= room:
        return Budget(limit, reserve, wanted, wanted, Fit.FITS)
    if room < wanted.kinds:
        return Budget(limit, reserve, wanted, Caps(0, 0, 0), Fit.SHORT)
    return Budget(limit, reserve, wanted, _lowered(wanted, room), Fit.LOWERED)


def _lowered(wanted: Caps, room: int) -> Caps:
    """Each kind keeps one descriptor and shares the rest of `room` in proportion to what
    it asked beyond that one; shares are rounded down, so their sum never exceeds `room`
    and no kind gets more than it asked (room < wanted.total)."""
    extra, asked = room - wanted.kinds, wanted.total - wanted.kinds

    def share(cap: int) -> int:
        return 0 if cap == 0 else 1 + (cap - 1) * extra // asked

    return Caps(share(wanted.http), share(wanted.https), share(wanted.tftp))


def budget_of(cfg: Config, limit: int) -> Budget:
    return plan(limit, reserve_of(cfg), wanted_caps(cfg))


# Asking the kernel ------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    soft: int  # in force (sys.maxsize for "unlimited")
    hard: int
    raised_from: int | None = None  # the soft limit before `raise_soft_limit`, if it raised it


def current_limit() -> Limit:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return Limit(_finite(soft), _finite(hard))


def raise_soft_limit() -> Limit:
    """RLIMIT_NOFILE's soft limit raised to the hard limit, if it is lower and the kernel
    agrees; the limit in force either way."""
    before = current_limit()
    if before.soft >= before.hard or before.hard == sys.maxsize:
        return before
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (before.hard, before.hard))
    except (ValueError, OSError):
        return before
    return Limit(current_limit().soft, before.hard, before.soft)


def _finite(value: int) -> int:
    return sys.maxsize if value == resource.RLIM_INFINITY else value
