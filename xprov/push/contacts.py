"""Where the push finds each phone: the softswitch's registrations (Kamailio usrloc's
`location` table, schema version 8, in the active db site's MySQL) or the operator's list
(`[push] contacts_file`), mapped to the inventory: one `Contact` per provisioned phone.

The reads block (PyMySQL, a file): run them on a thread. `reached` is pure.
Fact sheet: /work/shared/reference/phone-redundancy.md section 4.1 (columns, `received`,
`db_mode`), kamailio `utils/kamctl/mysql/usrloc-create.sql` (types).
"""

from __future__ import annotations

import itertools
import os
import re
import stat
import time
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from xprov import database
from xprov.config import DbService
from xprov.inventory import Inventory
from xprov.inventory.mysql_source import YIELD_EVERY
from xprov.monitor.errors import error_detail, printable
from xprov.problems import Problems
from xprov.push.model import Contact
from xprov.push.notify import Refusal, target_of

# Registrations read at most, per push: the inventory's scale (100,000 phones). The query
# says LIMIT, freshest first, so a table past it loses its oldest registrations.
MAX_CONTACTS = 100_000
# The operator's file: 100,000 entries of about 60 bytes fit three times over.
MAX_FILE_BYTES = 16 * 1024 * 1024
# A URI longer than usrloc's `contact` column (VARCHAR(512) in current Kamailio schemas, as
# the sender's bound) is no registration of a phone.
MAX_URI = 512
MAX_REPORTED = 20  # problems kept for the log; the rest are only counted

# Kamailio usrloc schema version 8; `expires` is a DATETIME (a table switched to
# `expires_type = 1` holds BIGINT seconds and is not supported). Freshest first, so that
# among several registrations of one line the most recent one is read first.
QUERY = (
    "SELECT username, domain, contact, received, expires, user_agent FROM `{table}`"
    " WHERE expires > NOW() ORDER BY expires DESC LIMIT %s"
)

# A SIP or SIPS URI (RFC 3261 section 19.1.1): scheme, optional userinfo, host (a name, an
# IPv4 address or a bracketed IPv6 reference), optional port, then parameters and headers.
_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[^@;?]+)@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<params>;[^?]*)?(?:\?.*)?",
    re.IGNORECASE,
)
_TRANSPORT = re.compile(r";transport=[A-Za-z]+", re.IGNORECASE)
# It goes into a request line: printable ASCII, no space (a CR or LF would add headers).
_PRINTABLE = re.compile(r"[!-~]+")


class ContactsError(Problems):
    """The contacts could not be read at all (database, file); `problems` says why, without a
    secret."""


class Registration(NamedTuple):
    """One row of the location table, or one `[[contacts]]` entry of the file."""

    user: str  # usrloc `username`: the address-of-record's user (the inventory line's user)
    contact: str  # the Contact URI as the phone registered it (a private address behind NAT)
    received: str | None = None  # the REGISTER's source as a URI, when the registrar kept it
    domain: str | None = None  # what the phone said of itself, for the problems' text only
    user_agent: str | None = None


@dataclass(frozen=True)
class ContactList:
    """The phones a push reaches: one contact per provisioned phone, and what was left out.
    `unknown`: registrations of a user no phone of the inventory has (a NOTIFY to a device
    we do not provision is noise); `invalid`: no SIP URI we can send to; `duplicates`: a
    phone's further registrations (one resync per phone); `truncated`: MAX_CONTACTS were read,
    there may be more."""

    contacts: tuple[Contact, ...]
    unknown: int = 0
    invalid: int = 0
    duplicates: int = 0
    truncated: bool = False
    source: str = ""  # "location:chicago" or "file:/etc/xprov/contacts.toml"
    problems: tuple[str, ...] = field(default=(), repr=False)  # the first MAX_REPORTED
    unchanged: int = 0  # phones left out: this switch changed nothing in their files


class _Line(NamedTuple):
    mac: str
    vendor: str
    number: int
    auth_user: str
    password: str


