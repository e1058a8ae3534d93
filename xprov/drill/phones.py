"""Simulated phones: what each asks for, as whom, which site its file points at and which SIP
servers it names, in the order the phone tries them. Pure."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from xprov.config import Config
from xprov.inventory import Phone
from xprov.mac import colon_mac
from xprov.vendors import yealink


@dataclass(frozen=True)
class SimPhone:
    mac: str
    vendor: str
    transport: str  # "http" or "tftp"
    user_agent: str | None  # TFTP has none
    files: tuple[str, ...]  # asked in order at every poll; the last is the per-device file
    phase: float  # seconds after the start of the first poll
    reboots: bool  # applies a change by rebooting (SPA), or in place (Yealink)
    user: str = ""  # its first line's SIP user: who a NOTIFY is for ("": no line)
    # its first line's digest credentials (auth user, password): what an SPA challenges a
    # resync NOTIFY with (fact sheet 3.2); never printed
    credentials: tuple[str, str] | None = field(default=None, repr=False)


def simulate(phones: list[Phone], tftp_share: float, poll: float, seed: int = 1) -> list[SimPhone]:
    """Phones as the real devices behave: a Yealink asks for its boot file, its model's
    common file and its own file; an SPA for its model file and its own XML. Poll phases
    spread evenly over one period; a share of them fetch over TFTP."""
    rng = random.Random(seed)
    out = []
    for i, phone in enumerate(phones):
        transport = "tftp" if rng.random() < tftp_share else "http"
        files: tuple[str, ...]
        if phone.vendor == "yealink":
            common = yealink.common_file(phone.model) or "y000000000000.cfg"
            files = (f"{phone.mac}.boot", common, f"{phone.mac}.cfg")
            agent = f"Yealink SIP-{phone.model} 28.83.0.50 {colon_mac(phone.mac)}"
        else:
            psn = phone.model.upper().removeprefix("SPA")
            files = (f"spa{psn}.cfg", f"{phone.mac}.xml")
            agent = f"Cisco/{phone.model}-7.6.2 ({phone.mac.upper()})(CBT{i:08d})"
        out.append(
            SimPhone(
                phone.mac,
                phone.vendor,
                transport,
                agent if transport == "http" else None,
                files,
                poll * i / max(1, len(phones)),
                phone.vendor == "linksys",
                phone.lines[0].user if phone.lines else "",
                (phone.lines[0].auth_user, phone.lines[0].password) if phone.lines else None,
            )
        )
    return out


@dataclass(frozen=True)
class SipServer:
    """A SIP server a per-device file names, and the site it belongs to (None: none of the
    config's)."""

    host: str
    port: int
    site: str | None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class SipServers:
    """What a per-device file tells its phone about SIP servers for its first line:
    `servers` in the order the phone tries them (Yealink `sip_server.1`, `.2`; SPA the
    static SRV list by priority), and whether it holds a registration at every one at once
    (`concurrent`: Yealink `fallback.redundancy_type = 0`, fact sheet 1.3)."""

    servers: tuple[SipServer, ...] = ()
    concurrent: bool = False


def sip_servers(vendor: str, body: bytes, config: Config) -> SipServers:
    """The SIP servers of a per-device file (see SipServers); none if it names none."""
    named: list[tuple[str, int]] = []
    concurrent = False
    if vendor == "yealink":
        keys = _yealink_keys(body)
        for n in (1, 2):
            address = keys.get(f"account.1.sip_server.{n}.address", "")
            port = keys.get(f"account.1.sip_server.{n}.port", "5060")
            if address and port.isdigit():
                named.append((address, int(port)))
        # the default mode is concurrent (0); it only matters with a second server
        concurrent = len(named) > 1 and keys.get("account.1.fallback.redundancy_type", "0") == "0"
    else:
        root = _spa_root(body)
        proxy = root.findtext("Proxy_1_") if root is not None else None
        named = proxies(proxy or "")
    return SipServers(
        tuple(SipServer(host, port, _site_of(config, host, port)) for host, port in named),
        concurrent,
    )


_SRV_ENTRY = re.compile(r"^(?P<host>[^:|]+)(?::(?P<port>\d*))?(?P<params>(?::[a-z]=[^:|]*)*)$")


def proxies(value: str) -> list[tuple[str, int]]:
    """An SPA `Proxy_n_` value as (host, port) in the order the phone tries them: `host`,
    `host:port`, or a static SRV list `label:SRV=host:port:p=0|host:port:p=1` (fact
    sheet 2.2: by priority `p`, lowest first; port 0 or none: 5060). [] if unreadable."""
    value = value.strip()
    if ":SRV=" not in value:
        host, _, port = value.partition(":")
        if not host or (port and not port.isdigit()):
            return []
        return [(host, int(port) if port and int(port) else 5060)]
    entries: list[tuple[int, str, int]] = []
    for text in value.split(":SRV=", 1)[1].split("|"):
        match = _SRV_ENTRY.match(text.strip())
        if match is None:
            return []
        params = dict(p.split("=", 1) for p in match["params"].split(":") if p)
        priority = params.get("p", "0")
        number = int(match["port"]) if match["port"] else 0
        entries.append((int(priority) if priority.isdigit() else 0, match["host"], number or 5060))
    return [(host, number) for _, host, number in sorted(entries, key=lambda e: e[0])]


def _site_of(config: Config, host: str, port: int) -> str | None:
    return next(
        (
            name
            for name, site in config.sites.items()
            if (site.sip.host, site.sip.port) == (host, port)
        ),
        None,
    )


def _yealink_keys(body: bytes) -> dict[str, str]:
    return dict(
        line.split(" = ", 1)
        for line in body.decode("utf-8", "replace").splitlines()
        if " = " in line and not line.startswith("#")
    )


def _spa_root(body: bytes) -> ET.Element | None:
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def sites_in(vendor: str, body: bytes, config: Config) -> dict[str, str | None]:
    """Which site's SIP server and STUN server a per-device file points at: for SIP, the
    server the phone tries first (Yealink `sip_server.1`; SPA `Proxy_1_`, or the
    first entry of its static SRV list)."""
    # (host, port) as the file spells them, None where one is missing
    sip: tuple[str | None, ...]
    stun: tuple[str | None, ...]
    if vendor == "yealink":
        keys = _yealink_keys(body)
        sip = (keys.get("account.1.sip_server.1.address"), keys.get("account.1.sip_server.1.port"))
        stun = (keys.get("static.sip.nat_stun.server"), keys.get("static.sip.nat_stun.port"))
    else:
        root = _spa_root(body)
        if root is None:
            return {"sip": None, "stun": None}
        proxy, server = root.findtext("Proxy_1_"), root.findtext("STUN_Server")
        first = proxies(proxy or "")[:1]
        sip = (first[0][0], str(first[0][1])) if first else (None, None)
        stun = tuple(server.rsplit(":", 1)) if server else (None, None)
    found: dict[str, str | None] = {"sip": None, "stun": None}
    for name, site in config.sites.items():
        if sip == (site.sip.host, str(site.sip.port)):
            found["sip"] = name
        if site.stun is not None and stun == (site.stun.host, str(site.stun.port)):
            found["stun"] = name
    return found
