"""Issue 15 (reload), against a running xprov: listeners that trade addresses, a reload that
fails after releasing some (every one listens again), new HTTPS certificates served without
a rebind, and keep-alive connections a reload no longer admits."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.certs import authority
from tests.helpers import (
    XprovProcess,
    curl_get,
    free_port,
    port_open,
    sample_config,
    wait_for,
    xprov,
)

COMMON = "y000000000028.cfg"  # served to anyone
TOKEN = "dev-admin-token-change-me"


@dataclass
class Server:
    proc: XprovProcess
    config: Path
    http: int
    admin: int
    tftp: int

    def edit(self, *edits: tuple[str, str]) -> None:
        text = self.config.read_text()
        for old, new in edits:
            assert old in text, old
            text = text.replace(old, new)
        self.config.write_text(text)

    def hup(self) -> dict[str, Any]:
        """SIGHUP, and the reload's outcome from the log (`xprov reload` would look for the
        admin API where the new config says it listens: not yet there)."""
        seen = len(self.outcomes())
        assert self.proc.proc is not None
        os.kill(self.proc.proc.pid, signal.SIGHUP)
        wait_for(lambda: len(self.outcomes()) > seen, 30, "the reload's outcome")
        return self.outcomes()[seen]

    def outcomes(self) -> list[dict[str, Any]]:
        return [e for e in self.proc.events() if e.get("event") in ("reloaded", "reload_failed")]


@pytest.fixture
def serve(tmp_path: Path):
    """serve(extra="", replace={}) -> a running Server on free ports; `extra` is appended
    to the config (HTTP_PORT is its HTTP port)."""
    started: list[XprovProcess] = []

    def start(extra: str = "", replace: dict[str, str] | None = None) -> Server:
        http, admin, tftp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
        config = sample_config(tmp_path, replace, http_port=http, admin_port=admin, tftp_port=tftp)
        config.write_text(config.read_text() + extra.replace("HTTP_PORT", str(http)))
        proc = XprovProcess(config, http, tmp_path / "xprov.log").__enter__()
        started.append(proc)
        # an answer: the reactor runs, so the SIGHUP handler (installed before) is there
        wait_for(lambda: port_open(admin) and admin_status(admin) == 200, 10, "the admin API")
        return Server(proc, config, http, admin, tftp)

    yield start
    for proc in started:
        proc.__exit__(None, None, None)


def listen(port: int) -> str:
    return f'listen = ["127.0.0.1:{port}"]'


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def admin_status(port: int) -> int:
    """The admin API's answer to GET /status (its HTTP status)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/status", headers={"Authorization": f"Bearer {TOKEN}"})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.parametrize("case", ["http-moves-admin-takes-its-port", "takes-admin", "swap"])
def test_listeners_trade_addresses(case: str, serve) -> None:
    """(b) HTTP moves while the admin API takes its port; (c) HTTP takes the admin API's
    port while the admin API moves; (d) they swap. Each failed "Address already in use",
    leaving a listener closed that the status still listed."""
    server = serve()
    other = free_port()
    http, admin = {
        "http-moves-admin-takes-its-port": (other, server.http),
        "takes-admin": (server.admin, other),
        "swap": (server.admin, server.http),
    }[case]
    server.edit(
        (listen(server.admin), "@"), (listen(server.http), listen(http)), ("@", listen(admin))
    )
    outcome = server.hup()
    assert outcome["event"] == "reloaded", outcome
    assert outcome["listen"]["http"] == [f"127.0.0.1:{http}"]
    assert outcome["listen"]["admin"] == [f"127.0.0.1:{admin}"]
    assert COMMON.encode() not in curl_get(http, COMMON)  # served (raises unless 2xx)
    assert admin_status(admin) == 200
    status = server.proc.status()  # through the new config's admin address
    assert status["listen"]["http"] == [f"127.0.0.1:{http}"]
    assert status["listen"]["admin"] == [f"127.0.0.1:{admin}"]
    if case == "http-moves-admin-takes-its-port":
        assert refused(server.admin)


def test_a_failed_reload_leaves_every_listener_listening(serve, tmp_path: Path) -> None:
    """The reload releases HTTP's and the admin API's addresses (they swap) and TFTP's (it
    moves), then cannot bind an address another process holds: all three listen again
    where they were, and the status lists what listens."""
    server = serve()
    original = server.config.read_text()
    tftp = free_port(socket.SOCK_DGRAM)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        held = squatter.getsockname()[1]
        both = f'listen = ["127.0.0.1:{server.admin}", "127.0.0.1:{held}"]'
        moves = (
            (listen(server.admin), "@"),
            (listen(server.http), both),
            ("@", listen(server.http)),
            (listen(server.tftp), listen(tftp)),
        )
        server.edit(*moves)
        outcome = server.hup()
        assert outcome["event"] == "reload_failed", outcome
        server.config.write_text(original)  # for `xprov status` to find the admin API
        wait_for(lambda: port_open(server.http) and port_open(server.admin), 10, "listening")
        assert curl_get(server.http, COMMON).startswith(b"#!version")
        assert tftp_get(server.tftp, tmp_path).startswith(b"#!version")
        status = server.proc.status()
        assert status["listen"]["http"] == [f"127.0.0.1:{server.http}"]
        assert status["listen"]["admin"] == [f"127.0.0.1:{server.admin}"]
        assert status["listen"]["tftp"] == [f"127.0.0.1:{server.tftp}"]
        assert status["config"]["reloads"]["failed"] == 1
        assert f"127.0.0.1:{held}" in outcome["problems"][0]
        assert "Address already in use" in outcome["problems"][0]
    # the same reload, once the address is free, succeeds
    server.edit(*moves)
    outcome = server.hup()
    assert outcome["event"] == "reloaded", outcome
    assert curl_get(held, COMMON).startswith(b"#!version")
    assert tftp_get(tftp, tmp_path).startswith(b"#!version")


