"""Two sites on one machine for the status page's browser tests: a real Kamailio and coturn
at chicago (127.0.0.1) and at virginia (127.0.0.2), the session's MariaDB as both sites'
database, and xprov as a subprocess serving N synthetic phones, its page polling /status
every PAGE_REFRESH seconds. The admin API is spoken to over HTTP, as the page does."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.drill_world import _epoch, inventory_toml
from tests.helpers import XprovProcess, free_port, site_config, wait_for
from tests.peers import Coturn, Kamailio, MariaDB, Peer, free_udp_tcp_port

SITES = {"chicago": "127.0.0.1", "virginia": "127.0.0.2"}
SERVICES = ("sip", "stun", "db")
MONITOR = {"interval": 1.0, "timeout": 1.0, "fall": 3, "rise": 2}
# seconds between two polls of the page: short, so that every wait of a test stays short
PAGE_REFRESH = 0.5
TOKEN = "dev-admin-token-change-me"
PHONES = 20  # synthetic phones in the inventory (and simulated by the drill)
# seconds a target takes to be seen down after its peer dies: `fall` rounds, the first of
# which may have started just before the kill, and one probe's deadline
DOWN_BUDGET = MONITOR["interval"] * (MONITOR["fall"] + 1) + MONITOR["timeout"] + 2.0


def with_page_refresh(config: Path, seconds: float) -> None:
    """`page_refresh = seconds` in the config's [admin] table (the sample config may give
    one already: it is replaced)."""
    text = config.read_text()
    assert text.count("[admin]\n") == 1, "one [admin] table expected"
    given = re.compile(r"^page_refresh = .*$", re.MULTILINE)
    if given.search(text):
        text = given.sub(f"page_refresh = {seconds}", text, count=1)
    else:
        text = text.replace("[admin]\n", f"[admin]\npage_refresh = {seconds}\n")
    config.write_text(text)


def inventory_passwords(inventory: Path) -> list[str]:
    """Every `password = "..."` value of an inventory file (the phones' SIP secrets)."""
    found = re.findall(r'password = "([^"]+)"', inventory.read_text())
    assert found, f"no password in {inventory}"
    return found


class AdminAnswer:
    """An admin API answer: its status code and decoded JSON body."""

    def __init__(self, code: int, body: dict[str, Any]) -> None:
        self.code, self.body = code, body


class SiteWorld:
    """Peers at both sites and one xprov; `close` stops everything it started."""

    def __init__(self, tmp: Path, mariadb: MariaDB, phones: int) -> None:
        self.tmp, self.mariadb, self.phones = tmp, mariadb, phones
        self.peers: dict[tuple[str, str], Peer] = {}
        self.xprov: XprovProcess | None = None
        self.starts = 0  # xprov processes started so far: each logs to a file of its own

    # -- peers -------------------------------------------------------------------------
    def start(self) -> SiteWorld:
        try:
            for site, host in SITES.items():
                directory = self.tmp / site
                self.peers[("sip", site)] = Kamailio(
                    directory / "kamailio", free_udp_tcp_port(host), host=host
                ).start()
                self.peers[("stun", site)] = Coturn(
                    directory / "coturn", free_udp_tcp_port(host), host=host
                ).start()
            self._configure()
            self.serve()
            wait_for(self.all_up, 30, "every target up")
        except BaseException:
            self.close()
            raise
        return self

    def kill(self, service: str, site: str) -> None:
        """SIGKILL a peer (its port closes at once)."""
        self.peers[(service, site)].kill()

    def restart(self, service: str, site: str) -> None:
        """Start a killed peer again on its address and port, and wait until it answers."""
        peer = self.peers[(service, site)]
        if peer.proc is None or peer.proc.poll() is not None:
            peer.start()

    # -- xprov -------------------------------------------------------------------------
    def _configure(self) -> None:
        database = {
            "host": self.mariadb.host,
            "port": self.mariadb.port,
            "database": MariaDB.DATABASE,
            "user": MariaDB.USER,
            "password": MariaDB.PASSWORD,
        }
        sites: dict[str, dict[str, dict[str, Any]]] = {}
        for site, host in SITES.items():
            sip, stun = self.peers[("sip", site)], self.peers[("stun", site)]
            sites[site] = {
                "sip": {"host": host, "port": sip.port},  # type: ignore[attr-defined]
                "stun": {"host": host, "port": stun.port},  # type: ignore[attr-defined]
                "db": database,
            }
        self.http, self.admin = free_port(), free_port()
        directory = self.tmp / "xprov"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = site_config(
            directory,
            sites,
            MONITOR,
            http_port=self.http,
            admin_port=self.admin,
            tftp_port=free_port(socket.SOCK_DGRAM),
        )
        with_page_refresh(self.config, PAGE_REFRESH)
        self.inventory = directory / "inventory.toml"
        self.inventory.write_text(inventory_toml(self.phones))

    def serve(self) -> XprovProcess:
        """Start xprov (again, on the same ports) and wait until /status answers."""
        self.starts += 1
        log = self.config.parent / f"xprov-{self.starts}.log"
        self.xprov = XprovProcess(self.config, self.http, log).__enter__()
        wait_for(lambda: self.get_status() is not None, 15, "/status to answer")
        return self.xprov

    def stop_server(self) -> None:
        """SIGTERM xprov and wait until it is gone."""
        assert self.xprov is not None
        try:
            self.xprov.stop()
        finally:
            self.xprov.__exit__(None, None, None)

    def events(self, name: str) -> list[dict[str, Any]]:
        """The running xprov's JSON log events called `name`, each with "at" (epoch s)."""
        assert self.xprov is not None
        return [{**e, "at": _epoch(e["timestamp"])} for e in self.xprov.events(name)]

    @property
    def url(self) -> str:
        """The status page."""
        return f"http://127.0.0.1:{self.admin}/"

    # -- the admin API -----------------------------------------------------------------
    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str = TOKEN
    ) -> AdminAnswer:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path.lstrip("/"), data, method=method)
        request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return AdminAnswer(answer.status, json.loads(answer.read()))
        except urllib.error.HTTPError as refused:
            return AdminAnswer(refused.code, json.loads(refused.read() or b"{}"))

    def get_status(self) -> dict[str, Any] | None:
        """/status, or None while the admin listener does not answer."""
        try:
            answer = self.request("GET", "/status")
        except OSError:
            return None
        assert answer.code == 200, (answer.code, answer.body)
        return answer.body

    def status(self) -> dict[str, Any]:
        status = self.get_status()
        assert status is not None, "the admin listener does not answer"
        return status

    def service(self, service: str) -> dict[str, Any]:
        return self.status()["monitor"]["services"][service]

    def target_state(self, target: str) -> str:
        return self.status()["monitor"]["targets"][target]["state"]

    def all_up(self) -> bool:
        status = self.get_status() or {}
        targets = (status.get("monitor") or {}).get("targets", {})
        return len(targets) == 6 and all(t["state"] == "up" for t in targets.values())

    def secrets(self) -> list[str]:
        """What the page must never show: the token, the DB and the phones' passwords."""
        return [TOKEN, MariaDB.PASSWORD, *inventory_passwords(self.inventory)]

    def back_to_normal(self) -> None:
        """Every peer running, every target up, each service released to its primary: the
        state the next test of a shared world expects."""
        for service, site in self.peers:
            self.restart(service, site)
        wait_for(self.all_up, DOWN_BUDGET + 10, "every target up again")
        for service in SERVICES:
            current = self.service(service)
            if current["manual"] is not None or current["active"] != "chicago":
                answer = self.request("POST", "/failback", {"service": service})
                assert answer.code == 200, answer.body

    def close(self) -> None:
        """Stop xprov and every peer, each even if another fails to stop."""
        if self.xprov is not None:
            # one that outlives SIGTERM is killed by XprovProcess.__exit__; on to the peers
            with contextlib.suppress(Exception):
                self.stop_server()
        for peer in self.peers.values():
            peer.stop()
