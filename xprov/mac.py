"""MAC addresses as xprov stores them: 12 lowercase hex digits, no separators."""

from __future__ import annotations

import re

_MAC = re.compile(
    r"^(?:[0-9a-f]{2}([:\-.]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}"  # 00:15:65:4a:a9:37, 0015654aa937
    r"|[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4})$",  # Cisco's 0015.654a.a937
    re.IGNORECASE,
)


def normalize_mac(text: str) -> str | None:
    """'00:15:65:4A:A9:37', '00-15-65-4a-a9-37', '0015.654a.a937' or '0015654aa937'
    -> '0015654aa937'."""
    if not _MAC.match(text):
        return None
    return re.sub(r"[:\-.]", "", text).lower()


def colon_mac(mac: str) -> str:
    """'0015654aa937' -> '00:15:65:4a:a9:37'."""
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))
