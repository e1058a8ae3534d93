"""Issue 15 (reload): the listeners a reload moves, drops or fails to open, and one reload at
a time. The service runs on a memory reactor whose ports hold their address as the kernel
does (`Sockets`): a listen on an address in use fails with EADDRINUSE, and a port stopped
frees its address only on a later reactor turn, as Twisted's TCP and UDP ports do."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from tests.certs import authority
from tests.helpers import MemoryReactor, sample_config
from xprov.build import build
from xprov.config import Listen, overlap
from xprov.descriptors import Limit
from xprov.servers.http.site import takes
from xprov.service import Service

HTTP, ADMIN, TFTP, OTHER = 18080, 18081, 16969, 18090


class Port:
    """A listening socket of `Sockets`: holds its address from startListening until the
    reactor turn after stopListening."""

    def __init__(self, reactor: Sockets, kind: str, address: Listen, factory: Any) -> None:
        self.reactor, self.kind, self.address, self.factory = reactor, kind, address, factory
        self.accepting = False

    def startListening(self) -> None:
        if any(p.kind == self.kind and overlap(p.address, self.address) for p in self.reactor.held):
            error = OSError(errno.EADDRINUSE, "Address already in use")
            raise CannotListenError(self.address.host, self.address.port, error)
        self.reactor.held.append(self)
        self.accepting = True

    def stopListening(self) -> Deferred[None] | None:
        if self not in self.reactor.held:
            return None  # as tcp.Port: nothing to close
        self.accepting = False
        return deferLater(self.reactor, 0, self.reactor.held.remove, self)

    def getHost(self) -> IPv4Address | IPv6Address:
        if ":" in self.address.host:
            return IPv6Address(self.kind, self.address.host, self.address.port)
        return IPv4Address(self.kind, self.address.host, self.address.port)  # type: ignore[arg-type]


class Sockets(MemoryReactor):
    """A memory reactor whose ports hold addresses (`held`); thread calls run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Port] = []

    def listen(self, kind: str, port: int, factory: Any, interface: str) -> Port:
        listening = Port(self, kind, Listen(interface or "0.0.0.0", port), factory)
        listening.startListening()
        return listening

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        return self.listen("TCP", port, factory, interface)

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 0
    ) -> Any:
        return self.listen("UDP", port, protocol, interface)

    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        f(*args, **kwargs)

    def addresses(self) -> set[str]:
        """The addresses held, as "TCP 127.0.0.1:18080"."""
        return {f"{p.kind} {p.address}" for p in self.held}


