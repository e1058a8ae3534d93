"""A real etcd cluster on loopback (Debian's etcd-server 3.4), and a Twisted reactor turned by
the test itself, to run xprov.cluster.etcd against it.

Each member is a `Peer` (own process group: SIGKILL, SIGSTOP, SIGCONT, restart from its data
directory) on free loopback ports, with etcd's default timings (heartbeat 100 ms, election
1000 ms). Every wait is bounded; `stop` (and the context manager) leaves no process behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.epollreactor import EPollReactor
from twisted.python.failure import Failure

from tests.helpers import free_port, port_open, wait_for
from tests.peers import Peer

ETCD = "/usr/bin/etcd"
ETCDCTL = "/usr/bin/etcdctl"
HEARTBEAT_MS = 100  # etcd's defaults, the timings docs/architecture.md measured
ELECTION_MS = 1000
LEADER_SECONDS = 30.0  # a member's first start, or an election, takes far less
STATUS_SECONDS = 1.0  # one status request to one member


class EtcdMember(Peer):
    """One etcd member: `client` and `peer` URLs on 127.0.0.1, data under `directory`/data."""

    def __init__(
        self,
        directory: Path,
        name: str,
        cluster: str,
        client_port: int,
        peer_port: int,
        extra: Sequence[str] = (),
        scheme: str = "http",
    ) -> None:
        super().__init__(directory)
        self.name, self.cluster, self.extra = name, cluster, list(extra)
        self.client_port = client_port
        self.client = f"{scheme}://127.0.0.1:{client_port}"
        self.peer = f"http://127.0.0.1:{peer_port}"
        self.killed = False

    def command(self) -> list[str]:
        return [
            ETCD,
            *("--name", self.name, "--data-dir", str(self.dir / "data")),
            *("--listen-client-urls", self.client, "--advertise-client-urls", self.client),
            *("--listen-peer-urls", self.peer, "--initial-advertise-peer-urls", self.peer),
            *("--initial-cluster", self.cluster, "--initial-cluster-token", "xprov-test"),
            *("--initial-cluster-state", "new"),  # ignored once the data directory exists
            *("--heartbeat-interval", str(HEARTBEAT_MS), "--election-timeout", str(ELECTION_MS)),
            *("--logger", "zap", "--log-outputs", "stderr"),
            *self.extra,
        ]

    def ready(self) -> bool:
        return port_open(self.client_port)

    def paused(self) -> bool:
        """Stopped by SIGSTOP (and not killed meanwhile)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] == "T"


