"""The operator's status page: three static files the admin listener serves to anyone who
can reach it (they hold no data; the page reads /status with the admin token it is given).

The files ship in the package (`xprov/page/`) and are read once, at start: the page is
part of the release, not of the configuration, so a reload does not re-read them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from importlib import resources

# What the page may load and where it may send: its own files and the admin API, nothing
# else (no inline script or style, no framing, no form posted anywhere).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
    b"cache-control": b"no-cache",  # a new release's page is seen at once
}
FILES = {  # URL path -> (file in xprov/page, media type)
    b"/": ("index.html", b"text/html; charset=utf-8"),
    b"/page/app.js": ("app.js", b"text/javascript; charset=utf-8"),
    b"/page/app.css": ("app.css", b"text/css; charset=utf-8"),
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: bytes


def load() -> dict[bytes, Asset]:
    """Every page file by its URL path. Raises OSError if the package lacks one (a broken
    installation: better refused at start than a page that half loads)."""
    folder = resources.files("xprov") / "page"
    return {
        path: Asset((folder / name).read_bytes(), media_type)
        for path, (name, media_type) in FILES.items()
    }


def cross_site(origin: bytes | None, fetch_site: bytes | None, host: bytes | None) -> str | None:
    """Why a state-changing request looks sent by another site's page (None: it does not).

    Browsers name the page that sent a request in `Sec-Fetch-Site` (Fetch Metadata) and
    `Origin` (RFC 6454 section 7); command-line clients send neither. A page of another port
    of the same host is "same-site" but another origin: refused too, and so is "none" (a
    request no page made: a browser never POSTs so). The origin's scheme is not compared:
    one port serves one scheme. Whether the Host itself is ours: `known_host`.
    """
    if fetch_site is not None and fetch_site != b"same-origin":
        return f"Sec-Fetch-Site: {fetch_site.decode('latin-1')[:32]}"
    if origin is not None and origin.partition(b"://")[2] != (host or b"\x00"):
        return f"Origin {origin.decode('latin-1')[:100]} is not this listener"
    return None


def known_host(host: bytes | None, server_names: Collection[str]) -> bool:
    """Whether a request's `Host` names this listener: an IP address, `localhost`, or one of
    `[admin] server_names`. Another name is a page of another site whose name now resolves
    to us (DNS rebinding): its requests are refused, whatever they carry. No Host (HTTP/1.0,
    a command-line client) is no browser's request."""
    if host is None:
        return True
    text = host.decode("latin-1").lower()
    if text.startswith("["):  # an IPv6 address: "[::1]:8081" (RFC 3986 section 3.2.2)
        name, bracket, _ = text[1:].partition("]")
        if not bracket:
            return False
    else:
        name = text.rpartition(":")[0] or text
    if name == "localhost" or name in server_names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
