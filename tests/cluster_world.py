"""Two data centres and a witness on one machine (issue 16): a real Kamailio, coturn and
MariaDB at each site (`World`), a 3-member etcd cluster (member 0 in chicago, 1 in virginia,
2 with the witness), an xprov instance per data centre in `[cluster] mode = "etcd"` with its
own ports, and `xprov witness`. `standalone=True` gives the same world with one standalone
instance, for figures side by side."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.drill_world import SITES, World, _epoch, inventory_toml
from tests.etcd import EtcdCluster
from tests.helpers import ROOT, XPROV, XprovProcess, free_port, wait_for

OBSERVERS = (*SITES, "witness")
MEMBER = {"chicago": 0, "virginia": 1, "witness": 2}  # the etcd member in each place


class Instance:
    """One observer: its config, ports and process (`xprov serve`, or `xprov witness`)."""

    def __init__(self, name: str, directory: Path, config: Path, http: int) -> None:
        self.name, self.directory, self.config, self.http = name, directory, config, http
        self.log_path = directory / f"{name}.log"
        self.server: XprovProcess | None = None
        self.witness: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        if self.name == "witness":
            with self.log_path.open("ab") as log:
                self.witness = subprocess.Popen(
                    [*XPROV, "witness", "-c", str(self.config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
        else:
            self.server = XprovProcess(self.config, self.http, self.log_path).__enter__()
        return self

    def kill(self) -> None:
        """SIGKILL: the instance is lost with its site (its lease expires in etcd)."""
        if self.server is not None and self.server.proc is not None:
            self.server.proc.kill()
            self.server.proc.wait(10)
            self.server.__exit__(None, None, None)
            self.server = None
        if self.witness is not None:
            self.witness.kill()
            self.witness.wait(10)
            self.witness = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.__exit__(None, None, None)
            self.server = None
        if self.witness is not None:
            self.witness.send_signal(signal.SIGTERM)
            try:
                self.witness.wait(10)
            except subprocess.TimeoutExpired:
                self.witness.kill()
                self.witness.wait(10)
            self.witness = None

    def status(self) -> dict[str, Any]:
        """Its status document, or {} while its admin API does not answer (or it is gone)."""
        if self.server is None:
            return {}
        try:
            return self.server.status()
        except AssertionError:
            return {}

    def active(self, service: str) -> str | None:
        return (self.status().get("selection") or {}).get("active", {}).get(service)

    def events(self, name: str) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        events = [json.loads(line) for line in lines if line.startswith("{")]
        return [{**e, "at": _epoch(e["timestamp"])} for e in events if e.get("event") == name]


class ClusterWorld(World):
    def __init__(
        self,
        tmp: Path,
        phones: int,
        monitor: dict[str, Any] | None = None,
        cluster: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tmp, phones, None, monitor)
        self.cluster_settings = {"lease_ttl": 5, "timeout": 1.0, **(cluster or {})}
        self.etcd = EtcdCluster(tmp / "etcd")
        self.instances: dict[str, Instance] = {}

    def start(self) -> ClusterWorld:
        self.etcd.start_all()
        super().start()  # the peers, and one standalone instance: stopped below
        assert self.xprov is not None
        self.xprov.stop()
        self.xprov.__exit__(None, None, None)
        self.xprov = None
        base = self.config.read_text()
        for name in OBSERVERS:
            directory = self.tmp / name
            directory.mkdir(parents=True, exist_ok=True)
            http, tftp, admin = free_port(), free_port(socket.SOCK_DGRAM), free_port()
            text = (
                base.replace(f"127.0.0.1:{self.http}", f"127.0.0.1:{http}")
                .replace(f"127.0.0.1:{self.tftp}", f"127.0.0.1:{tftp}")
                .replace(f'"127.0.0.1:{_admin_port(base)}"', f'"127.0.0.1:{admin}"')
            )
            settings = {
                "mode": "etcd",
                "name": name,
                "endpoints": self.etcd.endpoints,
                **self.cluster_settings,
            }
            text += "\n[cluster]\n" + "".join(
                f"{k} = {json.dumps(v)}\n" for k, v in settings.items()
            )
            config = directory / "xprov.toml"
            config.write_text(text)
            (directory / "inventory.toml").write_text(inventory_toml(self.phones))
            self.instances[name] = Instance(name, directory, config, http).start()
        wait_for(self.agreed, 60, "every observer sees every target up")
        return self

    def agreed(self) -> bool:
        """Every instance sees three observers, each seeing every target up."""
        for name in SITES:
            cluster = self.instances[name].status().get("cluster") or {}
            observers = cluster.get("observers") or {}
            if cluster.get("agreement") != "ok" or set(observers) != set(OBSERVERS):
                return False
            if any(h != "up" for seen in observers.values() for h in seen["targets"].values()):
                return False
        return True

    def status_of(self, name: str) -> dict[str, Any]:
        return self.instances[name].status()

    def serving(self, service: str) -> dict[str, str | None]:
        """Instance -> the site it serves for `service` (None: not answering)."""
        return {name: self.instances[name].active(service) for name in SITES}

    def lose_site(self, site: str = "chicago") -> float:
        """The whole data centre at once: its peers, its instance, its etcd member."""
        at = time.time()
        for service in ("sip", "stun", "db"):
            self.peers[(service, site)].kill()
        self.instances[site].kill()
        self.etcd.kill(MEMBER[site])
        return at

    def events(self, name: str, instance: str = "virginia") -> list[dict[str, Any]]:  # type: ignore[override]
        return self.instances[instance].events(name)

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.stop()
        super().stop()
        self.etcd.stop()


def _admin_port(config: str) -> int:
    start = config.index("[admin]")
    line = next(x for x in config[start:].splitlines() if x.startswith("listen"))
    return int(line.rsplit(":", 1)[1].rstrip('"]'))
