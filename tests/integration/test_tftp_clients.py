"""TFTP against real clients from Debian packages (tftp-hpa, atftp, curl) and tftpy's
TftpClient: every sample phone's files, byte for byte the HTTP answer; then a flood of
random and mutated datagrams, after which the same files are still served."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import tftpy
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import TFTP_OPCODES, mutations_of
from tests.helpers import (
    FILES,
    SPA942,
    YEALINK_T46G,
    XprovProcess,
    curl_get,
    free_port,
    sample_config,
)
from xprov.tftp import codec

ALL_FILES = sorted({name for names in FILES.values() for name in names})


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("tftp")
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    tftp6_port = free_port(socket.SOCK_DGRAM, "::1")
    both = f'listen = ["127.0.0.1:{tftp_port}", "[::1]:{tftp6_port}"]'
    config = sample_config(
        tmp,
        http_port=http_port,
        tftp_port=tftp_port,
        # a slow retransmission timer: a transfer outlives the floods below
        replace={
            f'listen = ["127.0.0.1:{tftp_port}"]': both,
            "timeout = 1.0           #": "timeout = 10.0           #",
        },
    )
    with XprovProcess(config, http_port, tmp / "xprov.log") as proc:
        proc.tftp_port, proc.tftp6_port = tftp_port, tftp6_port
        proc.expected = {name: curl_get(http_port, name) for name in ALL_FILES}
        yield proc


def run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, timeout=30, **kwargs)


@pytest.mark.parametrize("name", ALL_FILES)
def test_tftp_hpa(server, tmp_path: Path, name: str) -> None:
    out = tmp_path / "out"
    done = run(
        [
            "tftp",
            "-4",
            "-m",
            "binary",
            "127.0.0.1",
            str(server.tftp_port),
            "-c",
            "get",
            name,
            str(out),
        ]
    )
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == server.expected[name]


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--option", "blksize 1468", "--option", "tsize 0"],
        ["--option", "blksize 8", "--option", "windowsize 4"],
        ["--option", "windowsize 16", "--option", "timeout 2"],
    ],
    ids=["plain", "blksize-tsize", "small-blocks-window", "window-timeout"],
)
def test_atftp(server, tmp_path: Path, options: list[str]) -> None:
    for name in ALL_FILES:
        out = tmp_path / name
        done = run(
            [
                "atftp",
                *options,
                "--get",
                "-r",
                name,
                "-l",
                str(out),
                "127.0.0.1",
                str(server.tftp_port),
            ]
        )
        assert done.returncode == 0, (name, done.stderr)
        assert out.read_bytes() == server.expected[name], name


@pytest.mark.parametrize("extra", [[], ["--tftp-blksize", "1024"], ["--tftp-no-options"]])
def test_curl(server, extra: list[str]) -> None:
    for name in ALL_FILES:
        done = run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                *extra,
                f"tftp://127.0.0.1:{server.tftp_port}/{name}",
            ]
        )
        assert done.returncode == 0, (name, done.stderr)
        assert done.stdout == server.expected[name], name


def test_curl_over_ipv6(server) -> None:
    name = f"{YEALINK_T46G}.cfg"
    done = run(["curl", "-sS", "--max-time", "10", f"tftp://[::1]:{server.tftp6_port}/{name}"])
    assert done.returncode == 0, done.stderr
    assert done.stdout == server.expected[name]


@pytest.mark.parametrize("options", [{}, {"blksize": 1024}, {"tsize": 0}])
def test_tftpy_client(server, tmp_path: Path, options: dict) -> None:
    for name in ALL_FILES:
        out = tmp_path / name
        tftpy.TftpClient("127.0.0.1", server.tftp_port, options).download(name, str(out), timeout=2)
        assert out.read_bytes() == server.expected[name], name


def test_unknown_file_is_error_1(server) -> None:
    done = run(["curl", "-sS", f"tftp://127.0.0.1:{server.tftp_port}/ffffffffffff.cfg"])
    assert done.returncode == 68  # curl: TFTP file not found
    done = run(
        [
            "atftp",
            "--get",
            "-r",
            f"{YEALINK_T46G}-local.cfg",
            "-l",
            "/dev/null",
            "127.0.0.1",
            str(server.tftp_port),
        ]
    )
    assert done.returncode != 0 and b"File not found" in done.stderr


def test_write_is_refused(server, tmp_path: Path) -> None:
    source = tmp_path / "upload.cfg"
    source.write_text("x = 1\n")
    done = run(
        [
            "atftp",
            "--put",
            "-l",
            str(source),
            "-r",
            "upload.cfg",
            "127.0.0.1",
            str(server.tftp_port),
        ]
    )
    assert done.returncode != 0 and b"Read-only server" in done.stderr


VALID = codec.rrq(f"{SPA942}.xml", {"blksize": "1024", "tsize": "0"})
DATAGRAMS = mutations_of(VALID, TFTP_OPCODES, 700)


@pytest.fixture(scope="module")
def sockets():
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for s in (client, stranger):
        s.bind(("127.0.0.1", 0))
        s.settimeout(2)
    yield client, stranger
    client.close()
    stranger.close()


@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(datagram=DATAGRAMS)
def test_flood_the_listener(server, sockets, datagram: bytes) -> None:
    sockets[1].sendto(datagram, ("127.0.0.1", server.tftp_port))


def drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recvfrom(2048)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(2)


def start_transfer(client: socket.socket, port: int, name: str) -> tuple[str, int]:
    """RRQ with blksize 8; returns the transfer's address once its OACK arrives."""
    client.sendto(codec.rrq(name, {"blksize": "8"}), ("127.0.0.1", port))
    while True:  # skip the listener's answers to earlier floods
        packet, transfer = client.recvfrom(2048)
        if transfer[1] != port:
            assert codec.decode(packet) == codec.Oack({"blksize": "8"})
            return transfer


