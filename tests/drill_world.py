"""Two data centres on one machine for the failover drill: a real Kamailio, coturn and
MariaDB at each site, and xprov with its monitor on, serving N phones from a file."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from pathlib import Path
from typing import Any

from tests.helpers import XprovProcess, free_port, site_config, toml_value, wait_for
from tests.inventory_db import synthetic
from tests.peers import Coturn, Kamailio, MariaDB, Namespace, Peer, free_udp_tcp_port

SITES = ("chicago", "virginia")


def _epoch(timestamp: str) -> float:
    """A log event's ISO-8601 UTC timestamp as seconds since the epoch."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def inventory_toml(count: int) -> str:
    out = []
    for phone in synthetic(count):
        lines = ", ".join(
            "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in line.items()) + " }"
            for line in phone["lines"]
        )
        out.append(
            f'[[phones]]\nmac = "{phone["mac"]}"\nvendor = "{phone["vendor"]}"\n'
            f'model = "{phone["model"]}"\nlines = [{lines}]\n'
        )
    return "\n".join(out)


class World:
    def __init__(
        self,
        tmp: Path,
        phones: int,
        netns: Namespace | None = None,
        monitor: dict[str, Any] | None = None,
        phone_redundancy: bool = False,
        push: dict[str, Any] | None = None,
        services: tuple[str, ...] = ("sip", "stun", "db"),
        peers: dict[tuple[str, str], Peer] | None = None,
        security: dict[str, int] | None = None,
    ) -> None:
        """`phone_redundancy`: `[failover] phone_redundancy = true` (files name the other
        site's SIP server second); `push`: a `[push]` table (with `contacts = "file"`, the
        `contacts_file` the drill writes: `self.contacts`); `services`: the sites' services
        (sip is required); `peers`: another world's, shared (started and stopped by it);
        `security`: `[security]` keys of the sample config given other values."""
        self.tmp, self.phones, self.netns = tmp, phones, netns
        self.services, self.shared = services, peers is not None
        self.security = security or {}
        self.phone_redundancy, self.push = phone_redundancy, push
        self.contacts = tmp / "xprov" / "contacts.toml"
        self.monitor = {"interval": 1.0, "timeout": 1.0, "fall": 3, "rise": 2, **(monitor or {})}
        self.hosts = dict(
            zip(SITES, netns.addresses if netns else ("127.0.0.1", "127.0.0.2"), strict=True)
        )
        self.peers: dict[tuple[str, str], Peer] = dict(peers or {})
        self.xprov: XprovProcess | None = None

    def _peer(self, service: str, site: str) -> Peer:
        host, directory = self.hosts[site], self.tmp / f"{service}-{site}"
        port = free_udp_tcp_port()
        peer: Peer
        if service == "sip":
            peer = Kamailio(directory, port, host=host)
        elif service == "stun":
            peer = Coturn(directory, port, host=host)
        else:
            peer = MariaDB(directory, port, host=host)
        peer.netns = self.netns.name if self.netns else None
        return peer

    def start(self) -> World:
        if not self.shared:
            for service in self.services:
                for site in SITES:
                    self.peers[(service, site)] = self._peer(service, site).start()
        sites = {
            site: {service: self._values(self.peers[(service, site)]) for service in self.services}
            for site in SITES
        }
        self.http, self.tftp = free_port(), free_port(socket.SOCK_DGRAM)
        directory = self.tmp / "xprov"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = site_config(
            directory, sites, self.monitor, http_port=self.http, tftp_port=self.tftp
        )
        (directory / "inventory.toml").write_text(inventory_toml(self.phones))
        self._redundancy_and_push()
        self.xprov = XprovProcess(self.config, self.http, directory / "xprov.log").__enter__()
        wait_for(self.all_up, 30, "every target up")
        return self

    @staticmethod
    def _values(peer: Peer) -> dict[str, Any]:
        """A peer's table under [sites.<site>.<service>]."""
        values = {"host": peer.host, "port": peer.port}  # type: ignore[attr-defined]
        if isinstance(peer, MariaDB):
            values |= {
                "database": MariaDB.DATABASE,
                "user": MariaDB.USER,
                "password": MariaDB.PASSWORD,
            }
        return values

    def _redundancy_and_push(self) -> None:
        text = self.config.read_text()
        for key, value in self.security.items():
            text, found = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
            assert found == 1, key
        if self.phone_redundancy:
            text = text.replace("[failover]\n", "[failover]\nphone_redundancy = true\n", 1)
        if self.push is not None:
            self.contacts.write_text("")  # the drill writes its phones' contacts here
            table = {"contacts": "file", "contacts_file": str(self.contacts), **self.push}
            text += "\n[push]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
        self.config.write_text(text)

    def status(self) -> dict[str, Any]:
        """The server's status, or {} while its admin port is not answering yet."""
        assert self.xprov is not None
        try:
            return self.xprov.status()
        except AssertionError:
            return {}

    def all_up(self) -> bool:
        targets = (self.status().get("monitor") or {}).get("targets", {})
        wanted = len(self.services) * len(SITES)
        return len(targets) == wanted and all(t["state"] == "up" for t in targets.values())

    def kill(self, services: list[str], site: str = "chicago") -> float:
        """SIGKILL the peers of `services` at `site`; the moment of the kill."""
        peers = [self.peers[(s, site)] for s in services]
        at = time.time()
        for peer in peers:
            peer.kill()
        return at

    def restart(self, service: str, site: str = "chicago") -> None:
        self.peers[(service, site)].start()

    def events(self, name: str) -> list[dict[str, Any]]:
        assert self.xprov is not None
        return [{**e, "at": _epoch(e["timestamp"])} for e in self.xprov.events(name)]

    def stop(self) -> None:
        if self.xprov is not None:
            self.xprov.stop()
            self.xprov.__exit__(None, None, None)
        if not self.shared:
            for peer in self.peers.values():
                peer.stop()
