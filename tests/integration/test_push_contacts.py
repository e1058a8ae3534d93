"""Contacts from a Kamailio-style usrloc `location` table (schema version 8) in a real
MariaDB: which rows a push reads, the address it sends to, the bound on rows, and a database
that hangs (issue 18)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.helpers import (
    ETC,
    SPA504G,
    SPA942,
    YEALINK_T46G,
    XprovProcess,
    free_port,
    sample_config,
    wait_for,
    xprov,
)
from tests.inventory_db import db_service
from tests.peers import SilentListener
from xprov.inventory.file_source import load_file
from xprov.push import contacts
from xprov.push.contacts import MAX_CONTACTS, ContactsError

INVENTORY = load_file(ETC / "inventory.toml", 1)

# kamailio utils/kamctl/mysql/usrloc-create.sql @125eab75 (fact sheet 4.1): the columns and
# types of schema version 8, under the name a test gives it.
LOCATION = """
CREATE TABLE `{table}` (
    `id` INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    `ruid` VARCHAR(64) DEFAULT '' NOT NULL,
    `username` VARCHAR(64) DEFAULT '' NOT NULL,
    `domain` VARCHAR(64) DEFAULT NULL,
    `contact` VARCHAR(255) DEFAULT '' NOT NULL,
    `received` VARCHAR(128) DEFAULT NULL,
    `path` VARCHAR(512) DEFAULT NULL,
    `expires` DATETIME DEFAULT '2030-05-28 21:32:15' NOT NULL,
    `q` FLOAT(10,2) DEFAULT 1.0 NOT NULL,
    `callid` VARCHAR(255) DEFAULT 'Default-Call-ID' NOT NULL,
    `cseq` INT(11) DEFAULT 1 NOT NULL,
    `last_modified` DATETIME DEFAULT '2000-01-01 00:00:01' NOT NULL,
    `flags` INT(11) DEFAULT 0 NOT NULL,
    `cflags` INT(11) DEFAULT 0 NOT NULL,
    `user_agent` VARCHAR(255) DEFAULT '' NOT NULL,
    `socket` VARCHAR(64) DEFAULT NULL,
    `methods` INT(11) DEFAULT NULL,
    `instance` VARCHAR(255) DEFAULT NULL,
    `reg_id` INT(11) DEFAULT 0 NOT NULL,
    `server_id` INT(11) DEFAULT 0 NOT NULL,
    `connection_id` INT(11) DEFAULT 0 NOT NULL,
    `keepalive` INT(11) DEFAULT 0 NOT NULL,
    `partition` INT(11) DEFAULT 0 NOT NULL,
    CONSTRAINT ruid_idx UNIQUE (`ruid`)
);
CREATE INDEX account_contact_idx ON `{table}` (`username`, `domain`, `contact`);
CREATE INDEX expires_idx ON `{table}` (`expires`);
"""


def location_table(mariadb, table: str) -> None:
    mariadb.sql(
        f"USE {mariadb.DATABASE}; DROP TABLE IF EXISTS `{table}`;" + LOCATION.format(table=table)
    )


def register(mariadb, table: str, rows: list[tuple[str, str, str | None, int, str]]) -> None:
    """Rows as Kamailio's registrar writes them: (username, contact, received, expires in s
    from now, user agent)."""
    values = ",".join(
        f"('r{i}-{user}', '{user}', 'example.com', '{contact}', "
        f"{'NULL' if received is None else repr(received)}, "
        f"NOW() + INTERVAL {expires} SECOND, NOW(), '{agent}')"
        for i, (user, contact, received, expires, agent) in enumerate(rows)
    )
    mariadb.sql(
        f"USE {mariadb.DATABASE}; INSERT INTO `{table}` (ruid, username, domain, contact, "
        f"received, expires, last_modified, user_agent) VALUES {values}"
    )


def test_contacts_from_the_location_table(mariadb) -> None:
    location_table(mariadb, "location")
    register(
        mariadb,
        "location",
        [
            ("2003", "sip:2003@10.0.0.9:5060", None, 3500, "Linksys/SPA-942"),  # its newest
            ("1002", "sip:1002@10.0.0.5:5062", None, 3400, "Yealink SIP-T46G"),  # line 2
            ("1001", "sip:1001@10.0.0.5:5062", "sip:198.51.100.7:40001", 3300, "Yealink"),
            ("2001", "sip:2001@10.0.0.8:5060;transport=udp", None, 3200, "Cisco/SPA504G"),
            ("9999", "sip:9999@10.0.0.99", None, 3100, "not ours"),
            ("2003", "sip:2003@10.0.0.10:5060", None, 600, "Linksys/SPA-942"),  # older
            ("1003", "sip:1003@10.0.0.7", "sip:198.51.100.8:5060", -60, "Yealink"),  # expired
        ],
    )
    found = contacts.from_location(db_service(mariadb), "chicago", "location", 5, INVENTORY)
    assert [(c.mac, c.user, c.uri, c.vendor) for c in found.contacts] == [
        (SPA942, "2003", "sip:2003@10.0.0.9:5060", "linksys"),
        (YEALINK_T46G, "1001", "sip:1001@198.51.100.7:40001", "yealink"),
        (SPA504G, "2001", "sip:2001@10.0.0.8:5060;transport=udp", "linksys"),
    ]
    assert [c.credentials for c in found.contacts] == [
        ("2003", "spa-2003-Secret"),
        ("1001", "yk-1001-Secret"),
        ("2001", "spa&<2001>\"'Secret"),
    ]
    assert (found.unknown, found.invalid, found.duplicates, found.truncated) == (1, 0, 2, False)
    assert found.source == "location:chicago"


def test_at_most_max_contacts_rows_are_read(mariadb) -> None:
    """The query's LIMIT: MAX_CONTACTS + 1 live registrations, MAX_CONTACTS read."""
    location_table(mariadb, "location_big")
    mariadb.sql(
        f"USE {mariadb.DATABASE}; INSERT INTO location_big (ruid, username, contact, expires) "
        "SELECT CONCAT('r', seq), CONCAT('u', seq), CONCAT('sip:u', seq, '@192.0.2.1'), "
        f"NOW() + INTERVAL 1 HOUR FROM seq_1_to_{MAX_CONTACTS + 1}"
    )
    mariadb.sql("TRUNCATE mysql.general_log; SET GLOBAL log_output = 'TABLE', general_log = 1")
    try:
        found = contacts.from_location(
            db_service(mariadb), "chicago", "location_big", 30, INVENTORY
        )
        queries = mariadb.sql(
            "SELECT argument FROM mysql.general_log WHERE argument LIKE 'SELECT username%'"
        )
    finally:
        mariadb.sql(f"SET GLOBAL general_log = 0; DROP TABLE {mariadb.DATABASE}.location_big")
    assert found.unknown == MAX_CONTACTS and found.truncated is True and found.contacts == ()
    # the server was asked for no more: the bound is the query's, not only our loop's
    assert queries.strip().endswith(f"ORDER BY expires DESC LIMIT {MAX_CONTACTS}"), queries


