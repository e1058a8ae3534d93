"""Bounded under abuse, against a running xprov: a request body is refused from its head,
before a byte of it is read (nothing reaches the disk, and the memory stays flat); pipelined
requests whose answers are never read do not grow the server; a request body trickled on
the admin listener is cut off at the deadline like a slow head."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.certs import Pki
from tests.helpers import (
    XprovProcess,
    copy_templates,
    curl_get,
    free_port,
    port_open,
    sample_config,
    wait_for,
)
from xprov.descriptors import ADMIN
from xprov.security_log import BURST, PER_SECOND
from xprov.servers.admin import MAX_BODY

HUGE = 300 * 1024 * 1024  # the Content-Length announced; 64 KiB of it is sent
SOME_BODY = b"a" * 65536
TOKEN = "dev-admin-token-change-me"
SHARED_FILE = "y000000000028.cfg"  # served to anyone, costs no token


@dataclass
class Server:
    proc: XprovProcess
    http: int
    https: int
    admin: int
    tmpdir: Path  # the server's TMPDIR: twisted.web would spool a body there

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    def rss(self) -> int:
        """Resident memory of the server process, in bytes (/proc/<pid>/status VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def written(self) -> list[str]:
        """Every file in the server's TMPDIR, and every file it holds open there (a
        temporary file is unlinked at once, or never linked: O_TMPFILE)."""
        held = []
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                target = os.readlink(fd)
                if target.startswith(str(self.tmpdir)):
                    held.append(target)
        return sorted(os.listdir(self.tmpdir)) + held


def start(
    tmp: Path, replace: dict[str, str], extra: str = "", templates: Path | None = None
) -> Server:
    """xprov (not started yet) on free ports, with an empty TMPDIR of its own."""
    http, https, admin = free_port(), free_port(), free_port()
    tmpdir = tmp / "tmpdir"
    tmpdir.mkdir()
    kwargs = {"templates": templates} if templates else {}
    config = sample_config(tmp, http_port=http, admin_port=admin, replace=replace, **kwargs)
    config.write_text(config.read_text() + extra.replace("HTTPS_PORT", str(https)))
    proc = XprovProcess(config, http, tmp / "xprov.log", env={"TMPDIR": str(tmpdir)})
    return Server(proc, http, https, admin, tmpdir)


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """HTTP, HTTPS and the admin API, with a short request deadline."""
    tmp = tmp_path_factory.mktemp("bounded")
    pki = Pki(tmp / "pki")
    extra = f"""
[https]
listen = ["127.0.0.1:HTTPS_PORT"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"
"""
    server = start(tmp, {"header_timeout = 10 ": "header_timeout = 1.5 "}, extra)
    with server.proc:
        wait_for(lambda: port_open(server.https) and port_open(server.admin), 10, "listeners")
        yield server


def connect(port: int, tls: bool = False, timeout: float = 5.0) -> socket.socket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if not tls:
        return raw
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(raw)


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def until_closed(s: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends before it closes the connection, and whether it closed
    before `deadline` (monotonic seconds)."""
    received = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, ssl.SSLError):  # a reset once the answer left
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


@dataclass
class Exchange:
    status: int
    headers: dict[str, str]
    body: bytes
    closed: bool  # the server closed the connection
    written: list[str]  # files of the server's TMPDIR while the connection was still open


def send_and_read(server: Server, port: int, payload: bytes, tls: bool = False) -> Exchange:
    """`payload` on a fresh connection, then everything until the server closes (at most
    5 s: a refusal must come at once)."""
    with connect(port, tls) as s:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError, ssl.SSLError):
            s.sendall(payload)  # the server may close before the body is all sent
        answer, closed = until_closed(s, time.monotonic() + 5)
        written = server.written()  # before our end closes: a spooled body is open now
    head_, _, body = answer.partition(b"\r\n\r\n")
    lines = head_.decode("latin-1").split("\r\n")
    fields = [line.partition(": ") for line in lines[1:]]
    headers = {name.lower(): value for name, _, value in fields}
    status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/1.1 ") else 0
    return Exchange(status, headers, body, closed, written)


BODIES = [
    ("POST", {"Content-Length": str(HUGE)}, SOME_BODY, 413),
    ("PUT", {"Content-Length": str(HUGE)}, SOME_BODY, 413),
    ("POST", {"Content-Length": str(HUGE), "Expect": "100-continue"}, SOME_BODY, 413),
    ("GET", {"Content-Length": "5"}, b"hello", 413),
    ("POST", {"Transfer-Encoding": "chunked"}, b"10000\r\n" + SOME_BODY, 411),
    ("GET", {"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", 411),
]


@pytest.mark.parametrize("listener", ["http", "https"])
def test_a_body_is_refused_before_it_is_read(bounded, listener: str) -> None:
    """A body of 300 MiB announced, 64 KiB of it sent: the refusal comes at once, with no
    content, the connection is closed, nothing is written to disk, and the server's memory
    does not grow by the body."""
    port, tls = getattr(bounded, listener), listener == "https"
    before = bounded.rss()
    for method, headers, body, status in BODIES:
        answer = send_and_read(bounded, port, head(method, f"/{SHARED_FILE}", headers) + body, tls)
        outcome = (answer.status, answer.body, answer.closed, answer.written)
        assert outcome == (status, b"", True, []), (method, headers)
        assert answer.headers["content-length"] == "0" and answer.headers["connection"] == "close"
    assert bounded.written() == []
    assert bounded.rss() - before < 16 * 1024 * 1024


def test_a_request_without_a_body_is_served(bounded) -> None:
    expected = curl_get(bounded.http, SHARED_FILE)
    for headers in ({"Content-Length": "0"}, {"Content-Length": "00"}, {}):
        payload = head("GET", f"/{SHARED_FILE}", {**headers, "Connection": "close"})
        answer = send_and_read(bounded, bounded.http, payload)
        assert (answer.status, answer.body) == (200, expected), headers
    payload = head("POST", "/x", {"Content-Length": "0", "Connection": "close"})
    answer = send_and_read(bounded, bounded.http, payload)
    assert (answer.status, answer.body, answer.headers["allow"]) == (405, b"", "GET, HEAD")


def admin_post(length: int | str, extra: dict[str, str] | None = None) -> bytes:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(length), **(extra or {})}
    return head("POST", "/failover", headers)


def test_the_admin_listener_refuses_a_body_over_its_bound(bounded) -> None:
    before = bounded.rss()
    for length, body in ((HUGE, SOME_BODY), (MAX_BODY + 1, b"{" + b" " * MAX_BODY)):
        answer = send_and_read(bounded, bounded.admin, admin_post(length) + body)
        outcome = (answer.status, answer.body, answer.closed, answer.written)
        assert outcome == (413, b"", True, []), length
    chunked = head(
        "POST", "/failover", {"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"}
    )
    answer = send_and_read(bounded, bounded.admin, chunked + b"5\r\nhello\r\n0\r\n\r\n")
    assert (answer.status, answer.body, answer.closed) == (411, b"", True)
    assert bounded.written() == []
    assert bounded.rss() - before < 16 * 1024 * 1024
    # A body within the bound is read and answered, as the operator's tools send it.
    body = b'{"service": "sip", "site": "nowhere"}'
    answer = send_and_read(
        bounded, bounded.admin, admin_post(len(body), {"Connection": "close"}) + body
    )
    assert answer.status == 409 and b"has no site 'nowhere'" in answer.body


@pytest.mark.parametrize("slow", ["head", "body"])
def test_the_admin_listener_cuts_a_slow_request(bounded, slow: str) -> None:
    """A head trickled a line at a time, or a complete head whose body is trickled a byte
    at a time (each keeps the idle timeout from firing): cut off at the request deadline
    (1.5 s here), never answered."""
    with connect(bounded.admin) as s:
        if slow == "head":
            s.sendall(b"POST /failover HTTP/1.1\r\n")
            trickle = b"X-Slow: 1\r\n"
        else:
            s.sendall(admin_post(1000))
            trickle = b" "
        started = time.monotonic()
        received, cut = b"", False
        while not cut and time.monotonic() < started + 10:
            try:
                s.sendall(trickle)
            except (ConnectionResetError, BrokenPipeError):
                cut = True
                break
            chunk, cut = until_closed(s, time.monotonic() + 0.2)
            received += chunk
        assert cut and received == b""


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """HTTP and HTTPS serving a shared file of about 32 KB (a Yealink common file with long
    comments), so that a few thousand unread answers would be hundreds of MB; a long request
    deadline, so that the test reads the answers before it."""
    tmp = tmp_path_factory.mktemp("pipelined")
    pki = Pki(tmp / "pki")
    templates = copy_templates(tmp)
    common = templates / "yealink" / "common.cfg"
    padding = "".join(f"## padding line {i:04d} " + "x" * 90 + "\n" for i in range(300))
    common.write_text(common.read_text() + padding)
    extra = f"""
[https]
listen = ["127.0.0.1:HTTPS_PORT"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"
"""
    server = start(tmp, {"header_timeout = 10 ": "header_timeout = 60 "}, extra, templates)
    with server.proc:
        wait_for(lambda: port_open(server.https), 10, "https")
        yield server


CONNECTIONS = 8
PIPELINED = 1000  # requests per connection: their answers would be over 200 MB in all
HEALTHZ_EVERY = 7  # every 7th request is /healthz: the order of the answers shows


def request_for(i: int) -> bytes:
    """About 260 bytes: 1000 of them are more than the server reads before it stops."""
    path = "/healthz" if i % HEALTHZ_EVERY == 0 else f"/{SHARED_FILE}"
    return head("GET", path, {"X-Padding": "p" * 200})


def reader_of_little(port: int, tls: bool) -> socket.socket:
    """A connection whose receive buffer is small (64 KiB, not autotuned to MBs): what it
    leaves unread fills the server's send buffer soon."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    if not tls:
        return s
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context.wrap_socket(s)


def server_unread(port: int, clients: list[socket.socket]) -> list[int]:
    """Bytes each client sent that the server has not read yet: the receive queues of the
    server's end of their connections (/proc/net/tcp, hexadecimal)."""
    queues = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, _, both = line.split()[1:5]
        if int(local.rpartition(":")[2], 16) == port:
            queues[int(remote.rpartition(":")[2], 16)] = int(both.partition(":")[2], 16)
    return [queues.get(s.getsockname()[1], 0) for s in clients]


def read_answers(s: socket.socket, count: int, deadline: float) -> list[bytes]:
    """`count` answers (bodies, by Content-Length) from `s`, or fewer at `deadline`."""
    buffer, bodies = bytearray(), []
    while len(bodies) < count and time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = s.recv(1 << 20)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
        while (end := buffer.find(b"\r\n\r\n")) >= 0:
            head_ = bytes(buffer[:end]).lower()
            assert head_.startswith(b"http/1.1 200 "), head_[:100]
            length = int(head_.split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(buffer) < end + 4 + length:
                break
            bodies.append(bytes(buffer[end + 4 : end + 4 + length]))
            del buffer[: end + 4 + length]
    return bodies


def settled(samples: list[list[int]]) -> bool:
    """The server has read nothing more for the last four samples (about a second)."""
    return len(samples) >= 4 and all(sample == samples[-1] for sample in samples[-4:])


@pytest.mark.parametrize("listener", ["http", "https"])
def test_pipelined_requests_never_read_do_not_grow_the_server(big_files, listener: str) -> None:
    """Eight connections pipeline a thousand requests each for a 32 KB file and read
    nothing: the server stops reading them once their answers pile up, its memory stays
    flat, and it serves another client meanwhile; when the clients read, every answer
    comes, in order."""
    port = getattr(big_files, listener)
    expected = curl_get(big_files.http, SHARED_FILE)
    assert len(expected) > 30_000
    before = big_files.rss()
    with contextlib.ExitStack() as stack:
        clients = [
            stack.enter_context(reader_of_little(port, listener == "https"))
            for _ in range(CONNECTIONS)
        ]
        for s in clients:  # the client's kernel buffer takes what the server leaves unread
            s.sendall(b"".join(request_for(i) for i in range(PIPELINED)))
        peak, samples = before, [server_unread(port, clients)]
        quiet_until = time.monotonic() + 15
        while time.monotonic() < quiet_until and not settled(samples):
            peak = max(peak, big_files.rss())
            assert curl_get(big_files.http, "healthz") == b"ok\n"  # another client is served
            time.sleep(0.3)  # a sampling period, not a synchronisation
            samples.append(server_unread(port, clients))
        peak = max(peak, big_files.rss())
        assert all(samples[-1]), samples[-1]  # it left requests of every connection unread
        assert peak - before < 16 * 1024 * 1024, peak - before
        assert curl_get(big_files.http, "healthz") == b"ok\n"
        deadline = time.monotonic() + 60
        for s in clients:
            bodies = read_answers(s, PIPELINED, deadline)
            assert len(bodies) == PIPELINED
            for i, body in enumerate(bodies):
                assert body == (b"ok\n" if i % HEALTHZ_EVERY == 0 else expected), i


def test_the_admin_listener_holds_at_most_its_reserve_of_connections(tmp_path) -> None:
    """Break-it pass: 1,100 idle admin connections from many local addresses took every
    descriptor (EMFILE: probes not made, phones refused, Twisted's accept loop spinning).
    The admin API's connections come out of the descriptor reserve and are capped to it, in
    all and per source; phones' listeners are not touched by it."""
    server = start(tmp_path, {"header_timeout = 10 ": "header_timeout = 60 "})
    held: list[socket.socket] = []
    with server.proc, contextlib.ExitStack() as closing:
        closing.callback(lambda: [s.close() for s in held])
        wait_for(lambda: port_open(server.admin), 10, "the admin listener")
        for n in range(3 * ADMIN):  # from three addresses: the cap is in all
            s = socket.socket()
            s.bind((f"127.0.0.{n % 3 + 1}", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", server.admin))
            held.append(s)

        def closed(s: socket.socket) -> bool:
            s.setblocking(False)
            try:
                return s.recv(1) == b""
            except BlockingIOError:
                return False
            except ConnectionResetError:
                return True

        wait_for(lambda: sum(map(closed, held)) >= 2 * ADMIN, 10, "the connections beyond")
        # (The listener probe's own connection may still have counted for a moment.)
        open_now = [s for s in held if not closed(s)]
        assert ADMIN - 1 <= len(open_now) <= ADMIN
        more = []
        for _ in range(ADMIN):  # top up from a fourth address: the cap holds, exactly
            s = socket.socket()
            s.bind(("127.0.0.4", 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", server.admin))
            more.append(s)
        held += more
        wait_for(lambda: sum(map(closed, more)) >= len(open_now), 10, "the top-up refused")
        assert sum(not closed(s) for s in held) == ADMIN
        refusals = [
            e for e in server.proc.events("security") if e["reason"] == "too many connections"
        ]
        assert len(refusals) >= 1
        assert curl_get(server.http, SHARED_FILE).startswith(b"#!version")  # phones unaffected


def test_refused_connections_in_a_loop_write_a_bounded_log(tmp_path) -> None:
    """Break-it pass: a source holding its per-source cap and reconnecting in a loop wrote a
    `security` line per refused connection (10,000 lines in 7 s). The lines of a reason are
    bounded (BURST, then PER_SECOND), the rest counted in `security_suppressed`."""
    per_source = 4
    server = start(
        tmp_path,
        {"max_connections_per_source = 64": f"max_connections_per_source = {per_source}"},
    )
    held: list[socket.socket] = []
    with server.proc, contextlib.ExitStack() as closing:
        closing.callback(lambda: [s.close() for s in held])
        wait_for(lambda: port_open(server.http), 10, "the listener")
        held += [connect(server.http) for _ in range(per_source)]
        started, refused = time.monotonic(), 0
        while refused < 3000 and time.monotonic() - started < 30:
            s = connect(server.http)
            if until_closed(s, time.monotonic() + 0.5)[1]:
                refused += 1
                s.close()
            else:  # a slot was still free (the listener probe's connection had just left)
                held.append(s)
        elapsed = time.monotonic() - started
        wait_for(lambda: server.proc.events("security"), 5, "a security line")
        lines = [e for e in server.proc.events("security") if e["reason"] == "too many connections"]
        assert refused == 3000
        assert BURST <= len(lines) <= BURST + elapsed * PER_SECOND + 1
        # The count of what was not written comes with the next line of any reason.
        before = len(server.proc.events("security_suppressed"))
        with connect(server.admin) as s:
            s.sendall(head("GET", "/status", {"Authorization": "Bearer wrong-token-wrong"}))
            until_closed(s, time.monotonic() + 5)
        wait_for(lambda: len(server.proc.events("security_suppressed")) > before, 5, "the summary")
        # Every refusal not written is counted: in the summaries written with the lines
        # that passed since (one a second), and in the last one, with the admin's line.
        counted = sum(
            e["counts"].get("too many connections", 0)
            for e in server.proc.events("security_suppressed")
        )
        assert counted >= refused - len(lines) - 1
