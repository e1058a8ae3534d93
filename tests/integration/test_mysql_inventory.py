"""The MySQL inventory against a real MariaDB: load, bad rows, a dead or hanging database."""

from __future__ import annotations

import time

import pytest

from tests.helpers import SPA504G, YEALINK_T46G, sample_config, xprov
from tests.inventory_db import db_service, execute, insert, reset, sample_phones
from tests.peers import SilentListener, free_udp_tcp_port
from xprov.build import load_inventory
from xprov.inventory import InventoryError, mysql_source
from xprov.inventory.file_source import load_file


@pytest.fixture
def sample_db(mariadb):
    reset(mariadb)
    insert(mariadb, sample_phones())
    return mariadb


def test_db_init_creates_the_tables(tmp_path, mariadb) -> None:
    execute(mariadb, "DROP TABLE IF EXISTS phone_lines")
    execute(mariadb, "DROP TABLE IF EXISTS phones")
    config = sample_config(tmp_path, {"port = 3307": f"port = {mariadb.port}"})
    done = xprov(config, "db", "init")
    assert done.returncode == 0, done.stderr
    assert "tables phones and phone_lines ready" in done.stdout
    tables = mariadb.sql(f"SHOW TABLES FROM {mariadb.DATABASE}").split()
    assert sorted(tables) == ["phone_lines", "phones"]
    again = xprov(config, "db", "init")
    assert again.returncode == 0  # idempotent


def test_loads_the_same_phones_as_the_file(tmp_path, sample_db) -> None:
    inventory, report = mysql_source.load(db_service(sample_db), 5, 1, "mysql:test")
    from tests.helpers import ETC

    expected = load_file(ETC / "inventory.toml", 1)
    assert dict(inventory.phones) == dict(expected.phones)
    assert report.phones == 4 and report.skipped == 0 and report.problems == []
    phone = inventory.get(SPA504G)
    assert phone is not None and phone.lines[0].password == "spa&<2001>\"'Secret"


def test_group_and_vars(sample_db) -> None:
    execute(
        sample_db,
        "UPDATE phones SET grp = 'acme', vars = %s WHERE mac = %s",
        '{"timezone": "-5", "dect": true}',
        "00:15:65:74:b1:50",
    )
    inventory, _ = mysql_source.load(db_service(sample_db), 5, 1, "t")
    phone = inventory.get(YEALINK_T46G)
    assert phone is not None and phone.group == "acme"
    assert dict(phone.vars) == {"timezone": "-5", "dect": True}


def test_bad_rows_are_skipped_and_reported(sample_db) -> None:
    previous, _ = mysql_source.load(db_service(sample_db), 5, 1, "t")
    insert(
        sample_db,
        [
            {"mac": "not-a-mac", "vendor": "yealink", "model": "T46G", "lines": []},
            {"mac": "001565aaaaaa", "vendor": "polycom", "model": "VVX", "lines": []},
            {
                "mac": "001565abcdef",
                "vendor": "yealink",
                "model": "T46G",
                "vars": "{broken",
                "lines": [],
            },
            {"mac": "0015.6574.b150", "vendor": "yealink", "model": "T46G", "lines": []},
        ],
    )
    # a good phone turned bad keeps its last good record
    execute(
        sample_db,
        "UPDATE phone_lines SET password = %s WHERE mac = %s AND number = 1",
        "line\nbreak",
        "805EC0D57D72",
    )
    inventory, report = mysql_source.load(db_service(sample_db), 5, 2, "t", previous)
    # not-a-mac, polycom and broken vars are left out; the T46G (duplicated in another
    # notation) and the T31G (a control character) keep their last good records
    assert report.skipped == 3 and report.kept_previous == 2
    assert sorted(inventory.phones) == sorted(previous.phones)
    assert inventory.get("805ec0d57d72") == previous.get("805ec0d57d72")
    text = "\n".join(report.problems)
    assert "'not-a-mac': mac: not a MAC address" in text
    assert "'001565aaaaaa': vendor: 'polycom' is not one of linksys, yealink" in text
    assert "vars: not a JSON object" in text
    assert "mac: duplicate of an earlier phone" in text
    assert "lines[0].password: contains a control character" in text
    assert "line\nbreak" not in text


def test_a_dead_database_fails_the_load(mariadb) -> None:
    dead = db_service(mariadb, port=free_udp_tcp_port())
    with pytest.raises(Exception, match="Connection refused"):
        mysql_source.load(dead, 2, 1, "t")


def test_a_hanging_database_is_bounded_by_the_timeouts(mariadb) -> None:
    with SilentListener() as silent:
        hung = db_service(mariadb, host=silent.host, port=silent.port)
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - PyMySQL's own error types vary
            mysql_source.load(hung, 1.0, 1, "t")
        assert time.monotonic() - started < 5


def test_falls_back_to_the_next_site_at_start(tmp_path, sample_db) -> None:
    from xprov import config as xconfig

    path = sample_config(
        tmp_path,
        {
            'source = "file"\npath = "inventory.toml"': 'source = "mysql"',
            "port = 3307": f"port = {free_udp_tcp_port()}",
            'host = "127.0.0.2"\nport = 3308': f'host = "127.0.0.1"\nport = {sample_db.port}',
        },
    )
    cfg = xconfig.load(path)
    inventory, _ = load_inventory(cfg, 1, ["chicago", "virginia"])
    assert len(inventory) == 4 and inventory.source.startswith("mysql:virginia")
    with pytest.raises(InventoryError) as info:
        load_inventory(cfg, 1, ["chicago"])
    assert "inventory from chicago" in info.value.problems[0]
    assert "provpass" not in str(info.value.problems)