def finish_transfer(client: socket.socket, transfer: tuple[str, int]) -> bytes:
    """ACK 0, then every DATA block in order until the short one."""
    client.sendto(codec.ack(0), transfer)
    body, expected = b"", 1
    while True:
        packet, source = client.recvfrom(2048)
        decoded = codec.decode(packet)
        if source != transfer or not isinstance(decoded, codec.Data):
            continue  # a retransmitted OACK, or an answer to the flood
        if decoded.block == expected & 0xFFFF:
            body += decoded.payload
            expected += 1
        client.sendto(codec.ack(decoded.block), transfer)
        if len(decoded.payload) < 8 and decoded.block == (expected - 1) & 0xFFFF:
            return body


def test_a_stranger_flooding_a_transfer_port_changes_nothing(server, sockets) -> None:
    client, stranger = sockets
    name = f"{SPA942}.xml"
    transfer = start_transfer(client, server.tftp_port, name)

    @settings(max_examples=1000, deadline=None)
    @given(datagram=DATAGRAMS)
    def flood(datagram: bytes) -> None:
        stranger.sendto(datagram, transfer)

    flood()
    drain(stranger)  # the answers to the floods overflowed its buffer
    stranger.sendto(codec.ack(0), transfer)
    answer, source = stranger.recvfrom(2048)
    assert source == transfer
    assert answer == codec.error(codec.UNKNOWN_TID, "Unknown transfer ID")
    assert finish_transfer(client, transfer) == server.expected[name]


def test_the_peer_flooding_its_transfer_port(server, sockets) -> None:
    client, _ = sockets
    transfer = start_transfer(client, server.tftp_port, f"{YEALINK_T46G}.cfg")

    @settings(max_examples=1000, deadline=None)
    @given(datagram=DATAGRAMS)
    def flood(datagram: bytes) -> None:
        client.sendto(datagram, transfer)  # may abort the transfer (an ERROR): that is fine

    flood()


def test_still_serving_after_the_floods(server) -> None:
    for name in ALL_FILES:
        done = run(
            ["curl", "-sS", "--max-time", "10", f"tftp://127.0.0.1:{server.tftp_port}/{name}"]
        )
        assert done.stdout == server.expected[name], name
    assert server.proc.poll() is None
    assert not [e for e in server.events() if e["level"] in ("error", "critical")]
