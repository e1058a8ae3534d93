"""TFTP against real clients from Debian packages (tftp-hpa, atftp, curl) and tftpy's
TftpClient: every sample phone's files, byte for byte the HTTP answer; then a flood of
random and mutated datagrams, after which the same files are still served."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import tftpy
from hypothesis import HealthCheck, given, settings

from tests.fuzzing import TFTP_OPCODES, mutations_of
from tests.helpers import (
    FILES,
    SPA504G,
    SPA942,
    YEALINK_T46G,
    XprovProcess,
    curl_get,
    free_port,
    sample_config,
    wait_for,
)
from tests.unit.test_tftp_server import oversized_request
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


def start_transfer(
    client: socket.socket, port: int, name: str, request: bytes | None = None
) -> tuple[str, int]:
    """RRQ with blksize 8 first (then whatever `request` adds); returns the transfer's
    address once its OACK arrives."""
    client.sendto(request or codec.rrq(name, {"blksize": "8"}), ("127.0.0.1", port))
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
    """The stranger gets ERROR 5 once (RFC 1350 section 4), then nothing more however much
    it sends: the transfer port is no reflector."""
    client, stranger = sockets
    name = f"{SPA942}.xml"
    transfer = start_transfer(client, server.tftp_port, name)
    drain(stranger)  # the listener's answers to the floods before
    stranger.sendto(codec.ack(0), transfer)
    answer, source = stranger.recvfrom(2048)
    assert source == transfer
    assert answer == codec.error(codec.UNKNOWN_TID, "Unknown transfer ID")

    @settings(max_examples=1000, deadline=None)
    @given(datagram=DATAGRAMS)
    def flood(datagram: bytes) -> None:
        stranger.sendto(datagram, transfer)

    flood()
    # the client's ACKs reach the port after the flood: once served, the flood was read
    assert finish_transfer(client, transfer) == server.expected[name]
    assert answers(stranger) == []


def answers(sock: socket.socket) -> list[tuple[bytes, tuple[str, int]]]:
    """Every datagram waiting on `sock`, without waiting for more."""
    sock.setblocking(False)
    received = []
    try:
        while True:
            received.append(sock.recvfrom(65535))
    except BlockingIOError:
        return received
    finally:
        sock.settimeout(2)


@pytest.fixture
def fresh():
    """Three client sockets on loopback that nothing has answered yet."""
    trio = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    for s in trio:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
    yield trio
    for s in trio:
        s.close()


def test_an_error_from_a_stranger_gets_no_reply(server, fresh) -> None:
    """RFC 1350 section 7: an ERROR is never acknowledged. (Answering it with ERROR 5 let
    one forged datagram start an endless ping-pong between two of our transfer ports.)"""
    client, stranger, marker = fresh
    name = f"{YEALINK_T46G}.cfg"
    transfer = start_transfer(client, server.tftp_port, name)
    stranger.sendto(codec.error(codec.UNKNOWN_TID, "Unknown transfer ID"), transfer)
    stranger.sendto(b"\x00\x05", transfer)  # a malformed ERROR is an ERROR too
    marker.sendto(codec.ack(0), transfer)  # read after the two above, and answered
    assert marker.recvfrom(2048) == (codec.error(5, "Unknown transfer ID"), transfer)
    assert answers(stranger) == []
    assert finish_transfer(client, transfer) == server.expected[name]


@pytest.fixture
def capture():
    """Every IPv4 packet arriving on the loopback interface (AF_PACKET: needs CAP_NET_RAW,
    as forging a UDP source does)."""
    try:
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
    except PermissionError:
        pytest.skip("capturing and forging packets need CAP_NET_RAW")
    sniffer.bind(("lo", 0))
    yield sniffer
    sniffer.close()


def udp_between(sniffer: socket.socket, ports: set[int]) -> list[tuple[int, int, bytes]]:
    """(source port, destination port, payload) of each UDP datagram captured so far that
    went from one of `ports` to another, as the receiving side saw it."""
    seen = []
    for frame, where in answers(sniffer):
        ip = frame[14:]  # lo's frames carry a 14-byte Ethernet header
        header = (ip[0] & 0x0F) * 4
        if where[2] != socket.PACKET_HOST or ip[9] != socket.IPPROTO_UDP:
            continue
        source, target = struct.unpack("!HH", ip[header : header + 4])
        if {source, target} <= ports:
            seen.append((source, target, ip[header + 8 :]))
    return seen


def forge(source: tuple[str, int], target: tuple[str, int], payload: bytes) -> None:
    """A UDP datagram from `source`, an address the server holds (so no socket of ours can
    bind it): the UDP header written by hand on a raw socket; checksum 0, none (IPv4)."""
    assert source[0] == target[0] == "127.0.0.1"  # the kernel sets the IP source by route
    header = struct.pack("!HHHH", source[1], target[1], 8 + len(payload), 0)
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as raw:
        raw.sendto(header + payload, target)


@pytest.mark.parametrize(
    "forged", [codec.ack(0), codec.error(0, "forged"), b"junk"], ids=["ack", "error", "junk"]
)
def test_a_datagram_forged_from_one_transfer_port_to_another_is_not_answered(
    server, fresh, capture, forged: bytes
) -> None:
    """The reported attack, on the running server: one datagram forged from transfer port
    A's address to transfer port B. B used to answer A with ERROR 5, A answered B, and so
    on for the transfers' life at 100% of a core. Now B answers nothing."""
    first, second, _ = fresh
    names = {first: f"{YEALINK_T46G}.cfg", second: f"{SPA942}.xml"}
    a = start_transfer(first, server.tftp_port, names[first])
    b = start_transfer(second, server.tftp_port, names[second])
    forge(a, b, forged)
    # Markers: a port answers its own client only after reading what came before, so B has
    # read the forged datagram, A what B sent it (if anything), and B A's answer to that.
    for client, port, block in ((second, b, 0), (first, a, 0), (second, b, 1)):
        client.sendto(codec.ack(block), port)
        payload = server.expected[names[client]][block * 8 : block * 8 + 8]
        assert client.recvfrom(2048) == (codec.data(block + 1, payload), port)
    assert udp_between(capture, {a[1], b[1]}) == [(a[1], b[1], forged)]