def test_a_missing_table_is_a_clear_error(mariadb) -> None:
    with pytest.raises(ContactsError) as info:
        contacts.from_location(db_service(mariadb), "chicago", "no_such_table", 5, INVENTORY)
    (problem,) = info.value.problems
    assert problem.startswith(
        f"location table `no_such_table` at chicago (127.0.0.1:{mariadb.port})"
    )
    assert "doesn't exist" in problem and mariadb.PASSWORD not in problem


def test_a_hanging_database_is_a_clear_error_bounded_by_the_timeout(mariadb) -> None:
    with SilentListener() as silent:
        hung = db_service(mariadb, host=silent.host, port=silent.port)
        started = time.monotonic()
        with pytest.raises(ContactsError) as info:
            contacts.from_location(hung, "virginia", "location", 1.0, INVENTORY)
        assert time.monotonic() - started < 10  # three timeouts of 1 s at most, and slack
    (problem,) = info.value.problems
    assert problem.startswith(f"location table `location` at virginia (127.0.0.1:{silent.port}): ")
    assert "timed out" in problem


def test_a_hanging_database_fails_the_push_and_xprov_goes_on(tmp_path: Path, mariadb) -> None:
    """A real xprov whose active db site hangs: a SIP switch's push reports the database's
    error in /status within the timeout, and the server keeps serving and pushing."""
    http_port = free_port()
    with SilentListener() as silent:
        config = sample_config(
            tmp_path,
            {"port = 3307": f"port = {silent.port}"},
            http_port=http_port,
        )
        config.write_text(config.read_text() + '\n[push]\ncontacts = "location"\ntimeout = 1.0\n')
        with XprovProcess(config, http_port, tmp_path / "xprov.log") as server:
            done = xprov(config, "failover", "sip", "--to", "virginia", "--force")
            assert done.returncode == 0, done.stderr

            def failed() -> dict | None:
                last = server.status()["push"]["last"]
                return last if last and last["problem"] else None

            last = wait_for(failed, 30, "the push to report the hung database")
            assert last["problem"].startswith("location table `location` at chicago")
            assert "timed out" in last["problem"]
            assert (last["contacts"], last["sent"], last["services"]) == (0, 0, ["sip"])
            assert server.proc is not None and server.proc.poll() is None
            assert [e["problem"] for e in server.events("push_failed")] == [last["problem"]]
            assert "provpass" not in server.log()


