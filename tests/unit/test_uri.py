"""HTTP request paths percent-normalised once (RFC 3986 section 6.2.2.2), without sockets."""

from __future__ import annotations

import pytest

from tests.helpers import FILES, YEALINK_T46G
from xprov.uri import UNRESERVED, normalize_path
from xprov.vendors import identify

MAC = YEALINK_T46G  # "00156574b150"

DECODED = [
    ("/00156574b150.cfg", "/00156574b150.cfg"),  # nothing escaped
    (f"/%30{MAC[1:]}.cfg", f"/{MAC}.cfg"),  # "0"
    ("/y000000000028%2Ecfg", "/y000000000028.cfg"),
    ("/y000000000028%2ecfg", "/y000000000028.cfg"),  # hex digits in either case
    ("/%4a%4A%6b%6B", "/JJkk"),
    ("/%41%5A%61%7A%30%39%2D%2E%5F%7E", "/AZaz09-._~"),  # every kind of unreserved
    ("%30", "0"),  # at the start
    ("/a%30", "/a0"),  # at the end
    ("/%30%30", "/00"),  # escapes side by side
    ("/dir/sub/%30.cfg", "/dir/sub/0.cfg"),  # directories stay
    ("/a;b+c=d,e!$&'()*@:", "/a;b+c=d,e!$&'()*@:"),  # literal reserved: left as sent
    ("/", "/"),
    ("", ""),
]

NO_FILE = [
    f"/dir%2F{MAC}.cfg",  # "/": another path than the decoded text
    f"/dir%2f{MAC}.cfg",
    f"/dir%5C{MAC}.cfg",  # "\"
    f"/dir%5c{MAC}.cfg",
    f"/{MAC}%00.cfg",  # NUL
    f"/%2530{MAC[1:]}.cfg",  # "%": never decoded twice (it would be "%30", then "0")
    f"/{MAC}.cfg%3Fx",  # "?"
    f"/{MAC}.cfg%23x",  # "#"
    f"/{MAC}%20.cfg",  # space
    f"/{MAC}.cfg%0A",  # LF (a "$" in a pattern would match before it)
    f"/{MAC}.cfg%0D",
    f"/{MAC}.cfg%7F",  # DEL
    "/%C3%A9.cfg",  # non-ASCII, UTF-8
    "/%80.cfg",
    "/%FF.cfg",
    "/é.cfg",  # non-ASCII as such
    "/%",  # malformed escapes
    "/%.cfg",
    "/%4",
    "/%4.cfg",  # "%4." is no escape
    "/%zz.cfg",
    "/%g0.cfg",
    "/%0g.cfg",
    "/%%30.cfg",
    "/%+1.cfg",  # int() would read these as numbers
    "/%-1.cfg",
    "/% 1.cfg",
    "/%1_.cfg",
    "/%٣٠.cfg",  # non-ASCII digits
]


@pytest.mark.parametrize(("path", "normal"), DECODED)
def test_an_escaped_unreserved_character_is_the_character(path: str, normal: str) -> None:
    assert normalize_path(path) == normal
    assert len(normal) <= len(path)  # decoding never lets a path grow


@pytest.mark.parametrize("path", NO_FILE)
def test_any_other_escape_or_a_malformed_one_names_no_file(path: str) -> None:
    assert normalize_path(path) is None


@pytest.mark.parametrize("octet", range(256))
def test_every_octet_escaped(octet: int) -> None:
    """Decoded if it is unreserved (RFC 3986 section 2.3), else the path names no file."""
    character = chr(octet)
    expected = f"/{character}.cfg" if character in UNRESERVED else None
    assert normalize_path(f"/%{octet:02X}.cfg") == expected
    assert normalize_path(f"/%{octet:02x}.cfg") == expected


def test_unreserved_is_rfc_3986() -> None:
    assert "".join(sorted(UNRESERVED)) == (
        "-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
    )


def test_every_file_name_is_unreserved_so_an_escape_of_anything_else_names_none() -> None:
    names = [n for files in FILES.values() for n in files] + ["spa.cfg", "init.cfg"]
    for name in names:
        assert identify(name, None) is not None, name
        assert set(name) <= UNRESERVED, name


def test_a_fully_escaped_name_is_the_name() -> None:
    """Three times as long as sent, the decoded name is the name: the 64-character bound
    (MAX_NAME) applies to what is decoded."""
    name = f"{MAC}.cfg"
    escaped = "/" + "".join(f"%{ord(c):02X}" for c in name)
    assert len(escaped) == 1 + 3 * len(name)
    assert normalize_path(escaped) == f"/{name}"