def test_oversized_request_gets_error_4_and_no_data(server, fresh) -> None:
    """65,500 bytes, the first 8,192 of them a valid request: read whole, it is longer than
    a request may be (MAX_DATAGRAM) and gets ERROR 4; read cut, it used to be served."""
    client = fresh[0]
    listener = ("127.0.0.1", server.tftp_port)
    client.sendto(oversized_request(f"{YEALINK_T46G}.cfg"), listener)
    client.sendto(codec.ack(1), listener)  # the marker: answered after the request
    received = [client.recvfrom(65535) for _ in range(2)]
    assert received == [
        (codec.error(codec.ILLEGAL_OPERATION, "Malformed request"), listener),
        (codec.error(codec.ILLEGAL_OPERATION, "Expected a read request"), listener),
    ]
    assert answers(client) == []


@pytest.mark.parametrize("size", [8192, 65000])
def test_an_option_flood_is_served_like_a_normal_request(server, fresh, size: int) -> None:
    client = fresh[0]
    name = f"{SPA942}.xml"
    request = flood_request(name, size)
    transfer = start_transfer(client, server.tftp_port, name, request)
    assert finish_transfer(client, transfer) == server.expected[name]


def flood_request(name: str, size: int) -> bytes:
    """An RRQ asking blksize 8, then tiny options up to `size` bytes."""
    request = bytearray(codec.rrq(name, {"blksize": "8"}))
    n = 0
    while len(request) < size:
        request += f"{n}\x00v\x00".encode()
        n += 1
    return bytes(request)


def fetch_raw(
    client: socket.socket, port: int, request: bytes
) -> tuple[dict[str, str], list[int], bytes]:
    """`request` sent to the listener, then the OACK (if any) and every DATA block
    acknowledged until a block shorter than the block size; returns the OACK's options
    ({}: none came), each block's payload length, and the file. An ERROR fails."""
    client.sendto(request, ("127.0.0.1", port))
    transfer: tuple[str, int] | None = None
    oack: dict[str, str] = {}
    blksize, sizes, body = 512, [], b""
    while True:
        packet, source = client.recvfrom(65535)
        decoded = codec.decode(packet)
        assert not isinstance(decoded, codec.Error), decoded
        transfer = transfer or source  # the first answer comes from the transfer's port
        assert source == transfer and source[1] != port
        if isinstance(decoded, codec.Oack):
            if not sizes and not oack:  # later ones: retransmissions
                oack = decoded.options
                blksize = int(oack.get("blksize", blksize))
                client.sendto(codec.ack(0), transfer)
            continue
        assert isinstance(decoded, codec.Data)
        if decoded.block == len(sizes) + 1:
            sizes.append(len(decoded.payload))
            body += decoded.payload
        client.sendto(codec.ack(decoded.block), transfer)
        if decoded.block == len(sizes) and sizes[-1] < blksize:
            return oack, sizes, body


