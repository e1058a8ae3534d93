"""The typed reader of one TOML table, and the kinds of value the config's tables share.

`Table` checks each key's type and range and records every problem under its key path
('sites.chicago.sip.port: 70000 is out of range 1..65535'), so `xprov check-config` lists
them all at once; `finish` reports the keys nobody asked for. The readers below it turn
values the tables have in common into typed ones: listen addresses, allow-lists of
networks, paths relative to the config file, and secrets given inline or in a file.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from xprov.config.model import Listen, Network
from xprov.logs import secret_problem

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # refused in every string the config gives
T = TypeVar("T")
_REQUIRED: Any = object()


class Table:
    """A TOML table being read: checks types, records problems under its key path and,
    once read, reports the keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data, self.path, self.problems = data, path, problems
        self.seen: set[str] = set()

    def key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key(key)}: {message}")

    def failed(self, key: str) -> bool:
        """Has a problem been recorded for `key` of this table?"""
        return any(p.startswith(f"{self.key(key)}: ") for p in self.problems)

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: Any = _REQUIRED) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.problem(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python, never in a config file
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problem(key, f"expected {names}, got {_TYPE_NAMES.get(type(value), 'value')}")
            return None if default is _REQUIRED else default
        return value

    def text(self, key: str, default: Any = _REQUIRED, choices: tuple[str, ...] = ()) -> Any:
        value = self.get(key, str, default)
        if isinstance(value, str) and choices and value not in choices:
            self.problem(key, f"{value!r} is not one of {', '.join(choices)}")
            return None
        if isinstance(value, str) and CONTROL.search(value):
            self.problem(key, "contains a control character")
            return None
        if isinstance(value, str) and not value and default is _REQUIRED:
            self.problem(key, "must not be empty")
            return None
        return value

    def integer(self, key: str, default: Any, lo: int, hi: int) -> Any:
        value = self.get(key, int, default)
        if isinstance(value, int) and not lo <= value <= hi:
            self.problem(key, f"{value} is out of range {lo}..{hi}")
            return None
        return value

    def number(self, key: str, default: Any, lo: float, hi: float) -> Any:
        value = self.get(key, (int, float), default)
        if isinstance(value, int | float) and not lo <= value <= hi:
            self.problem(key, f"{value} is out of range {lo}..{hi}")
            return None
        return None if value is None else float(value)

    def port(self, key: str, default: Any = _REQUIRED) -> Any:
        return self.integer(key, default, 1, 65535)

    def table(self, key: str, required: bool = True) -> Table | None:
        value = self.get(key, dict, _REQUIRED if required else None)
        return Table(value, self.key(key), self.problems) if isinstance(value, dict) else None

    def items(self, key: str, read: Callable[[Any, str], T | None]) -> tuple[T, ...]:
        """A list whose items `read(item, key_path)` turns into values (None: a problem)."""
        values = self.get(key, list, [])
        out = [read(item, f"{self.key(key)}[{i}]") for i, item in enumerate(values or ())]
        return tuple(v for v in out if v is not None)

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.seen):
            self.problem(key, "unknown key")


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "a table",
    list: "a list",
}


def parse_listen(text: Any, where: str, problems: list[str]) -> Listen | None:
    """'127.0.0.1:8080' or '[::1]:8080': an IP literal and a port."""
    if not isinstance(text, str):
        problems.append(f"{where}: expected a string like '127.0.0.1:8080'")
        return None
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        problems.append(f"{where}: {text!r} is not ADDRESS:PORT with an IP address")
        return None
    if not sep or not 1 <= number <= 65535:
        problems.append(f"{where}: bad port in {text!r} (1..65535)")
        return None
    return Listen(host, number)


def listeners(table: Table, default: Listen) -> tuple[Listen, ...]:
    """The table's `listen` list of addresses; `default` alone when the key is absent."""
    if "listen" not in table.data:
        table.seen.add("listen")
        return (default,)
    before = len(table.problems)
    listen = table.items("listen", lambda v, where: parse_listen(v, where, table.problems))
    if not listen and len(table.problems) == before:
        table.problem("listen", "needs at least one address")
    return listen


def network(problems: list[str]) -> Callable[[Any, str], Network | None]:
    """An item reader: an address or a CIDR network ('10.0.0.0/8'; host bits allowed)."""

    def read(value: Any, where: str) -> Network | None:
        try:
            return ipaddress.ip_network(value, strict=False)
        except (TypeError, ValueError):
            problems.append(f"{where}: {value!r} is not an address or CIDR network")
            return None

    return read


def allow(t: Table) -> tuple[Network, ...]:
    """The table's `allow` list: the sources allowed to connect; empty: everyone."""
    return t.items("allow", network(t.problems))


def string_item(problems: list[str]) -> Callable[[Any, str], str | None]:
    """An item reader: a non-empty string."""

    def read(value: Any, where: str) -> str | None:
        if isinstance(value, str) and value:
            return value
        problems.append(f"{where}: expected a non-empty string")
        return None

    return read


def resolve(base: Path, value: str) -> Path:
    """A path from the config: relative ones are relative to `base`, the config's directory."""
    path = Path(value)
    return path if path.is_absolute() else (base / path).resolve()


def readable(t: Table, key: str, base: Path, value: Any) -> Path:
    """The path a non-empty string `value` names, with a problem if it is no readable file
    (`Path()` for anything else: the key's own reader reported that)."""
    path = resolve(base, value) if isinstance(value, str) and value else Path()
    if isinstance(value, str) and value and not (path.is_file() and os.access(path, os.R_OK)):
        t.problems.append(f"{t.key(key)}: {str(path)!r} is not a readable file")
    return path


SECRET_FILE_BYTES = 4096  # a password or token file: its secret is its first line


def read_secret_file(path: Path) -> str:
    """The text of a small regular file (a password or token file). OSError, or ValueError
    naming what is wrong: not a regular file (a FIFO or a device would block the build that
    reads it forever), more than SECRET_FILE_BYTES, not UTF-8."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is refused
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = file.read(SECRET_FILE_BYTES + 1)
    if len(data) > SECRET_FILE_BYTES:
        raise ValueError(f"more than {SECRET_FILE_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None


def secret_file_problem(exc: Exception) -> str:
    """`cannot read: ...`: the error's kind (OSError) or its reason (ValueError), never the
    file's content."""
    return f"cannot read: {exc if isinstance(exc, ValueError) else type(exc).__name__}"


def read_credentials(table: Table, base: Path) -> tuple[str | None, str]:
    """`user` with its `password` or `password_file` ("" without a user); a password
    given without a user is a problem."""
    user = table.text("user", None)
    password = read_secret(table, base) if user is not None else ""
    if user is None and ("password" in table.data or "password_file" in table.data):
        table.seen.update(("password", "password_file"))
        table.problem("user", "missing (the password belongs to a user)")
    return user, password


def read_secret(table: Table, base: Path) -> str:
    """`password`, or `password_file` (first line) so the secret can live outside the config."""
    password = table.get("password", str, None)
    secret_file = table.get("password_file", str, None)
    if password is not None and secret_file is not None:
        table.problem("password_file", "give either password or password_file, not both")
    if secret_file is not None:
        try:
            lines = read_secret_file(resolve(base, secret_file)).splitlines()
        except (OSError, ValueError) as exc:
            table.problem("password_file", secret_file_problem(exc))
            return ""
        if not lines or not lines[0].strip():
            table.problem("password_file", "is empty (the password is its first line)")
            return ""
        password = lines[0].strip()
    if password and (problem := secret_problem(password)):
        table.problem("password_file" if secret_file is not None else "password", problem)
    return password or ""
