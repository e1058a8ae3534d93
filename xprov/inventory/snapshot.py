"""Phone records and the immutable inventory snapshot they live in.

`phone_from_record` is the one validator every source (file, MySQL) goes through, so a
phone is accepted or refused for the same reasons wherever it comes from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from xprov.mac import normalize_mac
from xprov.vendors import VENDOR_NAMES

Scalar = str | int | float | bool
# Control characters would break a key = value line or an XML document.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NO_VARS: Mapping[str, Scalar] = MappingProxyType({})
MAX_LINES = 16


class BadRecord(ValueError):
    """One phone record is invalid; the message names the field and never holds a secret."""


class InventoryError(Exception):
    """An inventory source could not be loaded; `problems` lists what is wrong."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    user: str
    auth_user: str
    password: str = field(repr=False)
    display_name: str
    label: str


@dataclass(frozen=True, slots=True)
class Phone:
    mac: str
    vendor: str
    model: str
    lines: tuple[Line, ...]
    vars: Mapping[str, Scalar]


@dataclass(frozen=True)
class Inventory:
    """Every known phone by normalised MAC; a new snapshot replaces the old one whole."""

    phones: Mapping[str, Phone]
    generation: int
    source: str
    loaded_at: float = field(default_factory=time.time)

    def get(self, mac: str) -> Phone | None:
        return self.phones.get(mac)

    def __len__(self) -> int:
        return len(self.phones)

    def secrets(self) -> Iterator[str]:
        """Every SIP password, for log redaction."""
        for phone in self.phones.values():
            for line in phone.lines:
                if line.password:
                    yield line.password


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
        password=_text(record, "password", where),
        display_name=display_name,
        label=_text(record, "label", where, display_name),
    )


def _vars(value: Any) -> Mapping[str, Scalar]:
    if value is None or value == {}:
        return _NO_VARS
    if not isinstance(value, Mapping):
        raise BadRecord("vars: expected a table")
    for key, item in value.items():
        if not isinstance(item, str | int | float | bool):
            raise BadRecord(f"vars.{key}: expected a string, number or boolean")
        if isinstance(item, str) and _CONTROL.search(item):
            raise BadRecord(f"vars.{key}: contains a control character")
    return MappingProxyType(dict(value))


def phone_from_record(record: Mapping[str, Any]) -> Phone:
    """Validate one phone record (mac, vendor, model, lines, vars); raise BadRecord."""
    unknown = set(record) - {"mac", "vendor", "model", "lines", "vars"}
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
    numbers = [line.number for line in lines]
    if len(set(numbers)) != len(numbers):
        raise BadRecord("lines: duplicate line number")
    return Phone(
        mac=mac,
        vendor=vendor,
        model=_text(record, "model", ""),
        lines=tuple(sorted(lines, key=lambda line: line.number)),
        vars=_vars(record.get("vars")),
    )