def blocks(size: int, blksize: int) -> list[int]:
    """The payload lengths of a `size`-byte file in blocks of `blksize` (RFC 1350: the
    last one short, empty if need be)."""
    return [blksize] * (size // blksize) + [size % blksize]


# Issue 14: each of these requests was ERROR 4 "Malformed request" and the phone got no
# file. RFC 2347 makes them read requests whose odd options the server ignores.
ODD_REQUESTS = {
    "vendor-empty-value": (b"tsize\x000\0x-vendor\0\0", {"tsize": "0"}),
    "blksize-empty-value": (b"blksize\0\0", {}),
    "name-without-value": (b"tsize\x000\0blksize\0", {"tsize": "0"}),
    "nul-padding": (b"blksize\x001024\0\0\0\0", {"blksize": "1024"}),
    "first-valid-blksize": (b"blksize\0\0blksize\x001024\0blksize\x00600\0", {"blksize": "1024"}),
}


@pytest.mark.parametrize("case", list(ODD_REQUESTS))
def test_odd_options_are_ignored_and_the_file_served(server, fresh, case: str) -> None:
    """Each odd request gets the same OACK, the same blocks and the same bytes as the
    request holding only its valid options (and as HTTP serves)."""
    area, valid = ODD_REQUESTS[case]
    name = f"{SPA504G}.xml"  # the largest sample file: 1,582 bytes
    expected = server.expected[name]
    assert len(expected) > 1024  # several blocks of 512, two of 1,024
    odd = fetch_raw(fresh[0], server.tftp_port, codec.rrq(name) + area)
    plain = fetch_raw(fresh[1], server.tftp_port, codec.rrq(name, valid))
    assert odd == plain
    oack, sizes, body = odd
    assert body == expected
    blksize = int(valid.get("blksize", 512))
    assert sizes == blocks(len(expected), blksize)
    assert oack == {k: str(len(expected)) if k == "tsize" else v for k, v in valid.items()}


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


# Stalled transfers: 8 slots, and no progress for 0.5 s x (3 + 1) = 2 s ends a transfer.
TOKEN = "dev-admin-token-change-me"
STALL_CONFIG = {
    "timeout = 1.0           #": "timeout = 0.5           #",
    "retries = 5             #": "retries = 3             #",
    "max_transfers = 1000    #": "max_transfers = 8       #",
}


def serving(tmp_path: Path, replace: dict[str, str]) -> Iterator[XprovProcess]:
    """xprov with the sample config changed by `replace`, its TFTP and admin ports noted."""
    http_port, tftp_port, admin_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
    config = sample_config(
        tmp_path,
        http_port=http_port,
        tftp_port=tftp_port,
        admin_port=admin_port,
        replace=replace,
    )
    with XprovProcess(config, http_port, tmp_path / "xprov.log") as proc:
        proc.tftp_port, proc.admin_port = tftp_port, admin_port
        yield proc


@pytest.fixture
def small(tmp_path: Path):
    yield from serving(tmp_path, STALL_CONFIG)


def tftp_metrics(proc: XprovProcess) -> dict[str, float]:
    """The running server's xprov_tftp_* samples from the admin API's /metrics."""
    text = subprocess.run(
        [
            "curl",
            "-sf",
            "--max-time",
            "5",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            f"http://127.0.0.1:{proc.admin_port}/metrics",
        ],
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout.decode()
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if line.startswith("xprov_tftp"))
    return {name: float(value) for name, value in samples}


def tftp_hpa_get(port: int, name: str, out: Path) -> bytes:
    done = run(["tftp", "-4", "-m", "binary", "127.0.0.1", str(port), "-c", "get", name, str(out)])
    assert done.returncode == 0 and not done.stderr, done.stderr
    return out.read_bytes()


def stall(host: str, port: int, name: str) -> socket.socket:
    """A request asking timeout 255 (RFC 2349's largest) from `host`, never acknowledged;
    returns its socket once the OACK arrived."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    sock.sendto(codec.rrq(name, {"timeout": "255", "tsize": "0"}), ("127.0.0.1", port))
    oack = codec.decode(sock.recvfrom(2048)[0])
    assert isinstance(oack, codec.Oack) and oack.options["timeout"] == "255"
    return sock


def test_stalled_requests_never_lock_phones_out(small, tmp_path: Path) -> None:
    """Requests never acknowledged, asking timeout 255, from eight addresses hold every
    slot: a phone still gets its file (the oldest of them gives up its slot), and the rest
    end within the server's own bound (2 s here), not 255 s x retries."""
    name = f"{YEALINK_T46G}.cfg"
    expected = curl_get(small.http_port, name)
    assert tftp_hpa_get(small.tftp_port, name, tmp_path / "before") == expected
    stalled = [stall(f"127.0.0.{i}", small.tftp_port, name) for i in range(2, 10)]
    try:
        assert tftp_metrics(small)["xprov_tftp_active_transfers"] == 8
        assert tftp_hpa_get(small.tftp_port, name, tmp_path / "tftp-hpa") == expected
        stalled.append(stall("127.0.0.10", small.tftp_port, name))  # every slot held again
        out = tmp_path / "atftp"
        done = run(["atftp", "-g", "-r", name, "-l", str(out), "127.0.0.1", str(small.tftp_port)])
        assert done.returncode == 0, done.stderr
        assert out.read_bytes() == expected
        metrics = wait_for(
            lambda: (m := tftp_metrics(small))["xprov_tftp_active_transfers"] == 0 and m,
            timeout=20,
            what="the stalled transfers to end (bound: 2 s; timeout 255 would be 1,020 s)",
        )
        assert metrics['xprov_tftp_transfers_total{result="ok"}'] == 3
        assert metrics['xprov_tftp_transfers_total{result="failed"}'] == 9  # 2 evicted
        assert "xprov_tftp_rejected_total" not in str(metrics)  # nobody was told busy
    finally:
        for sock in stalled:
            sock.close()


# Requests forged from a phone's own address: the default max_tftp_per_source (8), and a
# 10 s retransmission timer, so never-answered transfers run 60 s, longer than the test.
PHONE = "127.0.0.201"


@pytest.fixture
def patient(tmp_path: Path):
    yield from serving(tmp_path, {"timeout = 1.0           #": "timeout = 10.0           #"})


def never_acknowledged(host: str, port: int, name: str) -> socket.socket:
    """A plain read request for `name` from `host` (as a forger sends it: a UDP source
    address costs nothing), never acknowledged; returns its socket once DATA 1 arrived."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(5)
    sock.sendto(codec.rrq(name), ("127.0.0.1", port))
    data = codec.decode(sock.recvfrom(65535)[0])
    assert isinstance(data, codec.Data) and data.block == 1
    return sock


def test_requests_forged_from_a_phones_address_never_lock_it_out(patient, tmp_path) -> None:
    """Eight never-acknowledged requests from the phone's address fill its
    max_tftp_per_source; the phone (curl, then tftpy, bound to that address) still gets its
    file: each request evicts the oldest forged transfer, whose peer is told nothing.
    Before, the phone got ERROR 0 "busy" until the forged transfers timed out."""
    name = f"{YEALINK_T46G}.cfg"
    expected = curl_get(patient.http_port, name)
    forged = [never_acknowledged(PHONE, patient.tftp_port, "y000000000000.boot") for _ in range(8)]
    try:
        assert tftp_metrics(patient)["xprov_tftp_active_transfers"] == 8
        url = f"tftp://127.0.0.1:{patient.tftp_port}/{name}"
        done = run(["curl", "-sS", "--max-time", "10", "--interface", PHONE, url])
        assert done.returncode == 0 and done.stdout == expected, done.stderr
        # every slot of the address held again (curl's transfer ended)
        forged.append(never_acknowledged(PHONE, patient.tftp_port, "y000000000000.boot"))
        out = tmp_path / "tftpy"
        tftpy.TftpClient("127.0.0.1", patient.tftp_port, localip=PHONE).download(
            name, str(out), timeout=5
        )
        assert out.read_bytes() == expected
        metrics = tftp_metrics(patient)
        assert metrics["xprov_tftp_evicted_total"] == 2
        assert metrics['xprov_tftp_transfers_total{result="ok"}'] == 2
        assert metrics['xprov_tftp_transfers_total{result="failed"}'] == 2  # the evicted
        assert metrics["xprov_tftp_active_transfers"] == 7  # the younger forged ones
        assert "xprov_tftp_rejected_total" not in str(metrics)  # nobody was told busy
        for sock in forged[:2]:  # the evicted: no ERROR, nothing (a retransmission at most)
            assert not [p for p, _ in answers(sock) if codec.is_error(p)]
    finally:
        for sock in forged:
            sock.close()
