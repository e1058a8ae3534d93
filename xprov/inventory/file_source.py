"""The file inventory: phones listed in a TOML file (`[[phones]]` tables)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from xprov.inventory.snapshot import BadRecord, Inventory, InventoryError, Phone, phone_from_record


def load_file(path: Path, generation: int) -> Inventory:
    """Read every phone; any bad entry fails the whole load, naming each problem
    (an operator edits this file by hand and wants to hear about every typo)."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise InventoryError([f"{path}: cannot read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError([f"{path}: not valid TOML: {exc}"]) from None
    problems = [f"{path}: {key}: unknown key" for key in sorted(set(data) - {"phones"})]
    records = data.get("phones", [])
    if not isinstance(records, list):
        raise InventoryError([f"{path}: phones: expected [[phones]] tables"])
    phones: dict[str, Phone] = {}
    users: set[str] = set()
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            problems.append(f"{path}: phones[{i}]: expected a table")
            continue
        try:
            phone = phone_from_record(record)
        except BadRecord as exc:
            problems.append(f"{path}: phones[{i}].{exc}")
            continue
        if phone.mac in phones:
            problems.append(f"{path}: phones[{i}].mac: duplicate of an earlier phone")
        if phone.http_user in users:  # one account opens one phone
            problems.append(f"{path}: phones[{i}].http_user: already an earlier phone's")
        users.update([phone.http_user] if phone.http_user else [])
        phones[phone.mac] = phone
    if problems:
        raise InventoryError(problems)
    return Inventory.of(phones.values(), generation, f"file:{path}")
