"""Two data centres and a witness on one machine (issue 16): a real Kamailio, coturn and
MariaDB at each site (`World`), a 3-member etcd cluster (member 0 in chicago, 1 in virginia,
2 with the witness), an xprov instance per data centre in `[cluster] mode = "etcd"` with its
own ports, and `xprov witness`. `standalone=True` gives the same world with one standalone
instance, for figures side by side."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import signal
import socket
import subprocess
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.drill_world import SITES, World, _epoch, inventory_toml
from tests.etcd import ETCDCTL, EtcdCluster
from tests.helpers import ROOT, XPROV, XprovProcess, curl_get, free_port, wait_for
from tests.peers import Peer
from xprov.admin_client import AdminClient

OBSERVERS = (*SITES, "witness")
MEMBER = {"chicago": 0, "virginia": 1, "witness": 2}  # the etcd member in each place
SERVICES = ("sip", "stun", "db")
PREFIX = "/xprov/"  # [cluster] prefix (its default)
# `groups=True`: every observer and every etcd member runs in a unix group of its own (its
# user stays root, so it reads every file), which nftables tells apart by `meta skgid`: a
# test cuts one path (a partition, one instance's path to etcd) without namespaces.
GROUPS = {name: f"xprov-{name}" for name in OBSERVERS}
ETCD_GROUPS = {name: f"xprov-etcd-{name}" for name in OBSERVERS}
ADMIN_SECONDS = 5.0  # one admin API request from the test (status, metrics)


def group_id(name: str) -> int:
    """The gid of system group `name`, created if missing (the groups stay: harmless)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        subprocess.run(["groupadd", "--system", name], check=True, timeout=30)
        return grp.getgrnam(name).gr_gid


def as_group(gid: int) -> list[str]:
    """A command prefix: run as root in group `gid` only."""
    return ["setpriv", f"--regid={gid}", "--clear-groups"]


def in_group(peer: Peer, gid: int) -> None:
    """Start `peer` (an etcd member) in group `gid` from now on, restarts included."""
    command = peer.command
    peer.command = lambda: [*as_group(gid), *command()]  # type: ignore[method-assign]


