"""The MySQL inventory: phones and their lines read in one streamed query.

Blocking (PyMySQL): run it on a thread. The snapshot is built to the side and handed back
whole. A bad row never fails the load: the phone keeps its previous record when the last
snapshot had one, or is left out, and every problem is reported.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from xprov import database
from xprov.config import DbService
from xprov.inventory.snapshot import BadRecord, Inventory, Record, phone_from_record
from xprov.mac import normalize_mac

QUERY = (
    "SELECT p.mac, p.vendor, p.model, p.grp, p.vars, p.http_user, p.http_password,"
    " l.number, l.sip_user, l.auth_user,"
    " l.password, l.display_name, l.label"
    " FROM phones p LEFT JOIN phone_lines l ON l.mac = p.mac"
    " ORDER BY p.mac, l.number"
)
MAX_REPORTED = 20
YIELD_EVERY = 500  # phones (about 1,000 rows) between two hand-overs of the GIL


@dataclass
class LoadReport:
    phones: int = 0
    skipped: int = 0  # bad phones left out
    kept_previous: int = 0  # bad phones that kept their last good record
    problems: list[str] = field(default_factory=list)  # the first MAX_REPORTED
    seconds: float = 0.0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(text)


def schema() -> str:
    return resources.files("xprov.inventory").joinpath("schema.sql").read_text()


def create_schema(db: DbService, timeout: float) -> None:
    connection = database.connect(db, timeout)
    try:
        with connection.cursor() as cursor:
            for statement in _statements(schema()):
                cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


def _statements(sql: str) -> Iterator[str]:
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    yield from (s.strip() for s in text.split(";") if s.strip())


def _rows(db: DbService, timeout: float) -> Iterator[tuple[Any, ...]]:
    connection = database.connect(db, timeout, streaming=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(QUERY)
            yield from cursor
    finally:
        connection.close()


def _records(rows: Iterator[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    """Group the joined rows (ordered by MAC) into one record per phone."""
    record: dict[str, Any] | None = None
    for (
        mac,
        vendor,
        model,
        group,
        variables,
        http_user,
        http_password,
        number,
        user,
        auth,
        password,
        name,
        label,
    ) in rows:
        if record is None or record["mac"] != mac:
            if record is not None:
                yield record
            record = {"mac": mac, "vendor": vendor, "model": model, "lines": []}
            optional = {
                "group": group,
                "vars": variables,
                "http_user": http_user,
                "http_password": http_password,
            }
            record.update({k: v for k, v in optional.items() if v is not None})
        if number is not None:
            line = {
                "number": number,
                "user": user,
                "password": password,
                "auth_user": auth,
                "display_name": name,
                "label": label,
            }
            record["lines"].append({k: v for k, v in line.items() if v is not None})
    if record is not None:
        yield record


def _record(record: dict[str, Any]) -> tuple[str, Record]:
    """A validated row group as the snapshot stores it; BadRecord if it is not valid."""
    if "vars" in record:
        try:
            record["vars"] = json.loads(record["vars"])
        except ValueError:
            raise BadRecord("vars: not a JSON object") from None
    phone = phone_from_record(record)
    vendor, model, group, *rest = phone.record()
    # Thousands of phones share a vendor and a few models: keep one copy of each string.
    return phone.mac, (sys.intern(vendor), sys.intern(model), sys.intern(group), *rest)


def load(
    db: DbService, timeout: float, generation: int, source: str, previous: Inventory | None = None
) -> tuple[Inventory, LoadReport]:
    """Read every phone (blocking). Connection and query errors raise; bad rows do not."""
    started = time.monotonic()
    report = LoadReport()
    records: dict[str, Record] = {}
    old_records: Mapping[str, Record] = previous.records if previous is not None else {}
    bad: set[str] = set()  # normalised MACs whose rows cannot be trusted
    for count, row_group in enumerate(_records(_rows(db, timeout)), 1):
        if count % YIELD_EVERY == 0:
            # A thread that reads a socket in small pieces takes the GIL back after every
            # read and starves the reactor for hundreds of ms (the GIL convoy); a short
            # sleep hands it over. Measured: 300 ms stalls without, under 10 ms with.
            time.sleep(0.001)
        raw_mac = row_group.get("mac")
        try:
            mac, record = _record(row_group)
        except BadRecord as exc:
            report.problem(f"phone {raw_mac!r}: {exc}")
            bad_mac = normalize_mac(raw_mac) if isinstance(raw_mac, str) else None
            if bad_mac is None:
                report.skipped += 1
            else:
                bad.add(bad_mac)
            continue
        if mac in records or mac in bad:
            # Two rows for one device (different notations): neither can be trusted.
            report.problem(f"phone {raw_mac!r}: mac: duplicate of an earlier phone")
            bad.add(mac)
        old = old_records.get(mac)
        # An unchanged phone keeps its old record: a refresh holds one copy, not two.
        records.setdefault(mac, old if old == record else record)
    for mac in bad:
        records.pop(mac, None)
        old = old_records.get(mac)
        if old is not None:
            records[mac] = old  # the last good record keeps serving
            report.kept_previous += 1
        else:
            report.skipped += 1
    report.phones = len(records)
    report.seconds = time.monotonic() - started
    return Inventory(MappingProxyType(records), generation, source), report
