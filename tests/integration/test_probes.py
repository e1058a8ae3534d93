"""Every probe against real servers started from Debian packages: Kamailio (UDP, TCP, TLS),
coturn, MariaDB; killed (SIGKILL), stopped (SIGSTOP) and a listener that never speaks. Run
through `xprov probe --json`, each verdict must come within its deadline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.certs import authority
from tests.helpers import site_config, xprov
from tests.peers import Coturn, Kamailio, SilentListener, free_udp_tcp_port

TIMEOUT = 1.0
SLACK = 0.3  # process and scheduling noise on a loaded 2-core machine


def probe(tmp: Path, sites: dict, **monitor) -> tuple[int, dict[str, dict]]:
    config = site_config(tmp, sites, {"timeout": TIMEOUT, **monitor})
    done = xprov(config, "probe", "--json")
    assert done.stdout, done.stderr
    return done.returncode, {row["target"]: row for row in json.loads(done.stdout)}


def sip(peer: Kamailio, transport: str = "udp", **extra) -> dict:
    port = peer.tls_port if transport == "tls" else peer.port
    return {"sip": {"host": peer.host, "port": port, "transport": transport, **extra}}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return authority(tmp_path_factory.mktemp("cert"), "sip.test", "DNS:sip.test")


@pytest.fixture
def kamailio(tmp_path, certificate):
    with Kamailio(
        tmp_path / "kamailio", free_udp_tcp_port(), tls_port=free_udp_tcp_port(), cert=certificate
    ) as peer:
        yield peer


@pytest.fixture
def backup(tmp_path):
    with Kamailio(tmp_path / "backup", free_udp_tcp_port(), host="127.0.0.2") as peer:
        yield peer


@pytest.fixture
def coturn(tmp_path):
    with Coturn(tmp_path / "coturn", free_udp_tcp_port()) as peer:
        yield peer


def db(server, **extra) -> dict:
    return {
        "db": {
            "host": server.host,
            "port": server.port,
            "database": server.DATABASE,
            "user": server.USER,
            "password": server.PASSWORD,
            **extra,
        }
    }


def within_deadline(row: dict) -> None:
    assert row["latency_ms"] <= (TIMEOUT + SLACK) * 1000, row


def test_everything_up(tmp_path, kamailio, backup, coturn, mariadb) -> None:
    code, rows = probe(
        tmp_path,
        {
            "chicago": {
                **sip(kamailio),
                "stun": {"host": "127.0.0.1", "port": coturn.port},
                **db(mariadb),
            },
            "virginia": {
                **sip(backup),
                "stun": {"host": "127.0.0.1", "port": coturn.port},
                **db(mariadb),
            },
        },
    )
    assert code == 0
    assert rows["sip@chicago"]["ok"] and rows["sip@chicago"]["detail"] == "200 OK"
    assert rows["sip@virginia"]["ok"]
    assert rows["stun@chicago"]["ok"] and rows["stun@chicago"]["detail"].startswith(
        "mapped 127.0.0.1:"
    )
    assert rows["db@chicago"]["ok"]
    assert rows["db@chicago"]["detail"] == "SELECT 1 ok, read_only=0 (new connection)"
    for row in rows.values():
        within_deadline(row)


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_sip_transports(tmp_path, kamailio, backup, certificate, transport) -> None:
    extra = (
        {"tls_server_name": "sip.test", "tls_ca": str(certificate[0])}
        if (transport == "tls")
        else {}
    )
    _, rows = probe(
        tmp_path, {"chicago": sip(kamailio, transport, **extra), "virginia": sip(backup)}
    )
    assert rows["sip@chicago"]["ok"], rows["sip@chicago"]
    assert (
        rows["sip@chicago"]["probe"]
        == f"sip {transport} 127.0.0.1:{kamailio.tls_port if transport == 'tls' else kamailio.port}"
    )


def test_tls_with_an_untrusted_certificate_is_down(tmp_path, kamailio, backup) -> None:
    _, rows = probe(
        tmp_path,
        {"chicago": sip(kamailio, "tls", tls_server_name="sip.test"), "virginia": sip(backup)},
    )
    assert not rows["sip@chicago"]["ok"]
    within_deadline(rows["sip@chicago"])


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_killed_softswitch(tmp_path, kamailio, backup, transport) -> None:
    kamailio.kill()
    code, rows = probe(tmp_path, {"chicago": sip(kamailio, transport), "virginia": sip(backup)})
    assert code == 1  # a primary is down
    row = rows["sip@chicago"]
    assert not row["ok"]
    assert row["detail"] == (
        "ICMP port unreachable" if transport == "udp" else "connection refused"
    )
    assert row["latency_ms"] < 300  # refused at once: no waiting for the deadline
    assert rows["sip@virginia"]["ok"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_stopped_softswitch_times_out_at_the_deadline(
    tmp_path, kamailio, backup, transport
) -> None:
    kamailio.pause()
    try:
        _, rows = probe(tmp_path, {"chicago": sip(kamailio, transport), "virginia": sip(backup)})
    finally:
        kamailio.resume()
    row = rows["sip@chicago"]
    assert (row["ok"], row["detail"]) == (False, "timeout")
    assert row["latency_ms"] >= TIMEOUT * 1000
    within_deadline(row)


@pytest.mark.parametrize(
    ("code", "reason", "down_codes", "ok"),
    [
        (503, "Service Unavailable", None, False),
        (500, "Server Error", None, False),
        (404, "Not Found", None, True),
        (404, "Not Found", [404, 503], False),
    ],
)
def test_final_reply_verdicts(tmp_path, backup, code, reason, down_codes, ok) -> None:
    with Kamailio(tmp_path / "answers", free_udp_tcp_port(), code=code, reason=reason) as peer:
        monitor = {"sip_down_codes": down_codes} if down_codes else {}
        _, rows = probe(tmp_path, {"chicago": sip(peer), "virginia": sip(backup)}, **monitor)
    assert rows["sip@chicago"]["ok"] is ok
    assert rows["sip@chicago"]["detail"] == f"{code} {reason}"


def test_stun_killed_and_stopped(tmp_path, coturn, backup) -> None:
    sites = {
        "chicago": {**sip(backup), "stun": {"host": "127.0.0.1", "port": coturn.port}},
        "virginia": {**sip(backup), "stun": {"host": "127.0.0.1", "port": coturn.port}},
    }
    coturn.pause()
    try:
        _, rows = probe(tmp_path, sites)
    finally:
        coturn.resume()
    assert (rows["stun@chicago"]["ok"], rows["stun@chicago"]["detail"]) == (False, "timeout")
    within_deadline(rows["stun@chicago"])
    coturn.kill()
    _, rows = probe(tmp_path, sites)
    assert (rows["stun@chicago"]["ok"], rows["stun@chicago"]["detail"]) == (
        False,
        "ICMP port unreachable",
    )
    assert rows["stun@chicago"]["latency_ms"] < 300


def test_database_verdicts(tmp_path, backup, mariadb) -> None:
    base = sip(backup)
    with SilentListener() as silent:
        _, rows = probe(
            tmp_path,
            {
                "chicago": {**base, **db(mariadb, password="wrong-Secret-1")},
                "virginia": {
                    **base,
                    "db": {
                        "host": silent.host,
                        "port": silent.port,
                        "database": "x",
                        "user": "x",
                        "password": "xxxx",
                    },
                },
            },
        )
    denied = rows["db@chicago"]
    assert not denied["ok"] and "Access denied" in denied["detail"]
    assert "wrong-Secret-1" not in json.dumps(rows)
    hung = rows["db@virginia"]
    assert (hung["ok"], hung["detail"]) == (False, "timeout")
    within_deadline(hung)

    _, rows = probe(
        tmp_path,
        {
            "chicago": {**base, **db(mariadb, expect_read_only=True)},
            "virginia": {**base, **db(mariadb, expect_read_only=False)},
        },
    )
    assert rows["db@chicago"] == {
        **rows["db@chicago"],
        "ok": False,
        "detail": "read_only is 0, expected 1",
    }
    assert rows["db@virginia"]["ok"]


def test_database_stopped_then_killed(tmp_path, backup, mariadb) -> None:
    sites = {"chicago": {**sip(backup), **db(mariadb)}, "virginia": {**sip(backup), **db(mariadb)}}
    mariadb.pause()
    try:
        _, rows = probe(tmp_path, sites)
    finally:
        mariadb.resume()
    assert (rows["db@chicago"]["ok"], rows["db@chicago"]["detail"]) == (False, "timeout")
    within_deadline(rows["db@chicago"])
    mariadb.kill()
    try:
        _, rows = probe(tmp_path, sites)
        assert not rows["db@chicago"]["ok"] and "Connection refused" in rows["db@chicago"]["detail"]
        assert rows["db@chicago"]["latency_ms"] < 300
    finally:
        mariadb.start()  # the session's other tests need it
    _, rows = probe(tmp_path, sites)
    assert rows["db@chicago"]["ok"]


def test_database_probe_keeps_its_connection(tmp_path, mariadb) -> None:
    from tests.inventory_db import db_service
    from xprov.monitor.mysql import DatabaseProbe

    probe = DatabaseProbe(db_service(mariadb), TIMEOUT, fresh_every=4)
    assert probe.check() == (True, "SELECT 1 ok, read_only=0 (new connection)")
    kept = probe.connection
    assert probe.check() == (True, "SELECT 1 ok, read_only=0")
    assert probe.check() == (True, "SELECT 1 ok, read_only=0")
    assert probe.connection is kept
    assert probe.check()[1].endswith("(new connection)")  # every fresh_every-th round
    assert probe.connection is not kept
    mariadb.pause()
    try:
        ok, detail = probe.check()  # the kept connection times out
    finally:
        mariadb.resume()
    assert not ok and "timed out" in detail and probe.connection is None
    assert probe.check()[1].endswith("(new connection)")
    mariadb.kill()
    try:
        ok, detail = probe.check()
        assert not ok and probe.connection is None
        ok, detail = probe.check()
        assert not ok and "Connection refused" in detail
    finally:
        mariadb.start()
    assert probe.check()[0]
    probe.close()
