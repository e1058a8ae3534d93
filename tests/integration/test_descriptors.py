"""xprov under a low RLIMIT_NOFILE (systemd's default soft limit was 1,024): phones holding
every connection and transfer they may must never blind the monitor.

The issue, reproduced on a running server: ~1,010 idle connections made new HTTP
connections reset, TFTP answer busy, and every SIP and STUN probe fail with EMFILE (labelled
"DNS:"), so every target went down. Here a real xprov runs under `prlimit` with caps far
above what the limit allows, against real Kamailio and coturn at two sites; loopback
clients from several addresses take every connection and transfer they can, and the probes
must keep answering round after round.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.certs import authority
from tests.helpers import XprovProcess, free_port, site_config, wait_for
from tests.peers import Coturn, Kamailio, free_udp_tcp_port
from xprov import config, descriptors
from xprov.tftp import codec

SOFT, HARD = 200, 256  # xprov raises the soft limit to the hard one
PHONES = [f"127.0.0.{n}" for n in range(10, 15)]  # 5 sources: within every per-source cap
EXTRA = 9  # connections (and 3 transfers) beyond each cap: every one must be refused
ROUNDS = 4  # probe rounds that must pass while phones hold everything
TOKEN = "dev-admin-token-change-me"
SHARED_FILE = "y000000000028.cfg"  # served to anyone
SHARED_PREFIX = b"#!versio"  # its first 8 bytes


@pytest.fixture
def peers(tmp_path):
    started = [
        Kamailio(tmp_path / "chicago", free_udp_tcp_port()).start(),
        Kamailio(tmp_path / "virginia", free_udp_tcp_port(), host="127.0.0.2").start(),
        Coturn(tmp_path / "stun1", free_udp_tcp_port()).start(),
        Coturn(tmp_path / "stun2", free_udp_tcp_port()).start(),
    ]
    yield started
    for peer in started:
        peer.stop()


def serve(tmp_path: Path, peers: list) -> tuple[XprovProcess, dict[str, int]]:
    chicago, virginia, stun1, stun2 = peers
    ports = {"http": free_port(), "https": free_port(), "admin": free_port()}
    ports["tftp"] = free_port(socket.SOCK_DGRAM)
    path = site_config(
        tmp_path,
        {
            "chicago": {
                "sip": {"host": "127.0.0.1", "port": chicago.port},
                "stun": {"host": "127.0.0.1", "port": stun1.port},
            },
            "virginia": {
                "sip": {"host": "127.0.0.2", "port": virginia.port},
                "stun": {"host": "127.0.0.1", "port": stun2.port},
            },
        },
        {"interval": 1.0, "timeout": 1.0, "fall": 3, "rise": 2},
        http_port=ports["http"],
        admin_port=ports["admin"],
        tftp_port=ports["tftp"],
    )
    cert, key = authority(tmp_path, "server", "IP:127.0.0.1")
    text = path.read_text()
    # Idle phones are not cut off while the test looks (connections stay for the 30 s idle
    # timeout of twisted.web), nor are held transfers retransmitted to their end.
    text = text.replace("header_timeout = 10 ", "header_timeout = 300 ")
    text = text.replace("timeout = 1.0           # seconds before", "timeout = 30  # before")
    text += f'\n[https]\nlisten = ["127.0.0.1:{ports["https"]}"]\n'
    text += f'certificate = "{cert}"\nprivate_key = "{key}"\n'
    path.write_text(text)
    prefix = ["prlimit", f"--nofile={SOFT}:{HARD}"]
    return XprovProcess(path, ports["http"], tmp_path / "xprov.log", prefix=prefix), ports


def status(ports: dict[str, int]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{ports['admin']}/status", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def all_up(ports: dict[str, int]) -> bool:
    targets = status(ports)["monitor"]["targets"]
    return len(targets) == 4 and all(t["state"] == "up" for t in targets.values())


def hold_connections(port: int, count: int) -> list[socket.socket]:
    """`count` idle TCP connections to `port`, spread over the phones' addresses."""
    held = []
    for n in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((PHONES[n % len(PHONES)], 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", port))  # the kernel's backlog accepts; xprov decides after
        s.setblocking(False)
        held.append(s)
    return held


def closed_by_the_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False  # open and silent: held
    except ConnectionResetError:
        return True


def hold_transfers(port: int, count: int) -> tuple[list[socket.socket], list[codec.Packet]]:
    """`count` read requests of 8-byte blocks whose client acknowledges the OACK, then stops
    (an answering client keeps its slot: only never-answered transfers are evicted); each
    request's first answer."""
    held, answers = [], []
    for n in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((PHONES[n % len(PHONES)], 0))
        s.settimeout(5)
        s.sendto(codec.rrq(SHARED_FILE, {"blksize": "8"}), ("127.0.0.1", port))
        datagram, transfer_port = s.recvfrom(65536)
        answers.append(codec.decode(datagram))  # OACK, or ERROR busy
        if isinstance(answers[-1], codec.Oack):
            s.sendto(codec.ack(0), transfer_port)
            assert codec.decode(s.recvfrom(65536)[0]) == codec.Data(1, SHARED_PREFIX)
        held.append(s)
    return held, answers


def test_phones_holding_every_descriptor_never_blind_the_monitor(tmp_path, peers) -> None:
    proc, ports = serve(tmp_path, peers)
    held: list[socket.socket] = []
    with proc, contextlib.ExitStack() as closing:
        closing.callback(lambda: [s.close() for s in held])
        wait_for(lambda: '"event": "started"' in proc.log(), 15, "every listener bound")
        # The start says the caps were lowered, and by how much.
        expected = descriptors.budget_of(config.load(proc.config), HARD)
        (lowered,) = proc.events("descriptor_caps_lowered")
        assert lowered["level"] == "warning"
        assert {k: lowered[k] for k in expected.fields()} == expected.fields()
        assert lowered["raised_from"] == SOFT and lowered["limit"] == HARD
        assert lowered["wanted"] == {"http": 10_000, "https": 10_000, "tftp": 1000}
        caps = expected.caps
        assert expected.fit is descriptors.Fit.LOWERED and caps.kinds == 3
        assert caps.total <= HARD - expected.reserve
        wait_for(lambda: all_up(ports), 20, "every target up")

        # Phones take every HTTP and HTTPS connection, and then some.
        held += hold_connections(ports["http"], caps.http + EXTRA)
        held += hold_connections(ports["https"], caps.https + EXTRA)
        wait_for(
            lambda: sum(closed_by_the_server(s) for s in held) == 2 * EXTRA,
            30,
            "the connections beyond the caps closed",
        )
        refusals = [e for e in proc.events("security") if e["reason"] == "too many connections"]
        assert len(refusals) == 2 * EXTRA and {e["client"] for e in refusals} <= set(PHONES)
        refused = subprocess.run(
            ["curl", "-s", "--max-time", "5", f"http://127.0.0.1:{ports['http']}/{SHARED_FILE}"],
            capture_output=True,
            timeout=10,
        )
        assert refused.returncode in (52, 56) and refused.stdout == b""  # closed: no answer

        # ...and every TFTP transfer; a real client is then told the server is busy.
        transfers, answers = hold_transfers(ports["tftp"], caps.tftp + 3)
        held += transfers
        busy = codec.Error(0, "Server busy, try later")
        assert sum(isinstance(a, codec.Oack) for a in answers) == caps.tftp
        assert answers.count(busy) == 3
        client = subprocess.run(
            ["tftp", "127.0.0.1", str(ports["tftp"]), "-c", "get", SHARED_FILE, "/dev/null"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Server busy" in client.stdout + client.stderr

        # Phones hold all they may: the probes go on, round after round.
        before = status(ports)
        assert before["descriptors"]["held"] == caps.fields()
        wait_for(
            lambda: status(ports)["monitor"]["rounds"] >= before["monitor"]["rounds"] + ROUNDS,
            30,
            f"{ROUNDS} probe rounds",
        )
        after = status(ports)
        assert after["descriptors"]["held"] == caps.fields()  # still held throughout
        for name, target in after["monitor"]["targets"].items():
            assert (target["state"], target["consecutive_failures"]) == ("up", 0), name
            assert target["last"]["ok"] and target["last"]["cause"] == "target", name
        assert {s: v["active"] for s, v in after["monitor"]["services"].items()} == {
            "sip": "chicago",
            "stun": "chicago",
        }
        assert not after["monitor"]["switching_suspended"]
        # Besides phones' descriptors the process holds no more than the reserve.
        open_now = len(os.listdir(f"/proc/{proc.proc.pid}/fd"))
        assert open_now - caps.total <= expected.reserve, open_now

        # Phones hang up: new ones are served again.
        for s in held:
            s.close()
        gone = {"http": 0, "https": 0, "tftp": caps.tftp}  # transfers wait out their retries
        wait_for(lambda: status(ports)["descriptors"]["held"] == gone, 30, "connections gone")
        served = subprocess.run(
            ["curl", "-sf", "--max-time", "5", f"http://127.0.0.1:{ports['http']}/{SHARED_FILE}"],
            capture_output=True,
            timeout=10,
        )
        assert served.returncode == 0 and served.stdout.startswith(b"#!version")
        proc.stop()
    events = proc.events()
    assert not [e for e in events if e["event"] in ("switch", "probes_not_made")]
    assert not [e for e in events if e["event"] == "target_state" and e["after"] == "down"]
    assert "EMFILE" not in proc.log() and "Too many open files" not in proc.log()