def tftp_get(port: int, tmp: Path) -> bytes:
    """The shared file over TFTP (tftp-hpa, as a phone fetches it)."""
    (tmp / "tftp.out").unlink(missing_ok=True)
    done = subprocess.run(
        ["tftp", "127.0.0.1", str(port), "-c", "get", COMMON, str(tmp / "tftp.out")],
        capture_output=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return (tmp / "tftp.out").read_bytes()


def served_name(port: int) -> str:
    """The CN of the certificate the HTTPS listener presents (not verified: self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    (name,) = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME
    )
    return str(name.value)


def test_new_certificates_are_served_after_a_reload(serve, tmp_path: Path) -> None:
    """HTTPS: new contents at the same paths, then new paths; the listener is not rebound,
    and a connection established before the reload keeps serving."""
    pki = tmp_path / "pki"
    pki.mkdir()
    first, second, third = (authority(pki, name) for name in ("first", "second", "third"))
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    cert.write_bytes(first[0].read_bytes())
    key.write_bytes(first[1].read_bytes())
    https = free_port()
    server = serve(
        f'\n[https]\nlisten = ["127.0.0.1:{https}"]\n'
        f'certificate = "{cert}"\nprivate_key = "{key}"\n'
    )
    wait_for(lambda: port_open(https), 10, "HTTPS")
    assert served_name(https) == "first"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    before = http.client.HTTPSConnection("127.0.0.1", https, timeout=10, context=context)
    before.request("GET", f"/{COMMON}")
    assert before.getresponse().read().startswith(b"#!version")

    cert.write_bytes(second[0].read_bytes())  # the same paths, another pair
    key.write_bytes(second[1].read_bytes())
    done = xprov(server.config, "reload", timeout=60)
    assert done.returncode == 0, done.stderr
    assert served_name(https) == "second"

    server.edit((str(cert), str(third[0])), (str(key), str(third[1])))  # new paths
    done = xprov(server.config, "reload", timeout=60)
    assert done.returncode == 0, done.stderr
    assert served_name(https) == "third"

    before.request("GET", f"/{COMMON}")  # the same TLS connection: not cut by the reloads
    assert before.getresponse().read().startswith(b"#!version")
    before.close()


def keep_alive(port: int, source: str = "127.0.0.1", path: str = f"/{COMMON}") -> socket.socket:
    """A connection from `source` that has had one answer (200) and stays open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    assert get(sock, path) == 200
    return sock


def get(sock: socket.socket, path: str) -> int:
    """One request on `sock` (HTTP/1.1, kept alive); its answer's status."""
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    )
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    assert not response.will_close
    return response.status


def closed(sock: socket.socket) -> bool:
    """The server has closed the connection (end of stream, or a reset)."""
    sock.settimeout(0.05)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(10)


# the idle connections must outlive the test: no request deadline or idle timeout cuts them
LONG_DEADLINE = {"header_timeout = 10 ": "header_timeout = 120 "}


def test_a_new_allow_list_closes_the_connections_it_refuses(serve) -> None:
    server = serve(replace=LONG_DEADLINE)
    refused_source, allowed_source = keep_alive(server.http), keep_alive(server.http, "127.0.0.2")
    status = keep_alive(server.admin, path="/status")
    with refused_source, allowed_source, status:
        server.edit(
            (listen(server.http), listen(server.http) + '\nallow = ["127.0.0.2/32"]'),
            ("[admin]\n", '[admin]\nallow = ["127.0.0.2/32"]\n'),
        )
        # the reload's own connection is no longer admitted: answered, then closed
        done = xprov(server.config, "reload", timeout=60)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: closed(refused_source), 20, "the refused source's connection closed")
        wait_for(lambda: closed(status), 20, "the admin connection closed")
        assert get(allowed_source, f"/{COMMON}") == 200  # still allowed: kept
        assert not closed(allowed_source)


def test_a_removed_listener_closes_its_connections(serve) -> None:
    server = serve(replace=LONG_DEADLINE)
    other = free_port()
    both = f'listen = ["127.0.0.1:{server.http}", "127.0.0.1:{other}"]'
    server.edit((listen(server.http), both))
    done = xprov(server.config, "reload", timeout=60)
    assert done.returncode == 0, done.stderr
    kept, removed = keep_alive(server.http), keep_alive(other)
    with kept, removed:
        server.edit((both, listen(server.http)))
        done = xprov(server.config, "reload", timeout=60)
        assert done.returncode == 0, done.stderr
        assert refused(other)
        wait_for(lambda: closed(removed), 20, "the removed listener's connection closed")
        assert get(kept, f"/{COMMON}") == 200