def answer_ok(request: bytes) -> bytes:
    """A 200 to a NOTIFY (RFC 3261 section 8.2.6.2: Via, From, Call-ID and CSeq copied, a
    tag added to To)."""
    head = request.decode().split("\r\n\r\n", 1)[0].split("\r\n")[1:]
    copied = [h for h in head if h.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(h for h in head if h.split(":", 1)[0].lower() == "to")
    lines = ["SIP/2.0 200 OK", *copied, f"{to};tag=phone1", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_a_failover_notifies_the_phone_in_the_contacts_file(tmp_path: Path) -> None:
    """xprov with `contacts = "file"`: `xprov failover sip` sends the listed phone (a T46G on
    a UDP socket of ours) a check-sync NOTIFY; its 200 is counted in /status."""
    http_port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone:
        phone.bind(("127.0.0.1", 0))
        phone.settimeout(0.5)
        port = phone.getsockname()[1]
        (tmp_path / "contacts.toml").write_text(
            f'[[contacts]]\nuser = "1001"\nuri = "sip:1001@127.0.0.1:{port}"\n'
            '[[contacts]]\nuser = "4242"\nuri = "sip:4242@127.0.0.1:9"\n'  # not ours
        )
        config = sample_config(tmp_path, http_port=http_port)
        config.write_text(
            config.read_text() + '\n[push]\ncontacts = "file"\ncontacts_file = "contacts.toml"\n'
            'bind = "127.0.0.1"\nservices = ["sip"]\n'
        )
        with XprovProcess(config, http_port, tmp_path / "xprov.log") as server:
            done = xprov(config, "failover", "sip", "--to", "virginia", "--force")
            assert done.returncode == 0, done.stderr
            request, source = None, None
            deadline = time.monotonic() + 20
            while request is None and time.monotonic() < deadline:
                try:
                    request, source = phone.recvfrom(65535)
                except TimeoutError:
                    continue
            assert request is not None, "no NOTIFY came"
            text = request.decode()
            assert text.startswith(f"NOTIFY sip:1001@127.0.0.1:{port} SIP/2.0\r\n")
            headers = {
                line.split(":", 1)[0].lower(): line.split(":", 1)[1].strip()
                for line in text.split("\r\n\r\n")[0].split("\r\n")[1:]
            }
            assert headers["event"].startswith("check-sync")
            assert headers["subscription-state"].startswith("terminated")
            assert "yk-1001-Secret" not in text
            phone.sendto(answer_ok(request), source)

            def pushed() -> dict | None:
                last = server.status()["push"]["last"]
                return last if last and last["done_at"] is not None else None

            last = wait_for(pushed, 30, "the push to end")
            assert {k: last[k] for k in ("contacts", "unknown", "sent", "ok", "pending")} == {
                "contacts": 1,
                "unknown": 1,
                "sent": 1,
                "ok": 1,
                "pending": 0,
            }
            assert last["services"] == ["sip"] and last["source"].startswith("file:")
            (done_event,) = server.events("push_done")
            assert done_event["ok"] == 1
            assert "yk-1001-Secret" not in server.log()
