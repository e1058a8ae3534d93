"""Phone records and the immutable inventory snapshot they live in.

`phone_from_record` is the one validator every source (file, MySQL) goes through, so a
phone is accepted or refused for the same reasons wherever it comes from.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

from xprov.auth import Credentials
from xprov.config import secret_name
from xprov.logs import secret_problem
from xprov.mac import normalize_mac
from xprov.problems import Problems
from xprov.vendors import VENDOR_NAMES, VENDORS

Scalar = str | int | float | bool
# Control characters would break a key = value line or an XML document.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_LINES = 16


class BadRecord(ValueError):
    """One phone record is invalid; the message names the field and never holds a secret."""


class InventoryError(Problems):
    """An inventory source could not be loaded; `problems` lists what is wrong."""


class Line(NamedTuple):
    number: int
    user: str
    auth_user: str
    password: str
    display_name: str
    label: str

    def __repr__(self) -> str:  # never the password
        return f"Line(number={self.number}, user={self.user!r})"


class Phone(NamedTuple):
    mac: str
    vendor: str
    model: str
    lines: tuple[Line, ...]
    vars: tuple[tuple[str, Scalar], ...]  # extra template variables, as (name, value) pairs
    group: str = ""  # the operator's grouping (a customer, a site)
    http_user: str = ""  # the phone's own credentials for its files ("": none)
    http_password: str = ""

    def __repr__(self) -> str:
        return f"Phone(mac={self.mac!r}, vendor={self.vendor!r}, model={self.model!r})"

    def record(self) -> Record:
        head = (self.vendor, self.model, self.group, self.vars, self.http_user, self.http_password)
        return (*head, *(field for line in self.lines for field in line))

    @classmethod
    def of(cls, mac: str, record: Record) -> Phone:
        vendor, model, group, variables, user, password = record[:_HEAD]
        lines = tuple(Line._make(record[i : i + _LINE]) for i in range(_HEAD, len(record), _LINE))
        return cls(mac, vendor, model, lines, variables, group, user, password)


# A phone as the snapshot stores it: one flat tuple (vendor, model, group, vars, http_user,
# http_password, then six fields per line: number, user, auth_user, password, display_name,
# label). Flat, because
# a tuple per line cost 23 MB per 100,000 phones. Exact tuples of strings and numbers,
# because the garbage collector stops tracking those once it has seen them: 100,000 phones
# then never lengthen a collection (a full collection over 100,000 slotted objects took
# 190 ms, a stall every request would have waited out). Phone and Line are views.
Record = tuple[Any, ...]
_HEAD = 6
_LINE = len(Line._fields)
_PASSWORD = _HEAD + Line._fields.index("password")


class _Phones(Mapping[str, Phone]):
    """The snapshot's records, read as Phone views."""

    def __init__(self, records: Mapping[str, Record]) -> None:
        self._records = records

    def __getitem__(self, mac: str) -> Phone:
        return Phone.of(mac, self._records[mac])

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


