"""xprov serving phones from MySQL: periodic refresh, a dead database (the last snapshot
keeps serving), a hanging one (timeouts bound the refresh) and the switch to the backup."""

from __future__ import annotations

import pytest

from tests.helpers import (
    SPA942,
    XprovProcess,
    curl_get,
    free_port,
    site_config,
    wait_for,
)
from tests.inventory_db import execute, insert, reset, sample_phones
from tests.peers import Kamailio, MariaDB, free_udp_tcp_port

NAME = f"{SPA942}.xml"


def fetch(port: int) -> bytes:
    return curl_get(port, NAME)


@pytest.fixture(scope="module")
def backup_db(tmp_path_factory):
    with MariaDB(tmp_path_factory.mktemp("backup-db"), free_udp_tcp_port()) as server:
        yield server


@pytest.fixture
def softswitch(tmp_path):
    with Kamailio(tmp_path / "kamailio", free_udp_tcp_port()) as peer:
        yield peer


def serve(tmp_path, softswitch, primary_db, backup_db, read_timeout=1.0, **monitor):
    def site(db):
        return {
            "sip": {"host": "127.0.0.1", "port": softswitch.port},
            "db": {
                "host": db.host,
                "port": db.port,
                "database": db.DATABASE,
                "user": db.USER,
                "password": db.PASSWORD,
            },
        }

    http = free_port()
    config = site_config(
        tmp_path,
        {"chicago": site(primary_db), "virginia": site(backup_db)},
        {"interval": 1.0, "timeout": 1.0, **monitor},
        http_port=http,
    )
    text = config.read_text().replace(
        'source = "file"\npath = "inventory.toml"',
        f'source = "mysql"\nrefresh = 1.0\ntimeout = {read_timeout}',
    )
    config.write_text(text)
    return XprovProcess(config, http, tmp_path / "xprov.log"), http, config


@pytest.fixture
def databases(mariadb, backup_db):
    for server, password in ((mariadb, "primary-Secret"), (backup_db, "backup-Secret")):
        reset(server)
        insert(server, sample_phones())
        execute(
            server, "UPDATE phone_lines SET password = %s WHERE mac = %s", password, "000e08aabbcc"
        )
    return mariadb, backup_db


def test_serves_and_refreshes_from_mysql(tmp_path, softswitch, databases) -> None:
    primary, _ = databases
    proc, http, _ = serve(tmp_path, softswitch, primary, primary)
    with proc:
        assert b"primary-Secret" in fetch(http)
        execute(
            primary,
            "UPDATE phone_lines SET display_name = 'Renamed' WHERE mac = %s",
            "000e08aabbcc",
        )
        wait_for(lambda: b"Renamed" in fetch(http), 15, "refresh")
        assert proc.events("inventory_refreshed")


def test_dead_or_hanging_database_keeps_the_last_snapshot(tmp_path, softswitch, databases) -> None:
    primary, _ = databases
    proc, http, _ = serve(tmp_path, softswitch, primary, primary)  # both sites: one database
    with proc:
        body = fetch(http)
        primary.pause()  # hung: connects, never answers
        try:
            wait_for(lambda: proc.events("inventory_refresh_failed"), 15, "refresh fails")
            for _ in range(20):
                assert fetch(http) == body
            failed = proc.events("inventory_refresh_failed")[0]
            assert "(timed out)" in failed["problems"][0]  # bounded by the read timeout
            assert failed["keeping"] == "snapshot generation 1"
        finally:
            primary.resume()
        primary.kill()
        try:
            count = len(proc.events("inventory_refresh_failed"))
            wait_for(
                lambda: len(proc.events("inventory_refresh_failed")) > count,
                15,
                "refresh fails again",
            )
            last = proc.events("inventory_refresh_failed")[-1]
            assert "Connection refused" in last["problems"][0]
            assert fetch(http) == body
        finally:
            primary.start()
        assert "provpass" not in proc.log()


def serving_the_primary_backup_up(proc: XprovProcess, http: int) -> None:
    """The primary's phones are served and the monitor knows the backup database is up."""
    assert b"primary-Secret" in fetch(http)
    wait_for(
        lambda: proc.status()["monitor"]["targets"]["db@virginia"]["state"] == "up",
        15,
        "backup db known up",
    )


def test_refresh_follows_the_db_switch_to_the_backup(tmp_path, softswitch, databases) -> None:
    primary, backup = databases
    proc, http, _ = serve(tmp_path, softswitch, primary, backup)
    with proc:
        serving_the_primary_backup_up(proc, http)
        primary.pause()  # the monitor sees the primary database hang and switches db
        try:
            wait_for(lambda: b"backup-Secret" in fetch(http), 20, "refresh from the backup")
            switch = proc.events("switch")
            assert [(e["service"], e["after"]) for e in switch] == [("db", "virginia")]
            refreshed = proc.events("inventory_refreshed")[-1]
            assert refreshed["source"].startswith("mysql:virginia")
        finally:
            primary.resume()


def test_a_db_switch_reads_the_backup_while_the_primary_read_hangs(
    tmp_path, softswitch, databases
) -> None:
    """Issue 13, item 5: the scheduled refresh against the hung primary holds its read for
    the whole MySQL read timeout (60 s here); the switch must not wait for it. The backup's
    phones serve long before that read could have ended, and its late result is dropped."""
    primary, backup = databases
    proc, http, _ = serve(tmp_path, softswitch, primary, backup, read_timeout=60.0)
    with proc:
        serving_the_primary_backup_up(proc, http)
        primary.pause()  # the next refresh (every 1 s) hangs in its read for 60 s
        try:
            wait_for(lambda: proc.events("switch"), 20, "the db switch")
            # Well under the 60 s the hung read holds: the backup was read beside it.
            wait_for(lambda: b"backup-Secret" in fetch(http), 20, "the backup's phones")
            refreshed = proc.events("inventory_refreshed")[-1]
            assert refreshed["source"].startswith("mysql:virginia")
            assert [(e["service"], e["after"]) for e in proc.events("switch")] == [
                ("db", "virginia")
            ]
            assert not proc.events("inventory_read_dropped")  # the hung read is still hung
        finally:
            primary.resume()
        # Released, the stale read returns from a database that is no longer active: dropped.
        wait_for(lambda: proc.events("inventory_read_dropped"), 20, "the stale read dropped")
        assert proc.events("inventory_read_dropped")[0]["reason"] == "stale_site"
        assert proc.events("inventory_read_dropped")[0]["site"] == "chicago"
        for _ in range(5):
            assert b"backup-Secret" in fetch(http)
