"""Simulated phones: what each asks for, as whom, and which site its file points at. Pure."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from dataclasses import dataclass

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
            )
        )
    return out


def sites_in(vendor: str, body: bytes, config: Config) -> dict[str, str | None]:
    """Which site's SIP server and STUN server a per-device file points at."""
    # (host, port) as the file spells them, None where one is missing
    sip: tuple[str | None, ...]
    stun: tuple[str | None, ...]
    if vendor == "yealink":
        keys = dict(
            line.split(" = ", 1)
            for line in body.decode("utf-8", "replace").splitlines()
            if " = " in line and not line.startswith("#")
        )
        sip = (keys.get("account.1.sip_server.1.address"), keys.get("account.1.sip_server.1.port"))
        stun = (keys.get("static.sip.nat_stun.server"), keys.get("static.sip.nat_stun.port"))
    else:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return {"sip": None, "stun": None}
        proxy, server = root.findtext("Proxy_1_"), root.findtext("STUN_Server")
        sip = tuple(proxy.rsplit(":", 1)) if proxy else (None, None)
        stun = tuple(server.rsplit(":", 1)) if server else (None, None)
    found: dict[str, str | None] = {"sip": None, "stun": None}
    for name, site in config.sites.items():
        if sip == (site.sip.host, str(site.sip.port)):
            found["sip"] = name
        if site.stun is not None and stun == (site.stun.host, str(site.stun.port)):
            found["stun"] = name
    return found
