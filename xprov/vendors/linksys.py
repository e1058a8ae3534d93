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
    "model": FileSpec("linksys/model.xml", _XML, per_device=False, per_model=True),
    "device": FileSpec("linksys/device.xml", _XML, per_device=True),
}

# $PSN, the product series number each model puts in its default Profile_Rule
# `/spa$PSN.cfg`, as the firmware spells it (letters in capitals: `spa504G.cfg`). Cisco SPA
# provisioning guide (macros $PN, $PSN); Cisco Small Business SPA300/SPA500 and SPA100/
# SPA200 administration guides; Linksys SPA9x2 and PAP2T/SPA2102/SPA3102 admin guides.
SERIES = (
    "301", "303",  # SPA301, SPA303
    "501G", "502G", "504G", "508G", "509G", "512G", "514G", "525G", "525G2",  # SPA500
    "901", "921", "922", "941", "942", "962",  # Linksys SPA900
    "112", "122", "2102", "3102", "8000", "3000", "9000",  # ATAs and the IP PBX
)  # fmt: skip
_SERIES = {psn.upper(): psn for psn in SERIES}
# Files named without a series number: the Sipura SPA-2000 asks for `spa.cfg`, the PAP2T for
# `init.cfg` (Linksys PAP2T administration guide); the User-Agent names a newer model.
_UNNUMBERED = {"spa.cfg": "SPA2000", "init.cfg": "PAP2T"}
_MODEL_FILE = re.compile(r"^spa(?P<psn>[0-9a-z]{3,5})\.cfg$", re.IGNORECASE)
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
    """The file `name` asks for, under its one canonical name (the MAC in lower case, the
    series number as the firmware spells it), so that every spelling of a file is one file."""
    if match := _DEVICE.match(name):
        # The file name names the phone; its User-Agent adds nothing (and costs a parse).
        mac = match[1].lower()
        return FileRequest(NAME, "device", FILES["device"], f"{mac}.xml", mac, None, None)
    unnumbered = _UNNUMBERED.get(name.lower())
    match = _MODEL_FILE.match(name)  # never for an unnumbered name: no series number
    if unnumbered is None and match is None:
        return None
    ua = parse_user_agent(user_agent)
    ua_mac = ua.mac if ua else None
    if match is not None:
        # The file name's series number is exact; a number no model has names nothing.
        psn = _SERIES.get(match["psn"].upper())
        if psn is None:
            return FileRequest(NAME, "model", FILES["model"], name, None, ua_mac, None)
        return FileRequest(
            NAME, "model", FILES["model"], f"spa{psn}.cfg", None, ua_mac, "SPA" + psn
        )
    known = ua is not None and ua.model.removeprefix("SPA") in _SERIES.values()
    model = ua.model if known and ua is not None else unnumbered
    return FileRequest(NAME, "model", FILES["model"], name.lower(), None, ua_mac, model)


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
