"""The reader of `[cluster]` (issue 16): standalone by default, or etcd with its endpoints,
TLS files, credentials and timings."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

from xprov.config.model import STANDALONE, ClusterConfig
from xprov.config.table import CONTROL, Table, read_credentials, readable, string_item

NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def read_cluster(root: Table, base: Path) -> ClusterConfig:
    t = root.table("cluster", required=False)
    if t is None:
        return STANDALONE
    mode = t.text("mode", "standalone", ("standalone", "etcd"))
    name = t.text("name", socket.gethostname().split(".")[0].lower())
    if isinstance(name, str) and not set(name) <= NAME_CHARACTERS:
        t.problem("name", "use lowercase letters, digits, '-', '_' and '.' (it names a key)")
    endpoints = t.items("endpoints", string_item(root.problems))
    for index, url in enumerate(endpoints):
        parts = urlsplit(url)
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
        ):
            t.problem(
                f"endpoints[{index}]", f"{url!r} is not an etcd client URL (http[s]://host:port)"
            )
    if mode == "etcd" and not endpoints:
        t.problem("endpoints", 'missing (mode = "etcd" needs the etcd members\' client URLs)')
    prefix = t.text("prefix", "/xprov/")
    if isinstance(prefix, str) and (not prefix.endswith("/") or CONTROL.search(prefix)):
        t.problem("prefix", "must end with '/'")
    lease_ttl = t.integer("lease_ttl", 5, 2, 60)
    min_observers = t.integer("min_observers", 2, 1, 9)
    timeout = t.number("timeout", 1.0, 0.1, 10.0)
    if isinstance(lease_ttl, int) and isinstance(timeout, float) and lease_ttl < 2 * timeout + 1:
        # a renewal that times out on one member must still reach the next before expiry
        t.problem("lease_ttl", f"must be at least 2 x timeout + 1 s ({2 * timeout + 1:g})")
    files = {
        key: readable(t, key, base, value)
        for key in ("ca", "certificate", "private_key")
        if (value := t.get(key, str, None)) is not None
    }
    if ("certificate" in files) != ("private_key" in files):
        t.problem("certificate", "give both certificate and private_key, or neither")
    user, password = read_credentials(t, base)
    t.finish()
    return ClusterConfig(
        mode or "standalone",
        name or "",
        endpoints,
        prefix or "/xprov/",
        lease_ttl or 5,
        min_observers or 2,
        timeout or 1.0,
        files.get("ca"),
        files.get("certificate"),
        files.get("private_key"),
        user,
        password,
    )