@dataclass(frozen=True)
class Inventory:
    """Every known phone by normalised MAC; a new snapshot replaces the old one whole."""

    records: Mapping[str, Record]
    generation: int
    source: str
    # When it began to serve (s, on the process's one clock: the reactor's `seconds()`, epoch
    # seconds on a real reactor), stamped by `serving_from` as it is swapped in; 0.0 until
    # then (the snapshots `check-config` and `render` read never serve).
    loaded_at: float = 0.0

    @classmethod
    def of(cls, phones: Iterable[Phone], generation: int, source: str) -> Inventory:
        return cls(MappingProxyType({p.mac: p.record() for p in phones}), generation, source)

    def serving_from(self, at: float) -> Inventory:
        """This snapshot stamped `loaded_at = at` (s, the process's clock), on the reactor as
        it is swapped in: a thread that builds one reads no clock. Shares the records, and
        the accounts if they were built already (once per snapshot)."""
        stamped = dataclasses.replace(self, loaded_at=at)
        for cached in ("accounts", "content_hash"):  # cached_property keeps them there
            if cached in self.__dict__:
                stamped.__dict__[cached] = self.__dict__[cached]
        return stamped

    @property
    def phones(self) -> Mapping[str, Phone]:
        return _Phones(self.records)

    def get(self, mac: str) -> Phone | None:
        record = self.records.get(mac)
        return None if record is None else Phone.of(mac, record)

    def __len__(self) -> int:
        return len(self.records)

    def models(self) -> Iterator[tuple[str, str, str]]:
        """(mac, vendor, model) of every phone."""
        for mac, record in self.records.items():
            yield mac, record[0], record[1]

    def secrets(self) -> Iterator[str]:
        """Every SIP and HTTP password and every secret-named variable, for log redaction."""
        for record in self.records.values():
            if record[5]:
                yield record[5]
            yield from filter(None, record[_PASSWORD::_LINE])
            yield from (str(v) for k, v in record[3] if secret_name(k) and str(v))

    @functools.cached_property
    def content_hash(self) -> str:
        """SHA-256 (hex, first 16 digits) of every phone's data, whatever its source, order
        or generation: two instances serving the same phones show the same hash (issue 16).
        Computed once per snapshot; the build computes it on its thread."""
        text = json.dumps(sorted(self.records.items()), separators=(",", ":"), default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @functools.cached_property
    def accounts(self) -> dict[str, Credentials]:
        """HTTP user -> the credentials of its one phone, for the phones that have them
        (built once per snapshot, on first use)."""
        return {
            record[4]: Credentials(record[4], record[5], mac)
            for mac, record in self.records.items()
            if record[4]
        }


def _text(record: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = record.get(key, default)
    if value is None:
        raise BadRecord(f"{where}{key}: missing")
    if not isinstance(value, str):
        raise BadRecord(f"{where}{key}: expected a string")
    if _CONTROL.search(value):
        raise BadRecord(f"{where}{key}: contains a control character")
    return value


def _line(record: Any, index: int) -> Line:
    where = f"lines[{index}]."
    if not isinstance(record, Mapping):
        raise BadRecord(f"lines[{index}]: expected a table")
    unknown = set(record) - {"number", "user", "auth_user", "password", "display_name", "label"}
    if unknown:
        raise BadRecord(f"{where}{sorted(unknown)[0]}: unknown key")
    number = record.get("number", index + 1)
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= MAX_LINES:
        raise BadRecord(f"{where}number: expected an integer 1..{MAX_LINES}")
    user = _text(record, "user", where)
    if not user:
        raise BadRecord(f"{where}user: must not be empty")
    display_name = _text(record, "display_name", where, user)
    return Line(
        number=number,
        user=user,
        auth_user=_text(record, "auth_user", where, user) or user,
        password=_secret(record, "password", where),
        display_name=display_name,
        label=_text(record, "label", where, display_name),
    )


def _secret(record: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = _text(record, key, where, default)
    if problem := secret_problem(value):
        raise BadRecord(f"{where}{key}: {problem}")
    return value


def _vars(value: Any) -> tuple[tuple[str, Scalar], ...]:
    if value is None or value == {}:
        return ()
    if not isinstance(value, Mapping):
        raise BadRecord("vars: expected a table")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise BadRecord(f"vars.{key}: expected a string, number or boolean")
        if isinstance(item, str) and _CONTROL.search(item):
            raise BadRecord(f"vars.{key}: contains a control character")
        if secret_name(str(key)) and (problem := secret_problem(str(item))):
            raise BadRecord(f"vars.{key}: {problem}; a name like this one marks a secret")
    return tuple(sorted(value.items()))


def phone_from_record(record: Mapping[str, Any]) -> Phone:
    """Validate one phone record (mac, vendor, model, lines, vars); raise BadRecord."""
    unknown = set(record) - {
        "mac",
        "vendor",
        "model",
        "lines",
        "vars",
        "group",
        "http_user",
        "http_password",
    }
    if unknown:
        raise BadRecord(f"{sorted(unknown)[0]}: unknown key")
    mac = normalize_mac(_text(record, "mac", ""))
    if mac is None:
        raise BadRecord("mac: not a MAC address (12 hex digits)")
    vendor = _text(record, "vendor", "")
    if vendor not in VENDOR_NAMES:
        raise BadRecord(f"vendor: {vendor!r} is not one of {', '.join(VENDOR_NAMES)}")
    lines_in = record.get("lines", ())
    if not isinstance(lines_in, Sequence) or isinstance(lines_in, str):
        raise BadRecord("lines: expected a list")
    lines = tuple(_line(item, i) for i, item in enumerate(lines_in))
    http_user, http_password = (
        _text(record, "http_user", "", ""),
        _secret(record, "http_password", "", ""),
    )
    if bool(http_user) != bool(http_password):
        raise BadRecord("http_password: give both http_user and http_password, or neither")
    if ":" in http_user:
        raise BadRecord("http_user: must not contain ':' (RFC 7617)")
    if http_user and (problem := VENDORS[vendor].credentials_problem(http_user, http_password)):
        raise BadRecord(f"http_password: {problem}")
    numbers = [line.number for line in lines]
    if len(set(numbers)) != len(numbers):
        raise BadRecord("lines: duplicate line number")
    return Phone(
        mac=mac,
        vendor=vendor,
        model=_text(record, "model", ""),
        lines=tuple(sorted(lines, key=lambda line: line.number)),
        vars=_vars(record.get("vars")),
        group=_text(record, "group", "", ""),
        http_user=http_user,
        http_password=http_password,
    )