class Builder:
    """The builder thread: each build runs when the test says (a build that hangs, until)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., None], Callable[..., Any], tuple[Any, ...]]] = []

    def callInThreadWithCallback(
        self, on_result: Callable[..., None], f: Callable[..., Any], *args: Any
    ) -> None:
        self.jobs.append((on_result, f, args))

    def run(self) -> None:
        on_result, f, args = self.jobs.pop(0)
        try:
            result = f(*args)
        except Exception:
            on_result(False, Failure())
            return
        on_result(True, result)


class World:
    """A started service on `Sockets`, its config file and its builder."""

    def __init__(self, tmp: Path, replace: dict[str, str] | None = None) -> None:
        self.path = sample_config(tmp, replace, http_port=HTTP, admin_port=ADMIN, tftp_port=TFTP)
        self.reactor = Sockets()
        self.svc = Service(build(self.path), self.reactor, Limit(65536, 65536))
        self.builder = Builder()
        self.svc.reloader.builder = self.builder  # type: ignore[assignment]
        self.svc.listeners.startService()

    def edit(self, old: str, new: str) -> None:
        text = self.path.read_text()
        assert old in text, old
        self.path.write_text(text.replace(old, new))

    def reload(self) -> dict[str, Any]:
        """A reload through to its answer: its build, then the reactor turns it waits for."""
        answers: list[dict[str, Any]] = []
        self.svc.reloader.reload().addCallback(answers.append)
        self.builder.run()
        for _ in range(10):  # bounded: each close takes one turn
            if answers:
                break
            self.reactor.advance(0)
        (answer,) = answers
        return answer

    def listening(self) -> dict[str, list[str]]:
        return self.svc.listeners.listening()


def held(world: World) -> set[str]:
    """What the status lists, as `Sockets.addresses` says it: the two must agree."""
    kinds = {"http": "TCP", "https": "TCP", "admin": "TCP", "tftp": "UDP"}
    return {
        f"{kinds[kind]} {address}"
        for kind, addresses in world.listening().items()
        for address in addresses
    }


def listen_line(port: int, host: str = "127.0.0.1") -> str:
    return f'listen = ["{host}:{port}"]'


MOVES = {
    # (b) HTTP to a new port while the admin API takes HTTP's old one
    "http-moves-admin-takes-its-port": (
        {listen_line(HTTP): listen_line(OTHER), listen_line(ADMIN): listen_line(HTTP)},
        {"http": [f"127.0.0.1:{OTHER}"], "admin": [f"127.0.0.1:{HTTP}"]},
    ),
    # (c) HTTP onto the admin port while the admin API moves elsewhere
    "http-takes-the-admin-port": (
        {listen_line(ADMIN): listen_line(OTHER), listen_line(HTTP): listen_line(ADMIN)},
        {"http": [f"127.0.0.1:{ADMIN}"], "admin": [f"127.0.0.1:{OTHER}"]},
    ),
    # (d) HTTP and the admin API swap addresses
    "http-and-admin-swap": (
        {listen_line(HTTP): "@", listen_line(ADMIN): listen_line(HTTP), "@": listen_line(ADMIN)},
        {"http": [f"127.0.0.1:{ADMIN}"], "admin": [f"127.0.0.1:{HTTP}"]},
    ),
    # (e) HTTP widened from loopback to every address on the same port
    "http-widened": (
        {listen_line(HTTP): listen_line(HTTP, "0.0.0.0")},
        {"http": [f"0.0.0.0:{HTTP}"], "admin": [f"127.0.0.1:{ADMIN}"]},
    ),
}


@pytest.mark.parametrize("case", MOVES, ids=str)
def test_a_listener_takes_an_address_another_one_leaves(case: str, tmp_path: Path) -> None:
    world = World(tmp_path)
    edits, expected = MOVES[case]
    for old, new in edits.items():
        world.edit(old, new)
    answer = world.reload()
    assert answer["ok"] is True, answer
    assert answer["listen"] == {**expected, "tftp": [f"127.0.0.1:{TFTP}"]}
    assert world.listening() == answer["listen"]
    assert world.reactor.addresses() == held(world)  # every listed listener holds its socket
    assert all(port.accepting for port in world.svc.listeners.ports.values())  # type: ignore[attr-defined]
    assert world.svc.listeners.released == {} and world.svc.listeners.closing == set()


def test_a_failed_rebind_changes_nothing(tmp_path: Path) -> None:
    """The reload releases HTTP's and the admin API's addresses (they swap), then cannot
    open a third one another process holds: the two listen again on their own addresses,
    and the status lists exactly what listens."""
    world = World(tmp_path)
    before = world.listening()
    squatter = world.reactor.listenTCP(OTHER, None, interface="127.0.0.1")
    world.edit(listen_line(ADMIN), "@")
    world.edit(listen_line(HTTP), f'listen = ["127.0.0.1:{ADMIN}", "127.0.0.1:{OTHER}"]')
    world.edit("@", listen_line(HTTP))
    answer = world.reload()
    assert answer["ok"] is False
    assert world.listening() == before
    ports = world.svc.listeners.ports.values()
    assert all(port.accepting for port in ports)  # type: ignore[attr-defined]
    assert f"127.0.0.1:{OTHER}" in answer["problems"][0] and "in use" in answer["problems"][0]
    assert world.reactor.addresses() == held(world) | {f"TCP 127.0.0.1:{OTHER}"}
    assert squatter in world.reactor.held
    status = world.svc.status()
    assert status["listen"] == before and status["config"]["reloads"]["failed"] == 1
    # and the next reload that can bind does
    world.reactor.held.remove(squatter)
    answer = world.reload()
    assert answer["ok"] is True, answer
    assert answer["listen"]["http"] == [f"127.0.0.1:{ADMIN}", f"127.0.0.1:{OTHER}"]
    assert world.reactor.addresses() == held(world)


def test_a_reload_waits_for_an_earlier_close(tmp_path: Path) -> None:
    """(f) A drops a listener, B adds it back: B binds once A's close is done, not into the
    socket still closing (it failed "Address already in use" on its own listener)."""
    two = f'listen = ["127.0.0.1:{HTTP}", "127.0.0.1:{OTHER}"]'
    world = World(tmp_path, {listen_line(HTTP): two})
    world.edit(two, listen_line(HTTP))
    assert world.svc.reloader._swap(build(world.path))["ok"] is True  # A: closing, not closed
    assert f"TCP 127.0.0.1:{OTHER}" in world.reactor.addresses()
    world.edit(listen_line(HTTP), two)
    answer = world.reload()  # B
    assert answer["ok"] is True, answer
    assert answer["listen"]["http"] == [f"127.0.0.1:{HTTP}", f"127.0.0.1:{OTHER}"]
    assert world.reactor.addresses() == held(world)


def https_table(pair: tuple[Path, Path]) -> str:
    return (
        f'[https]\nlisten = ["127.0.0.1:18443"]\n'
        f'certificate = "{pair[0]}"\nprivate_key = "{pair[1]}"\n'
    )


def test_https_certificate_paths_change_without_a_rebind(tmp_path: Path) -> None:
    """(a) New certificate and key paths: the same HTTPS socket, with new TLS options for
    the connections to come (it was closed and its address found in use)."""
    first, second = authority(tmp_path, "first"), authority(tmp_path, "second")
    world = World(tmp_path, {"[templates]": https_table(first) + "\n[templates]"})
    ports = dict(world.svc.listeners.ports)
    world.edit(str(first[0]), str(second[0]))
    world.edit(str(first[1]), str(second[1]))
    answer = world.reload()
    assert answer["ok"] is True, answer
    assert world.svc.listeners.ports == ports
    assert all(port.accepting for port in ports.values())  # type: ignore[attr-defined]
    assert world.reactor.addresses() == held(world)
    settings = world.svc.listeners.secure_tls.settings
    assert settings is not None and settings.certificate == second[0]


def test_a_bad_certificate_fails_the_reload_before_any_change(tmp_path: Path) -> None:
    first = authority(tmp_path, "first")
    world = World(tmp_path, {"[templates]": https_table(first) + "\n[templates]"})
    before, tls = world.listening(), world.svc.listeners.secure_tls.tls
    world.edit(listen_line(HTTP), listen_line(OTHER))  # a move that would release HTTP
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nnot one\n")
    world.edit(str(first[0]), str(tmp_path / "bad.pem"))
    answer = world.reload()
    assert answer["ok"] is False and answer["problems"]
    assert world.listening() == before and world.svc.listeners.secure_tls.tls is tls
    assert world.reactor.addresses() == held(world)


def test_one_reload_at_a_time(tmp_path: Path) -> None:
    """A build that hangs (a secret file that is a FIFO): the status says since when, and
    another reload is refused at once, through the admin API with 409, instead of queued
    behind it."""
    world = World(tmp_path)
    world.reactor.advance(100)
    first: list[dict[str, Any]] = []
    world.svc.reloader.reload().addCallback(first.append)  # its build does not return
    assert world.svc.status()["config"]["reload_in_progress"] == {"since": 100.0, "for_s": 0.0}
    world.reactor.advance(42)
    assert world.svc.status()["config"]["reload_in_progress"] == {"since": 100.0, "for_s": 42.0}
    second: list[dict[str, Any]] = []
    world.svc.reloader.reload().addCallback(second.append)
    refusal = (
        "a reload is already running since 42 s; one more will follow it and read the file again"
    )
    assert second == [{"ok": False, "problems": [refusal]}]
    request = DummyRequest([b"reload"])
    request.method, request.path = b"POST", b"/reload"
    request._disconnected = False  # as a real request's, which the admin API reads
    token = world.svc.core.inputs.config.admin.token  # type: ignore[union-attr]
    request.requestHeaders.addRawHeader(b"authorization", f"Bearer {token}".encode())
    world.svc.admin_api.render(request)
    assert request.responseCode == 409
    assert b"a reload is already running since 42 s" in b"".join(request.written)
    assert len(world.builder.jobs) == 1  # nothing queued behind the first
    assert world.svc.reloader.reloads["failed"] == 0  # a refusal is no reload
    world.builder.run()  # the build returns at last
    assert first and first[0]["ok"] is True
    # the refused ones asked for a newer file: exactly one more reload follows, not queued
    assert len(world.builder.jobs) == 1 and world.svc.status()["config"]["reload_in_progress"]
    world.builder.run()
    assert world.svc.reloader.reloads["ok"] == 2 and not world.builder.jobs
    assert world.svc.status()["config"]["reload_in_progress"] is None
    assert world.reload()["ok"] is True  # the next one runs


def test_a_reload_after_a_failed_build_runs(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.edit("[http]", "[http")
    answer = world.reload()
    assert answer["ok"] is False and "not valid TOML" in answer["problems"][0]
    assert world.svc.reloader.in_progress() is None
    world.edit("[http", "[http]")
    assert world.reload()["ok"] is True


@pytest.mark.parametrize(
    ("listen", "local", "taken"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("127.0.0.1", "127.0.0.2", False),
        ("0.0.0.0", "127.0.0.2", True),
        ("0.0.0.0", "::ffff:127.0.0.1", True),  # accepted on `::` before the reload
        ("0.0.0.0", "::1", False),
        ("::", "127.0.0.1", True),  # dual stack
        ("::", "::1", True),
        ("::1", "127.0.0.1", False),
        ("127.0.0.1", "::ffff:127.0.0.1", True),
    ],
)
def test_which_listener_takes_an_open_connection(listen: str, local: str, taken: bool) -> None:
    """A connection a reload keeps: one that a listener of the new config would accept
    (its local address), on the same port only."""
    assert takes(Listen(listen, HTTP), local, HTTP) is taken
    assert takes(Listen(listen, HTTP), local, HTTP + 1) is False
