"""The file inventory and the phone-record validator every source shares."""

from __future__ import annotations

from pathlib import Path

import pytest

from xprov.inventory import BadRecord, Inventory, InventoryError, phone_from_record
from xprov.inventory.file_source import load_file
from xprov.mac import normalize_mac

GOOD = {
    "mac": "00:15:65:74:B1:50",
    "vendor": "yealink",
    "model": "T46G",
    "lines": [{"user": "1001", "password": "pw-1001-x"}],
}


def test_record_defaults() -> None:
    phone = phone_from_record(GOOD)
    assert phone.mac == "00156574b150"
    (line,) = phone.lines
    assert (line.number, line.user, line.auth_user, line.display_name, line.label) == (
        1,
        "1001",
        "1001",
        "1001",
        "1001",
    )
    assert "pw-1001-x" not in repr(phone)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mac": "00:15:65:74:B1"}, "mac: not a MAC address"),
        ({"mac": 5}, "mac: expected a string"),
        ({"vendor": "polycom"}, "vendor: 'polycom' is not one of linksys, yealink"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"lines": "1001"}, "lines: expected a list"),
        ({"lines": [{"user": "1001"}]}, "lines[0].password: missing"),
        ({"lines": [{"user": "", "password": "x"}]}, "lines[0].user: must not be empty"),
        ({"lines": [{"user": "1", "password": "a\nb"}]}, "lines[0].password: contains a control"),
        ({"lines": [{"user": "1", "password": "pppp", "number": 0}]}, "lines[0].number: expected"),
        (
            {
                "lines": [
                    {"user": "1", "password": "pppp"},
                    {"user": "2", "password": "qqqq", "number": 1},
                ]
            },
            "lines: duplicate line number",
        ),
        ({"lines": [{"user": "1", "password": "pppp", "pin": 1}]}, "lines[0].pin: unknown key"),
        ({"vars": {"a": [1]}}, "vars.a: expected a string, number or boolean"),
        ({"http_user": "a:b", "http_password": "pwpw"}, "http_user: must not contain ':'"),
        (
            {"vendor": "linksys", "http_user": "u", "http_password": 'pw"]x'},
            "http_password: an SPA cannot send credentials holding a quote",
        ),
        (
            {"vendor": "linksys", "http_user": "u", "http_password": "pw x"},
            "http_password: an SPA cannot send credentials holding a quote",
        ),
    ],
)
def test_bad_records(change: dict, message: str) -> None:
    with pytest.raises(BadRecord) as info:
        phone_from_record({**GOOD, **change})
    assert str(info.value).startswith(message)
    assert "pw-1001-x" not in str(info.value)


SHORT = "shorter than 4 characters (a secret that short could not be kept out of the logs)"


@pytest.mark.parametrize("secret", ["a", "7", "ab", "x9!"])
@pytest.mark.parametrize(
    ("record", "where"),
    [
        (lambda s: {"lines": [{"user": "1001", "password": s}]}, "lines[0].password"),
        (lambda s: {"http_user": "u1", "http_password": s}, "http_password"),
        (lambda s: {"vars": {"admin_password": s}}, "vars.admin_password"),
        (lambda s: {"vars": {"voicemail_pin": s}}, "vars.voicemail_pin"),
    ],
)
def test_a_secret_too_short_to_redact_is_refused(record, where: str, secret: str) -> None:
    """The log redactor cannot cut a 3-character string out of every line without masking
    ordinary words, so such a secret never enters the inventory (issue 13, item 6)."""
    with pytest.raises(BadRecord) as info:
        phone_from_record({**GOOD, **record(secret)})
    named = "; a name like this one marks a secret" if where.startswith("vars.") else ""
    assert str(info.value) == f"{where}: {SHORT}{named}"  # the whole message: no secret in it


