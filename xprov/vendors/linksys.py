"""Linksys / Cisco SPA: the per-model `spa$PSN.cfg` and the per-device `<mac>.xml`.

The per-model file (also `spa.cfg` for the SPA-2000 and `init.cfg` for the PAP2T) points
`Profile_Rule_B` at the per-device `$MA.xml` on this server, which carries the accounts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from xprov.mac import normalize_mac
from xprov.vendors.base import FileRequest, FileSpec, ServerOrder, UserAgent
from xprov.vendors.linksys_models import MODELS

NAME = "linksys"
# An SPA reboots on any changed value (reference/phones.md, "Reboot behaviour"): its static
# SRV list keeps [failover] primary at p=0 whatever the selection, so a SIP switch changes
# nothing in its file; the phone moves to p=1 by its own timers.
SERVER_ORDER = ServerOrder.CONFIGURED
_XML = "text/xml; charset=utf-8"
FILES = {
    "model": FileSpec("linksys/model.xml", _XML, per_device=False, per_model=True),
    "device": FileSpec("linksys/device.xml", _XML, per_device=True),
}

# Every name a model's factory Profile_Rule asks for, in lower case -> (the name as its
# firmware spells it, the model).
_FILES = {file.lower(): (file, model.name) for model in MODELS for file in model.files}
_NAMES = frozenset(model.name for model in MODELS)
# \Z, not $: "$" also matches before a final newline, and a TFTP name may end in one.
_MODEL_FILE = re.compile(r"^spa(?P<psn>[0-9a-z]{3,5})\.cfg\Z", re.IGNORECASE)
# Files named without a series number: their User-Agent may name a newer model.
_UNNUMBERED = frozenset(name for name in _FILES if _MODEL_FILE.match(name) is None)
_DEVICE = re.compile(r"^([0-9a-f]{12})\.xml\Z", re.IGNORECASE)
# "Linksys/SPA-942-6.1.5(a) (88019FA42805)": model, firmware, serial number.
# "Cisco/SPA508G-7.4.4 (0002FDFF2103)(CBT141400UK)": MAC, then serial number.
# "Cisco/SPA525G-7.4.4 (CBT141900G7)": serial number only.
_USER_AGENT = re.compile(
    r"^(?:Linksys|Cisco|Sipura)/(?P<model>[A-Z]+-?\d+(?:[A-Z]+\d*)?)-(?P<firmware>\S+)(?P<rest>.*)$",
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
    known = _FILES.get(name.lower())
    if known is None and _MODEL_FILE.match(name) is None:
        return None
    ua = parse_user_agent(user_agent)
    ua_mac = ua.mac if ua else None
    if known is None:  # a series number no model in the table has: 404, never cached
        return FileRequest(NAME, "model", FILES["model"], name.lower(), None, ua_mac, None)
    file, model = known
    if file.lower() in _UNNUMBERED and ua is not None and ua.model in _NAMES:
        model = ua.model  # init.cfg, spa.cfg: the name says no model; the User-Agent does
    return FileRequest(NAME, "model", FILES["model"], file, None, ua_mac, model)


def shared_requests() -> Iterator[FileRequest]:
    """Every model's profile file as its firmware names it (for check-config)."""
    for model in MODELS:
        for file in model.files:
            yield FileRequest(NAME, "model", FILES["model"], file, None, None, model.name)


def context(request: FileRequest, model: str | None) -> dict[str, Any]:
    return {}


def canonical_model(model: str) -> str:
    """The table's spelling of a model as an inventory may write it: 'spa-942' -> 'SPA942'."""
    return model.strip().upper().replace("-", "")


def known_model(model: str) -> bool:
    return canonical_model(model) in _NAMES


def unknown_model_effect() -> str:
    return (
        "its <mac>.xml is served; its factory spa$PSN.cfg is 404 until the table knows the "
        "model (point its Profile_Rule at a known model's file, or at <mac>.xml)"
    )


# A resync rule's bracketed arguments are macro expanded and then parsed, so credentials
# carried in them ([--uid "$O" --pwd "$P"]) must not close the quotes or the brackets
# (Cisco SPA provisioning guide, Optional Resync Arguments).
_RULE_BREAKERS = re.compile(r'["\[\]$\s]')


def credentials_problem(user: str, password: str) -> str | None:
    """Why an SPA cannot send these credentials in its resync rule; None if it can."""
    if _RULE_BREAKERS.search(user) or _RULE_BREAKERS.search(password):
        return 'an SPA cannot send credentials holding a quote, bracket, "$" or space'
    return None