class EtcdCluster:
    """`members` etcd members on loopback, started and waited for (a leader) by `start`.

    Members are numbered from 0, in the order of `endpoints`. `extra`: more etcd flags for
    every member (TLS); `scheme` "https" with them."""

    def __init__(
        self, directory: Path, members: int = 3, extra: Sequence[str] = (), scheme: str = "http"
    ) -> None:
        ports: list[int] = []
        while len(ports) < 2 * members:
            port = free_port()
            if port not in ports:
                ports.append(port)
        cluster = ",".join(f"m{n}=http://127.0.0.1:{ports[2 * n + 1]}" for n in range(members))
        self.members = [
            EtcdMember(
                directory / f"m{n}", f"m{n}", cluster, ports[2 * n], ports[2 * n + 1], extra, scheme
            )
            for n in range(members)
        ]
        self.status_context: Any = None  # an ssl.SSLContext for https members

    @property
    def endpoints(self) -> list[str]:
        return [member.client for member in self.members]

    def start_all(self) -> EtcdCluster:
        try:
            for member in self.members:
                member.start()
            self.wait_leader()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, n: int) -> None:
        """SIGKILL member `n` and wait until its process is gone."""
        self.members[n].kill()
        self.members[n].killed = True

    def pause(self, n: int) -> None:
        """SIGSTOP member `n`: it holds its sockets and answers nothing."""
        self.members[n].pause()
        wait_for(self.members[n].paused, 10, f"m{n} stopped")

    def resume(self, n: int) -> None:
        self.members[n].resume()

    def start(self, n: int) -> None:
        """Start killed member `n` again from its data directory; wait until it has a leader."""
        self.members[n].start()
        self.members[n].killed = False
        wait_for(lambda: self._has_leader(n), LEADER_SECONDS, f"m{n} back with a leader")

    def status(self, n: int) -> dict[str, Any] | None:
        """Member `n`'s maintenance status (v3 JSON gateway), or None if it does not answer."""
        member = self.members[n]
        if member.killed or member.proc is None or member.proc.poll() is not None:
            return None
        request = urllib.request.Request(f"{member.client}/v3/maintenance/status", b"{}")
        try:
            with urllib.request.urlopen(
                request, timeout=STATUS_SECONDS, context=self.status_context
            ) as reply:
                status: dict[str, Any] = json.loads(reply.read())
                return status
        except OSError:
            return None

    def _has_leader(self, n: int) -> bool:
        status = self.status(n)
        return status is not None and status.get("leader", "0") != "0"

    def leader(self) -> int | None:
        """The member that reports itself leader, if one does."""
        for n, member in enumerate(self.members):
            if member.killed or member.paused():
                continue
            status = self.status(n)
            if status and status.get("leader") == status["header"]["member_id"]:
                return n
        return None

    def wait_leader(self) -> int:
        leader: int = wait_for(
            lambda: self._leader_seen_by_all(), LEADER_SECONDS, "an etcd leader known to all"
        )
        return leader - 1

    def _leader_seen_by_all(self) -> int:
        """1 + the leader's index once every live member reports the same leader, else 0."""
        leaders = set()
        for n, member in enumerate(self.members):
            if member.killed or member.paused():
                continue
            status = self.status(n)
            if status is None:
                return 0
            leaders.add(status.get("leader", "0"))
        leader = self.leader()
        return 0 if leader is None or len(leaders) != 1 else leader + 1

    def heal(self) -> None:
        """Every member running again, and a leader every member knows."""
        for n, member in enumerate(self.members):
            if member.killed:
                self.start(n)
            elif member.paused():
                member.resume()
        self.wait_leader()

    def etcdctl(self, *args: str, user: str | None = None, stdin: str = "") -> str:
        """etcdctl ARGS against every member, as `user` ("name:password"), with `stdin`; its
        output (fails the test on an error)."""
        auth = ["--user", user] if user else []
        done = subprocess.run(
            [ETCDCTL, "--endpoints", ",".join(self.endpoints), *auth, *args],
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        """Followers first: a leader stopped first waits up to 7 s to hand over to a follower
        already gone."""
        for member in self.members:
            if member.proc is not None and member.proc.poll() is None:
                member.signal(signal.SIGCONT)
        leader = self.leader()
        order = [m for n, m in enumerate(self.members) if n != leader]
        order += [] if leader is None else [self.members[leader]]
        for member in order:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        return self.start_all()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HandReactor:
    """A Twisted reactor of the test's own, turned by the test (the global reactor never runs
    in the test process): timers, sockets, and the thread pool the name resolver needs."""

    STEP = 0.05  # longest wait for I/O in one turn, seconds

    def __init__(self) -> None:
        self.reactor = EPollReactor()
        self.reactor.getThreadPool().start()  # the reactor would start it when run

    def turn(self) -> None:
        self.reactor.runUntilCurrent()
        timeout = self.reactor.timeout()
        self.reactor.doIteration(self.STEP if timeout is None else min(timeout, self.STEP))

    def until(self, condition: Callable[[], Any], seconds: float, what: str) -> Any:
        """Turn the reactor until `condition()` is truthy; fail after `seconds`."""
        deadline = time.monotonic() + seconds
        while not (result := condition()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {seconds} s")
            self.turn()
        return result

    def result(self, deferred: Deferred[Any], seconds: float = 20.0) -> Any:
        """The Deferred's result, or its exception raised; fail if it has none in `seconds`."""
        box: list[Any] = []
        deferred.addBoth(box.append)
        self.until(lambda: box, seconds, "result")
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def left(self) -> list[object]:
        """What the reactor still watches or plans: sockets, then timers."""
        internal = set(self.reactor._internalReaders)
        readers = [r for r in self.reactor.getReaders() if r not in internal]
        return [*readers, *self.reactor.getWriters(), *self.reactor.getDelayedCalls()]

    def close(self) -> None:
        self.reactor.threadpool.stop()
        for reader in list(self.reactor._internalReaders):
            self.reactor.removeReader(reader)
            reader.connectionLost(None)
        self.reactor.disconnectAll()
        for call in self.reactor.getDelayedCalls():
            call.cancel()
        self.reactor._poller.close()
