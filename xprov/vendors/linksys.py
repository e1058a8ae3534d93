"""Linksys / Cisco SPA: the per-model `spa$PSN.cfg` and the per-device `<mac>.xml`.

The per-model file (also `spa.cfg` for the SPA-2000 and `init.cfg` for the PAP2T) points
`Profile_Rule_B` at the per-device `$MA.xml` on this server, which carries the accounts.
"""

from __future__ import annotations

import re
from typing import Any

from xprov.mac import normalize_mac
from xprov.vendors.base import FileRequest, FileSpec, UserAgent

NAME = "linksys"
_XML = "text/xml; charset=utf-8"
FILES = {
    "model": FileSpec("linksys/model.xml", _XML, per_device=False),
    "device": FileSpec("linksys/device.xml", _XML, per_device=True),
}

_MODEL_FILE = re.compile(r"^(?:spa(?P<psn>\d{3,4}[a-z]{0,2})?|(?P<init>init))\.cfg$", re.IGNORECASE)
_DEVICE = re.compile(r"^([0-9a-f]{12})\.xml$", re.IGNORECASE)
# "Linksys/SPA-942-6.1.5(a) (88019FA42805)": model, firmware, serial number.
# "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)": MAC, then serial number.
# "Cisco/SPA525G-7.4.4 (CBT141900G7)": serial number only.
_USER_AGENT = re.compile(
    r"^(?:Linksys|Cisco|Sipura)/(?P<model>[A-Z]+-?\d+[A-Z]*)-(?P<firmware>\S+)(?P<rest>.*)$",
    re.IGNORECASE,
)
_GROUP = re.compile(r"\(([^()]*)\)")


def parse_user_agent(text: str | None) -> UserAgent | None:
    match = _USER_AGENT.match(text.strip()) if text else None
    if match is None:
        return None
    groups = _GROUP.findall(match["rest"])
    # Only the two-group 7.x form carries a MAC; a lone group is the serial number,
    # even when it looks like hex (old Linksys firmware).
    mac = normalize_mac(groups[0]) if len(groups) >= 2 else None
    return UserAgent(
        model=match["model"].replace("-", "").upper(), firmware=match["firmware"], mac=mac
    )


def device_file(mac: str) -> str:
    return f"{mac}.xml"


def identify(name: str, user_agent: str | None) -> FileRequest | None:
    if match := _MODEL_FILE.match(name):
        # The file name's series number is exact; the User-Agent only fills in the rest.
        ua = parse_user_agent(user_agent)
        if match["psn"]:
            model: str | None = "SPA" + match["psn"].upper()
        elif ua is not None:
            model = ua.model
        else:
            model = "PAP2T" if match["init"] else "SPA2000"
        return FileRequest(NAME, "model", FILES["model"], name, None, ua.mac if ua else None, model)
    if match := _DEVICE.match(name):
        # The file name names the phone; its User-Agent adds nothing (and costs a parse).
        return FileRequest(NAME, "device", FILES["device"], name, match[1].lower(), None, None)
    return None


def context(request: FileRequest, model: str | None) -> dict[str, Any]:
    return {}


# A resync rule's bracketed arguments are macro expanded and then parsed, so credentials
# carried in them ([--uid "$O" --pwd "$P"]) must not close the quotes or the brackets
# (Cisco SPA provisioning guide, Optional Resync Arguments).
_RULE_BREAKERS = re.compile(r'["\[\]$\s]')


def credentials_problem(user: str, password: str) -> str | None:
    """Why an SPA cannot send these credentials in its resync rule; None if it can."""
    if _RULE_BREAKERS.search(user) or _RULE_BREAKERS.search(password):
        return 'an SPA cannot send credentials holding a quote, bracket, "$" or space'
    return None
