"""Filling the inventory tables of a test MariaDB: the sample phones, or N synthetic ones."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Iterator
from typing import Any

from tests.helpers import ETC
from xprov import database
from xprov.config import DbService
from xprov.inventory import mysql_source


def db_service(server: Any, **changes: Any) -> DbService:
    values = dict(
        host=server.host,
        port=server.port,
        database=server.DATABASE,
        user=server.USER,
        password=server.PASSWORD,
    )
    return DbService(**{**values, **changes})


def sample_phones() -> list[dict[str, Any]]:
    with (ETC / "inventory.toml").open("rb") as f:
        return tomllib.load(f)["phones"]


def synthetic(count: int, lines: int = 2) -> Iterator[dict[str, Any]]:
    for i in range(count):
        yield {
            "mac": f"0015{i:08x}",
            "vendor": "yealink" if i % 2 else "linksys",
            "model": "T46G" if i % 2 else "SPA504G",
            "lines": [
                {
                    "number": n,
                    "user": f"{i:06d}{n}",
                    "password": f"pw-{i:06d}-{n}-Secret",
                    "display_name": f"Phone {i} line {n}",
                }
                for n in range(1, lines + 1)
            ],
        }


def reset(server: Any) -> None:
    connection = database.connect(db_service(server), 10)
    try:
        with connection.cursor() as cursor:
            for statement in mysql_source._statements(mysql_source.schema()):
                cursor.execute(statement)
            cursor.execute("DELETE FROM phone_lines")
            cursor.execute("DELETE FROM phones")
        connection.commit()
    finally:
        connection.close()


def insert(server: Any, phones: Iterable[dict[str, Any]], batch: int = 5000) -> int:
    """Insert phones in batches (raw rows: bad values go in as they are)."""
    connection = database.connect(db_service(server), 30)
    count = 0
    try:
        with connection.cursor() as cursor:
            phone_rows: list[tuple] = []
            line_rows: list[tuple] = []

            def flush() -> None:
                cursor.executemany(
                    "INSERT INTO phones (mac, vendor, model, grp, vars) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    phone_rows,
                )
                cursor.executemany(
                    "INSERT INTO phone_lines (mac, number, sip_user, auth_user, "
                    "password, display_name, label) VALUES "
                    "(%s, %s, %s, %s, %s, %s, %s)",
                    line_rows,
                )
                connection.commit()
                phone_rows.clear()
                line_rows.clear()

            for phone in phones:
                variables = phone.get("vars")
                phone_rows.append(
                    (
                        phone["mac"],
                        phone["vendor"],
                        phone["model"],
                        phone.get("group"),
                        variables if isinstance(variables, str | None) else json.dumps(variables),
                    )
                )
                for i, line in enumerate(phone.get("lines", [])):
                    line_rows.append(
                        (
                            phone["mac"],
                            line.get("number", i + 1),
                            line["user"],
                            line.get("auth_user"),
                            line["password"],
                            line.get("display_name"),
                            line.get("label"),
                        )
                    )
                count += 1
                if len(phone_rows) >= batch:
                    flush()
            if phone_rows:
                flush()
    finally:
        connection.close()
    return count


def execute(server: Any, sql: str, *args: Any) -> None:
    connection = database.connect(db_service(server), 30)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args or None)
    finally:
        connection.close()
