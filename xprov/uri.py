"""HTTP request paths as RFC 3986 spells them: one spelling of a file's path, found once.

Pure. Only phones' HTTP(S) paths are URIs; a TFTP file name (RFC 1350) and the name
`xprov render` takes are names as written, never percent-decoded.
"""

from __future__ import annotations

import itertools
import string

# RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". The vendors' file names are
# letters, digits and "." (xprov/vendors), so an escape of any other octet names no file.
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
# Every spelling of an unreserved character's escape, hex digits in either case ("2e" and
# "2E" are "."): one look-up decodes an escape and tells whether it may be decoded.
_DECODED = {
    "".join(spelling): character
    for character in UNRESERVED
    for spelling in itertools.product(*({d, d.lower()} for d in f"{ord(character):02X}"))
}


def normalize_path(path: str) -> str | None:
    """`path` with every percent-encoded unreserved character decoded, or None: the path
    names no file.

    `path` is a request-target's path as sent (up to its `?`: twisted.web splits the query
    off and the file lookup ignores it). RFC 3986 section 6.2.2.2: `%30` is `0`, `%2e` and
    `%2E` are `.` (hex digits in either case); every other character stays as it is. One
    pass: what an escape decodes to is never read as part of another escape. None if the
    path is not ASCII, has a malformed escape (`%`, `%4`, `%zz`), or escapes an octet that
    is not unreserved (`%2F` "/", `%5C` "\\", `%00`, `%25` "%", any reserved, control or
    non-ASCII octet): such a path would mean something else than its decoded text, and no
    file name has such a character. The result is never longer than `path` (an escape's
    three characters become one), so every bound on the path holds for it too.
    """
    if not path.isascii():
        return None
    if "%" not in path:  # what phones send: nothing to do
        return path
    head, *escaped = path.split("%")
    decoded = [head]
    for piece in escaped:  # each piece follows one "%": two hex digits, then literal text
        character = _DECODED.get(piece[:2])
        if character is None:  # malformed, or an octet that is not unreserved
            return None
        decoded.append(character + piece[2:])
    return "".join(decoded)
