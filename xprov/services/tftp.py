"""The TFTP server as a service: its transfers' limits; `Listeners` binds its ports."""

from __future__ import annotations

from twisted.application import service

from xprov import config
from xprov.servers.tftp import TftpServer
from xprov.services.core import Core
from xprov.tftp.options import Limits


class Tftp(service.Service):
    """Owns `[tftp]` allow, timeout, retries, max_blksize, max_windowsize, `[security]`
    max_tftp_per_source and the TFTP cap of the descriptor budget. `server` is None until
    a config has a `[tftp]` table (then it stays, idle if a later one drops it)."""

    def __init__(self, core: Core, max_transfers: int) -> None:
        self.core = core
        self.server: TftpServer | None = None
        self.prepare(core.inputs.config, max_transfers)

    def prepare(self, cfg: config.Config, max_transfers: int) -> None:
        """A server for `cfg`'s listeners to bind to, if it has `[tftp]` and none exists
        (nothing running changes: a reload calls this before its all-or-none bind)."""
        if self.server is not None or cfg.tftp is None:
            return
        core = self.core
        self.server = TftpServer(
            core.gate,
            limits(cfg),
            max_transfers,
            core.reactor,
            core.observer,
            cfg.tftp.allow,
            cfg.security.max_tftp_per_source,
        )

    def reconfigure(self, cfg: config.Config, max_transfers: int) -> None:
        """A reload's limits, for new transfers; running ones finish under their own."""
        if self.server is not None and cfg.tftp is not None:
            self.server.reconfigure(
                limits(cfg), max_transfers, cfg.tftp.allow, cfg.security.max_tftp_per_source
            )

    def stopService(self) -> None:
        super().stopService()
        if self.server is not None:
            self.server.stop()


def limits(cfg: config.Config) -> Limits:
    """`[tftp]`'s option limits (RFC 2348 blksize, RFC 7440 windowsize, RFC 2349 timeout)."""
    assert cfg.tftp is not None
    return Limits(cfg.tftp.max_blksize, cfg.tftp.max_windowsize, cfg.tftp.timeout, cfg.tftp.retries)
