"""Issue 16: the drill's phones, given several addresses of the provisioning name, try them
in order, as a phone whose provisioning name resolves to one address per data centre
(docs/deployment.md, "Phones reach the surviving instance"): with the first xprov stopped
(refused over HTTP, silence over TFTP) or silent (a TCP listener that never answers),
every phone still gets its files, from the second."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from tests.drill_world import inventory_toml
from tests.helpers import (
    XPROV,
    XprovProcess,
    curl_get,
    free_port,
    port_open,
    sample_config,
    wait_for,
)
from tests.peers import SilentListener

PHONES = 12  # half SPA504G, half T46G (tests/inventory_db.py synthetic)
POLL = 2.0  # seconds between a phone's polls
ATTEMPT = 2.0  # --attempt-timeout: seconds on one address before the next
# Long enough for each phone's first poll, which waits out an attempt on the first
# address for each of its (up to three) files, to end well inside the drill.
SECONDS = 14.0


def instance(tmp: Path, name: str) -> tuple[XprovProcess, Path, int, int]:
    """An xprov of the sample config serving the same PHONES phones: (process, config,
    HTTP port, TFTP port)."""
    directory = tmp / name
    directory.mkdir()
    http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
    config = sample_config(
        directory, http_port=http, tftp_port=tftp, inventory=inventory_toml(PHONES)
    )
    return XprovProcess(config, http, directory / "xprov.log"), config, http, tftp


def drill(config: Path, servers: list[str], tftp_share: float) -> dict[str, Any]:
    args = [*XPROV, "drill", "-c", str(config), "--poll", str(POLL), "--duration", str(SECONDS)]
    args += ["--tftp-share", str(tftp_share), "--attempt-timeout", str(ATTEMPT), "--json"]
    for server in servers:
        args += ["--server", server]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_with_the_first_instance_stopped_every_phone_gets_its_files_from_the_second(
    tmp_path: Path,
) -> None:
    first, config, http_a, tftp_a = instance(tmp_path, "a")
    second, _, http_b, tftp_b = instance(tmp_path, "b")
    with first, second:
        own = "001500000000.xml"  # phone 0's own file: the same bytes from either instance
        assert curl_get(http_a, own) == curl_get(http_b, own)
        first.stop()
        wait_for(lambda: not port_open(http_a), 10, "the first instance's port to close")
        addresses = [f"127.0.0.1:{http_a}:{tftp_a}", f"127.0.0.1:{http_b}:{tftp_b}"]
        result = drill(config, addresses, 0.3)
    a, b = f"127.0.0.1:{http_a}", f"127.0.0.1:{http_b}"
    assert result["errors"] == {} and result["phones"] == PHONES
    assert "http" in result["mix"] and "tftp" in result["mix"]  # refused, and TFTP's silence
    servers = result["servers"]
    assert list(servers) == [a, b]
    assert servers[a]["fetches"] == 0 and servers[a]["phones"] == 0
    # every file was asked of the stopped instance first (and a file the drill's end cut
    # short may have got no further)
    assert servers[a]["failed_attempts"] >= result["requests"] > 0
    assert servers[b] == {"fetches": result["requests"], "failed_attempts": 0, "phones": PHONES}


def test_a_silent_first_address_times_out_to_the_second(tmp_path: Path) -> None:
    second, config, http_b, _ = instance(tmp_path, "b")
    with second, SilentListener() as silent:
        result = drill(config, [f"127.0.0.1:{silent.port}", f"127.0.0.1:{http_b}"], 0.0)
    a, b = f"127.0.0.1:{silent.port}", f"127.0.0.1:{http_b}"
    assert result["errors"] == {} and result["phones"] == PHONES
    servers = result["servers"]
    assert servers[a]["fetches"] == 0 and servers[a]["phones"] == 0
    assert servers[a]["failed_attempts"] >= result["requests"] > 0
    assert servers[b] == {"fetches": result["requests"], "failed_attempts": 0, "phones": PHONES}
    # each file first waited out its attempt on the silent address: a timeout, not a
    # refusal (a timer never fires early; 10% for the clocks' rounding)
    assert result["latency_ms"]["p50"] >= 0.9 * ATTEMPT * 1000
