"""End to end: xprov serving real files while its monitor watches a real Kamailio, coturn
and MariaDB at two sites. The primary softswitch dies; a phone's next fetch gets the backup."""

from __future__ import annotations

import time

import pytest

from tests.helpers import (
    YEALINK_T46G,
    XprovProcess,
    curl_get,
    free_port,
    site_config,
    wait_for,
    xprov,
)
from tests.peers import Coturn, Kamailio, free_udp_tcp_port

MONITOR = {"interval": 1.0, "timeout": 1.0, "fall": 3, "rise": 2}
# fall rounds after the kill (the first may start just before it) and one deadline
DETECTION_BUDGET = MONITOR["interval"] * MONITOR["fall"] + MONITOR["timeout"] + 1.0


def fetch(port: int) -> bytes:
    return curl_get(port, f"{YEALINK_T46G}.cfg", max_time=2)


def sip_line(body: bytes) -> str:
    lines = body.decode().splitlines()
    address = next(x for x in lines if x.startswith("account.1.sip_server.1.address"))
    port = next(x for x in lines if x.startswith("account.1.sip_server.1.port"))
    return f"{address.split(' = ')[1]}:{port.split(' = ')[1]}"


def target_state(proc: XprovProcess, name: str) -> str:
    return proc.status()["monitor"]["targets"][name]["state"]


@pytest.fixture
def world(tmp_path, mariadb):
    chicago = Kamailio(tmp_path / "chicago", free_udp_tcp_port()).start()
    virginia = Kamailio(tmp_path / "virginia", free_udp_tcp_port(), host="127.0.0.2").start()
    stun1, stun2 = (Coturn(tmp_path / f"stun{i}", free_udp_tcp_port()).start() for i in (1, 2))
    database = {
        "host": mariadb.host,
        "port": mariadb.port,
        "database": mariadb.DATABASE,
        "user": mariadb.USER,
        "password": mariadb.PASSWORD,
    }

    def serve(**monitor):
        http = free_port()
        directory = tmp_path / f"xprov{http}"
        directory.mkdir()
        config = site_config(
            directory,
            {
                "chicago": {
                    "sip": {"host": "127.0.0.1", "port": chicago.port},
                    "stun": {"host": "127.0.0.1", "port": stun1.port},
                    "db": database,
                },
                "virginia": {
                    "sip": {"host": "127.0.0.2", "port": virginia.port},
                    "stun": {"host": "127.0.0.1", "port": stun2.port},
                    "db": database,
                },
            },
            {**MONITOR, **monitor},
            http_port=http,
        )
        return XprovProcess(config, http, config.parent / "xprov.log"), http, config

    yield serve, chicago, virginia
    for peer in (chicago, virginia, stun1, stun2):
        peer.stop()


def test_primary_softswitch_dies_phones_get_the_backup(world) -> None:
    serve, chicago, virginia = world
    proc, http, config = serve()
    with proc:
        wait_for(lambda: target_state(proc, "sip@virginia") == "up", 15, "monitor ready")
        primary, backup = f"127.0.0.1:{chicago.port}", f"127.0.0.2:{virginia.port}"
        assert sip_line(fetch(http)) == primary
        killed = time.monotonic()
        chicago.kill()
        wait_for(lambda: sip_line(fetch(http)) == backup, DETECTION_BUDGET + 2, "switch")
        detected = time.monotonic() - killed
        assert detected <= DETECTION_BUDGET, detected
        body = fetch(http).decode()
        assert "static.sip.nat_stun.port" in body  # stun and db stayed where they were
        info = proc.status()
        assert info["monitor"]["services"]["sip"]["active"] == "virginia"
        assert info["monitor"]["services"]["stun"]["active"] == "chicago"
        assert "sip at chicago down" in info["monitor"]["services"]["sip"]["why"]

        # The primary comes back; failback is manual by default, so nothing moves...
        restarted = Kamailio(chicago.dir, chicago.port).start()
        try:
            wait_for(lambda: target_state(proc, "sip@chicago") == "up", 10, "primary up")
            assert sip_line(fetch(http)) == backup
            # ...until the operator says so.
            done = xprov(config, "failback", "sip")
            assert done.returncode == 0, done.stderr
            assert sip_line(fetch(http)) == primary
        finally:
            restarted.stop()
        proc.stop()
    switches = proc.events("switch")
    assert [(e["before"], e["after"], e["by"]) for e in switches] == [
        ("chicago", "virginia", "auto"),
        ("virginia", "chicago", "operator"),
    ]
    assert switches[0]["failed_probes"]["consecutive"] == MONITOR["fall"]
    assert 0 < switches[0]["detection_s"] <= DETECTION_BUDGET


def test_manual_failover_holds_until_failback(world) -> None:
    serve, chicago, virginia = world
    proc, http, config = serve()
    with proc:
        wait_for(lambda: target_state(proc, "sip@virginia") == "up", 15, "monitor ready")
        done = xprov(config, "failover", "sip", "--to", "virginia")
        assert done.returncode == 0, done.stderr
        assert "manual: virginia" in done.stdout
        assert sip_line(fetch(http)) == f"127.0.0.2:{virginia.port}"
        refused = xprov(config, "failover", "sip", "--to", "denver")
        assert refused.returncode != 0
        done = xprov(config, "failback", "sip")
        assert done.returncode == 0, done.stderr
        assert sip_line(fetch(http)) == f"127.0.0.1:{chicago.port}"


def test_wrong_token_is_refused(world) -> None:
    serve, _, _ = world
    proc, _, config = serve()
    with proc:
        wrong = config.parent / "wrong.toml"
        wrong.write_text(
            config.read_text().replace(
                'token = "dev-admin-token-change-me"', 'token = "another-token-of-length"'
            )
        )
        done = xprov(wrong, "failover", "sip", "--to", "virginia", "--force")
        assert done.returncode == 1 and "refused (401)" in done.stderr
        assert proc.status()["monitor"]["services"]["sip"]["active"] == "chicago"


def test_auto_failback_after_hold_down(world) -> None:
    serve, chicago, virginia = world
    proc, http, _ = serve(failback="auto", hold_down=3.0)
    with proc:
        wait_for(lambda: target_state(proc, "sip@virginia") == "up", 15, "monitor ready")
        chicago.kill()
        wait_for(
            lambda: sip_line(fetch(http)) == f"127.0.0.2:{virginia.port}",
            DETECTION_BUDGET + 2,
            "switch",
        )
        restarted = Kamailio(chicago.dir, chicago.port).start()
        try:
            back = time.monotonic()
            # rise successes, then the hold-down of continuous health, then one round
            budget = MONITOR["rise"] * MONITOR["interval"] + 3.0 + 2 * MONITOR["interval"] + 2
            wait_for(
                lambda: sip_line(fetch(http)) == f"127.0.0.1:{chicago.port}",
                budget,
                "auto failback",
            )
            assert time.monotonic() - back >= 3.0  # never before the hold-down
        finally:
            restarted.stop()