def test_an_empty_or_four_character_secret_is_accepted() -> None:
    """No password is nothing to leak; four characters are redacted like any other."""
    phone = phone_from_record(
        {
            **GOOD,
            "lines": [{"user": "1001", "password": ""}, {"user": "1002", "password": "abcd"}],
            "vars": {"voicemail_pin": 1234, "admin_password": ""},
        }
    )
    assert [line.password for line in phone.lines] == ["", "abcd"]


def test_every_secret_of_a_phone_is_known_to_the_redactor() -> None:
    phone = phone_from_record(
        {
            **GOOD,
            "http_user": "u1",
            "http_password": "http-secret",
            "vars": {"voicemail_pin": 9876, "label": "not-secret"},
        }
    )
    secrets = set(Inventory.of([phone], 1, "test").secrets())
    assert secrets == {"pw-1001-x", "http-secret", "9876"}


def test_yealink_credentials_may_hold_what_a_line_can() -> None:
    phone = phone_from_record({**GOOD, "http_user": "u", "http_password": 'p"w] x$'})
    assert phone.http_password == 'p"w] x$'


def test_file_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(
        '[[phones]]\nmac = "001565000001"\nvendor = "yealink"\nmodel = "T46G"\n'
        '[[phones]]\nmac = "00:15:65:00:00:01"\nvendor = "yealink"\nmodel = "T46G"\n'
        '[[phones]]\nmac = "nope"\nvendor = "yealink"\n'
        "[[phones]]\nvendor = 3\n"
        '[[phones]]\nmac = "001565000004"\nvendor = "yealink"\nmodel = "T46G"\n'
        'http_user = "desk"\nhttp_password = "pw-Secret-1"\n'
        '[[phones]]\nmac = "001565000005"\nvendor = "yealink"\nmodel = "T46G"\n'
        'http_user = "desk"\nhttp_password = "pw-Secret-2"\n'
    )
    with pytest.raises(InventoryError) as info:
        load_file(path, 1)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "phones[1].mac: duplicate of an earlier phone",
        "phones[2].mac: not a MAC address (12 hex digits)",
        "phones[3].mac: missing",
        "phones[5].http_user: already an earlier phone's",
    ]
    assert "pw-Secret" not in repr(info.value.problems)


def test_file_loads_an_immutable_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(
        '[[phones]]\nmac = "001565000001"\nvendor = "yealink"\nmodel = "T46G"\n'
        'lines = [{ user = "1", password = "pw-x-1234" }]\n'
    )
    inventory = load_file(path, 7)
    assert inventory.generation == 7 and len(inventory) == 1
    assert list(inventory.secrets()) == ["pw-x-1234"]
    with pytest.raises(TypeError):
        inventory.phones["001565000002"] = None  # type: ignore[index]


def test_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_file(tmp_path / "none.toml", 1)
    (tmp_path / "bad.toml").write_text("[[phones]\n")
    with pytest.raises(InventoryError, match="not valid TOML"):
        load_file(tmp_path / "bad.toml", 1)


def test_snapshot_records_are_untracked_by_the_garbage_collector() -> None:
    import gc

    from xprov.inventory import Inventory

    phone = phone_from_record({**GOOD, "vars": {"a": 1}})
    inventory = Inventory.of([phone], 1, "test")
    for _ in range(2):  # one pass untracks a level: vars, then the record
        gc.collect()
    record = inventory.records[phone.mac]
    assert not gc.is_tracked(record)
    assert inventory.get(phone.mac) == phone and dict(phone.vars) == {"a": 1}


@pytest.mark.parametrize(
    "written",
    [
        "0015654aa937",
        "00:15:65:4A:A9:37",
        "00-15-65-4a-a9-37",
        "00.15.65.4a.a9.37",
        "0015.654a.a937",
    ],
)
def test_every_way_of_writing_a_mac_is_the_same_mac(written: str) -> None:
    assert normalize_mac(written) == "0015654aa937"


@pytest.mark.parametrize("written", ["00:15-65:4a:a9:37", "0015654aa93", "00.1565.4aa937", ""])
def test_a_mac_written_two_ways_at_once_or_short_is_refused(written: str) -> None:
    assert normalize_mac(written) is None