def processes_of(gids: set[int], tmp: Path) -> list[int]:
    """Pids of the processes whose real gid is one of `gids` and whose command line names a
    file under `tmp` (this world's, not another run's)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        with contextlib.suppress(OSError, ValueError, IndexError, StopIteration):
            line = next(x for x in status.read_text().splitlines() if x.startswith("Gid:"))
            command = (status.parent / "cmdline").read_bytes().decode(errors="replace")
            if int(line.split()[1]) in gids and str(tmp) in command:
                found.append(int(status.parent.name))
    return found


class Instance:
    """One observer: its config, ports and process (`xprov serve`, or `xprov witness`)."""

    def __init__(
        self, name: str, directory: Path, config: Path, http: int, prefix: Sequence[str] = ()
    ) -> None:
        """`prefix`: a command it runs under (`as_group`)."""
        self.name, self.directory, self.config, self.http = name, directory, config, http
        self.prefix = list(prefix)
        self.log_path = directory / f"{name}.log"
        self.server: XprovProcess | None = None
        self.witness: subprocess.Popen[bytes] | None = None

    def start(self) -> Instance:
        if self.name != "witness" and self.log_path.exists():  # a restart: keep the old log
            runs = len(list(self.directory.glob(f"{self.log_path.name}.*")))
            self.log_path.rename(self.log_path.with_name(f"{self.log_path.name}.{runs + 1}"))
        if self.name == "witness":
            with self.log_path.open("ab") as log:
                self.witness = subprocess.Popen(
                    [*self.prefix, *XPROV, "witness", "-c", str(self.config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=ROOT,
                )
        else:
            self.server = XprovProcess(
                self.config, self.http, self.log_path, prefix=self.prefix
            ).__enter__()
        return self

    @property
    def running(self) -> bool:
        proc = self.server.proc if self.server is not None else self.witness
        return proc is not None and proc.poll() is None

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

    def admin(self) -> AdminClient:
        """A client of its admin API, in this process (no `xprov` process per request)."""
        cfg = tomllib.loads(self.config.read_text())
        return AdminClient(
            f"http://{cfg['admin']['listen'][0]}", cfg["admin"]["token"], ADMIN_SECONDS
        )

    def state(self) -> dict[str, Any]:
        """`status()` through `admin()`: {} while it does not answer (or it is gone)."""
        if not self.running:
            return {}
        try:
            answer = self.admin().get("/status")
        except OSError:
            return {}
        return answer.body if answer.status == 200 else {}

    def fetch(self, name: str) -> bytes:
        """File `name` from its HTTP listener, with curl as a phone asks."""
        return curl_get(self.http, name)

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
        groups: bool = False,
    ) -> None:
        """`groups`: each observer and etcd member in its own group (GROUPS, ETCD_GROUPS)."""
        super().__init__(tmp, phones, None, monitor)
        self.cluster_settings = {"lease_ttl": 5, "timeout": 1.0, **(cluster or {})}
        self.etcd = EtcdCluster(tmp / "etcd")
        self.instances: dict[str, Instance] = {}
        self.gids: dict[str, int] = {}  # group name -> gid
        if groups:
            self.gids = {g: group_id(g) for g in (*GROUPS.values(), *ETCD_GROUPS.values())}
            for place, n in MEMBER.items():
                in_group(self.etcd.members[n], self.gids[ETCD_GROUPS[place]])

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
            prefix = as_group(self.gids[GROUPS[name]]) if self.gids else []
            self.instances[name] = Instance(name, directory, config, http, prefix).start()
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

    def decisions(self) -> dict[str, dict[str, Any]]:
        """service -> its decision key's value in etcd: a linearizable read (etcdctl) from
        the first running member, the witness's first, that answers (a member cut from the
        leader answers none)."""
        problem = "no member running"
        for n in (MEMBER["witness"], MEMBER["virginia"], MEMBER["chicago"]):
            member = self.etcd.members[n]
            if member.killed or member.paused() or member.proc is None:
                continue
            done = subprocess.run(
                [
                    ETCDCTL,
                    "--endpoints",
                    member.client,
                    "--command-timeout=3s",
                    "get",
                    "--prefix",
                    f"{PREFIX}decision/",
                ],
                env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
                capture_output=True,
                text=True,
                timeout=30,
            )
            if done.returncode == 0:
                break
            problem = done.stderr
        else:
            raise AssertionError(f"no etcd member answers: {problem}")
        out = done.stdout.splitlines()
        keys, values = out[0::2], out[1::2]
        return {k.rsplit("/", 1)[1]: json.loads(v) for k, v in zip(keys, values, strict=True)}

    def restore(self, seconds: float = 90.0) -> None:
        """Back to the start: every peer, etcd member and observer running, every target up,
        every service failed back to chicago and no decision key (the next decision is epoch
        1). `seconds` bounds each wait."""
        for peer in self.peers.values():
            if peer.proc is None or peer.proc.poll() is not None:
                peer.start()
            else:
                peer.resume()
        self.etcd.heal()
        for instance in self.instances.values():
            if not instance.running:
                instance.start()
        try:
            wait_for(self.agreed, seconds, "every observer sees every target up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {self.disagreement()}") from None
        for name in SITES:
            for service in self.instances[name].state()["cluster"]["local_overrides"]:
                answer = (
                    self.instances[name]
                    .admin()
                    .post("/failback", {"service": service, "local": True})
                )
                assert answer.agreed, answer
        for service, choice in self.decisions().items():
            if choice["site"] != SITES[0] or choice["manual"]:
                answer = self.instances[SITES[0]].admin().post("/failback", {"service": service})
                assert answer.agreed, answer
        wait_for(
            lambda: all(
                c["site"] == SITES[0] and not c["manual"] for c in self.decisions().values()
            ),
            seconds,
            "every decision back at chicago",
        )
        self.etcd.etcdctl("del", "--prefix", f"{PREFIX}decision/")
        wait_for(self.settled, seconds, "every instance at chicago without a decision")

    def disagreement(self) -> dict[str, Any]:
        """Why `agreed` is false: each instance's link, and the targets its observers do
        not see up."""
        out: dict[str, Any] = {}
        for name in SITES:
            cluster = self.instances[name].state().get("cluster") or {}
            observers = cluster.get("observers") or {}
            out[name] = {
                "agreement": cluster.get("agreement"),
                "problem": cluster.get("problem"),
                "not up": {
                    observer: {t: h for t, h in seen["targets"].items() if h != "up"}
                    for observer, seen in observers.items()
                },
                "observers": sorted(observers),
            }
        return out

    def settled(self) -> bool:
        """Every instance serves chicago for every service and knows no decision key."""
        for name in SITES:
            status = self.instances[name].state()
            active = (status.get("selection") or {}).get("active") or {}
            cluster = status.get("cluster") or {}
            if any(active.get(s) != SITES[0] for s in SERVICES) or cluster.get("decisions"):
                return False
        return True

    def stop(self) -> None:
        for instance in self.instances.values():
            instance.stop()
        super().stop()
        self.etcd.stop()
        # whatever still runs in our groups (a process a test left paused, say): by pid
        for pid in processes_of(set(self.gids.values()), self.tmp) if self.gids else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _admin_port(config: str) -> int:
    start = config.index("[admin]")
    line = next(x for x in config[start:].splitlines() if x.startswith("listen"))
    return int(line.rsplit(":", 1)[1].rstrip('"]'))