def parse_uri(text: str) -> re.Match[str] | None:
    """`text` as a SIP/SIPS URI (angle brackets allowed around it), or None: too long, not
    printable ASCII, or not `sip:`/`sips:` with a host."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if len(text) > MAX_URI or not _PRINTABLE.fullmatch(text):
        return None
    return _URI.fullmatch(text)


def reachable_uri(registration: Registration) -> str | None:
    """Where a NOTIFY reaches the phone: the `received` source address (behind NAT, the only
    one that answers: fact sheet 3.5, 4.1) with the Contact's user and the received
    transport; else the Contact as registered; None if neither is a SIP URI."""
    contact = parse_uri(registration.contact)
    received = parse_uri(registration.received) if registration.received else None
    if received is None:
        return contact.group(0) if contact is not None else None
    user = (contact and contact.group("user")) or received.group("user") or registration.user
    port = received.group("port")
    transport = _TRANSPORT.search(received.group("params") or "")
    return (
        f"{received.group('scheme').lower()}:{user}@{received.group('host')}"
        + (f":{port}" if port else "")
        + (transport.group(0) if transport else "")
    )


def line_index(inventory: Inventory) -> dict[str, _Line]:
    """SIP user -> its phone's line, by each line's `user` and `auth_user`. A user two phones
    share belongs to the first phone in MAC order (one NOTIFY, never two)."""
    index: dict[str, _Line] = {}
    for mac in sorted(inventory.records):
        phone = inventory.phones[mac]
        for line in phone.lines:
            entry = _Line(mac, phone.vendor, line.number, line.auth_user, line.password)
            index.setdefault(line.user, entry)
            index.setdefault(line.auth_user, entry)
    return index


def reached(
    registrations: Iterable[Registration],
    inventory: Inventory,
    source: str,
    domains: frozenset[str] | None = None,
) -> ContactList:
    """One contact per provisioned phone, from `registrations` in order of preference (the
    freshest first): each phone's lowest-numbered line that registered with a contact we
    can send to, and of that line the first such registration. Reads at most MAX_CONTACTS
    registrations. The contact carries the phone's vendor (which event), MAC and that line's
    digest credentials (an SPA challenges the resync NOTIFY, fact sheet 3.2). `domains`: the
    SIP domains our phones register in; a registration of another domain (a same-named user
    of another tenant of the softswitch) is `unknown`: it would get the NOTIFY and could
    challenge it, an offline guessing oracle for our line's password. None: no domain
    compared (the file's entries name none)."""
    index = line_index(inventory)
    chosen: dict[str, tuple[int, Contact]] = {}  # mac -> (line number, contact)
    unknown = invalid = read = 0
    problems: list[str] = []
    for registration in itertools.islice(registrations, MAX_CONTACTS):
        read += 1
        uri = reachable_uri(registration)
        refusal = None if uri is None else target_of(Contact(registration.user, uri))
        if uri is None or isinstance(refusal, Refusal):
            invalid += 1
            if len(problems) < MAX_REPORTED:
                why = refusal.detail if isinstance(refusal, Refusal) else "no SIP URI to send to"
                problems.append(f"{_who(registration)}: {why}")
            continue
        line = index.get(registration.user)
        domain = (registration.domain or "").lower()
        if line is None or (domains is not None and domain and domain not in domains):
            unknown += 1
            continue
        held = chosen.get(line.mac)
        if held is None or line.number < held[0]:
            credentials = (line.auth_user, line.password) if line.password else None
            contact = Contact(registration.user, uri, line.vendor, line.mac, credentials)
            chosen[line.mac] = (line.number, contact)
    contacts = tuple(contact for _number, contact in chosen.values())
    duplicates = read - unknown - invalid - len(contacts)
    truncated = read == MAX_CONTACTS
    return ContactList(contacts, unknown, invalid, duplicates, truncated, source, tuple(problems))


def _who(registration: Registration) -> str:
    """A registration named in a problem: its user, domain and user agent, cleaned (they are
    what a phone said)."""
    name = registration.user + (f"@{registration.domain}" if registration.domain else "")
    agent = f" ({registration.user_agent})" if registration.user_agent else ""
    return printable(name + agent, 120)


# -- the location table ----------------------------------------------------------------------


def location_registrations(db: DbService, table: str, timeout: float) -> Iterator[Registration]:
    """The unexpired rows of usrloc table `table`, freshest first, at most MAX_CONTACTS
    (blocking; streamed, so 100,000 rows never sit in memory at once). Connection and query
    errors raise (PyMySQL's), each bounded by `timeout` (xprov.database.connect)."""
    connection = database.connect(db, timeout, streaming=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(QUERY.format(table=table), (MAX_CONTACTS,))
            for count, (user, domain, contact, received, _expires, agent) in enumerate(cursor, 1):
                if count % YIELD_EVERY == 0:
                    time.sleep(0.001)  # hand the GIL to the reactor (mysql_source: GIL convoy)
                yield Registration(str(user), str(contact), received or None, domain, agent)
    finally:
        connection.close()


def from_location(
    db: DbService,
    site: str,
    table: str,
    timeout: float,
    inventory: Inventory,
    domains: frozenset[str] | None = None,
) -> ContactList:
    """The phones registered at the softswitch, from `table` in `site`'s database
    (blocking), in `domains` (see `reached`). ContactsError names the database and what
    went wrong (never its password)."""
    try:
        registrations = location_registrations(db, table, timeout)
        return reached(registrations, inventory, f"location:{site}", domains)
    except Exception as exc:  # PyMySQL's errors, OSError: all say the same to the operator
        where = f"location table `{table}` at {site} ({db.host}:{db.port})"
        raise ContactsError([f"{where}: {error_detail(exc)}"]) from None


# -- the operator's file ---------------------------------------------------------------------


def read_file(path: Path) -> dict[str, Any]:
    """The TOML document of a regular file of at most MAX_FILE_BYTES (a FIFO would block the
    thread forever, a huge file fill the memory). ContactsError says what is wrong."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, and is refused
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ContactsError([f"{path}: not a regular file"])
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ContactsError([f"{path}: cannot read: {exc.strerror}"]) from None
    if len(data) > MAX_FILE_BYTES:
        raise ContactsError([f"{path}: more than {MAX_FILE_BYTES} bytes"])
    try:
        return tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ContactsError([f"{path}: not valid TOML: {exc}"]) from None


def file_registrations(path: Path) -> Iterator[Registration]:
    """`[[contacts]] user = "1001"  uri = "sip:1001@192.0.2.10:5062"`, in the file's order
    (the first of a line wins). An entry without a string `user` and `uri` becomes an
    invalid registration (counted, reported), not a failure of the whole list."""
    document = read_file(path)
    entries = document.get("contacts", [])
    if not isinstance(entries, list) or set(document) - {"contacts"}:
        raise ContactsError([f"{path}: expected only [[contacts]] tables"])
    for entry in entries:
        user = entry.get("user") if isinstance(entry, dict) else None
        uri = entry.get("uri") if isinstance(entry, dict) else None
        if not isinstance(user, str) or not isinstance(uri, str):
            yield Registration(str(user) if isinstance(user, str) else "?", "")
            continue
        yield Registration(user, uri)


def from_file(path: Path, inventory: Inventory) -> ContactList:
    """The phones the operator listed in `path` (blocking). ContactsError if the file
    cannot be read."""
    return reached(file_registrations(path), inventory, f"file:{path}")
