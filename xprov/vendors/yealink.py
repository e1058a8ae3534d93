"""Yealink: boot files, the per-model common file and the per-device `<mac>.cfg`.

A phone asks for `<mac>.boot`, then (if missing) `y000000000000.boot`, then the common
`y0000000000XX.cfg` and `<mac>.cfg`. `<mac>-local.cfg` holds the phone's own changes and is
never ours to serve.
"""

from __future__ import annotations

import re
from typing import Any

from xprov.mac import normalize_mac
from xprov.vendors.base import FileRequest, FileSpec, UserAgent

NAME = "yealink"
_TEXT = "text/plain; charset=utf-8"
FILES = {
    "device_boot": FileSpec("yealink/device.boot", _TEXT, per_device=True),
    "common_boot": FileSpec("yealink/common.boot", _TEXT, per_device=False),
    "common": FileSpec("yealink/common.cfg", _TEXT, per_device=False, per_model=True),
    "device": FileSpec("yealink/device.cfg", _TEXT, per_device=True),
}

# Model -> the XX of the common file y0000000000XX.cfg (vendor guides; sources disagree on a
# few, so a model named by the User-Agent wins over this table).
MODEL_CODES = {
    "T28P": 0,
    "T26P": 4,
    "T22P": 5,
    "T20P": 7,
    "W52P": 25,
    "W56P": 25,
    "T46G": 28,
    "T42G": 29,
    "T32G": 32,
    "T48G": 35,
    "T41P": 36,
    "CP860": 37,
    "T38G": 38,
    "T23P": 44,
    "T23G": 44,
    "T27P": 45,
    "T29G": 46,
    "T49G": 51,
    "T21P_E2": 52,
    "T19P_E2": 53,
    "T40P": 54,
    "T56A": 58,
    "T58": 58,
    "T48S": 65,
    "T46S": 66,
    "T42S": 67,
    "T41S": 68,
    "T27G": 69,
    "T54S": 70,
    "CP960": 73,
    "T52S": 74,
    "T40G": 76,
    "W60B": 77,
    "CP920": 78,
    "T53": 95,
    "T53W": 95,
    "T54W": 96,
    "T57W": 97,
    "T43U": 107,
    "T46U": 108,
    "T48U": 109,
    "T42U": 116,
    "T31G": 123,
    "T33G": 124,
    "W90": 130,
    "CP965": 143,
    "W70B": 146,
    "CP925": 148,
    "T58W": 150,
    "T34W": 171,
    "T31W": 172,
    "T44W": 174,
    "W80": 175,
}
CODE_MODELS: dict[int, str] = {}
for _model, _code in MODEL_CODES.items():
    CODE_MODELS.setdefault(_code, _model)

_DEVICE = re.compile(r"^([0-9a-f]{12})\.(cfg|boot)$", re.IGNORECASE)
_COMMON = re.compile(r"^y(\d{12})\.cfg$")
COMMON_BOOT = "y000000000000.boot"  # the one common boot file every model asks for
# "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37", "Yealink SIP VP-T49G 51.80.0.10 ...",
# "W52P 25.30.0.2 ...", "Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0" (old firmware: no MAC)
_USER_AGENT = re.compile(
    r"^(?:Yealink[\s-]+)?(?:SIP[\s-]+)?(?:VP-)?"
    r"(?P<model>[A-Z]{1,3}\d{2,3}[A-Z]?(?:[_\s]E2)?)\s+"
    r"(?P<firmware>\d+(?:\.\d+){2,})"
    r"(?:\s+(?P<mac>\S+))?",
    re.IGNORECASE,
)


def parse_user_agent(text: str | None) -> UserAgent | None:
    match = _USER_AGENT.match(text.strip()) if text else None
    if match is None:
        return None
    model = re.sub(r"\s", "_", match["model"]).upper()
    mac = normalize_mac(match["mac"]) if match["mac"] else None
    return UserAgent(model=model, firmware=match["firmware"], mac=mac)


def common_file(model: str | None) -> str | None:
    """'T46G' -> 'y000000000028.cfg'; None for a model outside the table."""
    code = MODEL_CODES.get(model.upper()) if model else None
    return None if code is None else f"y{code:012d}.cfg"


def device_file(mac: str) -> str:
    return f"{mac}.cfg"


def identify(name: str, user_agent: str | None) -> FileRequest | None:
    """The file `name` asks for, under its one canonical name (a MAC in lower case, a common
    file under its model's code), so that every spelling of a file is one file."""
    if match := _DEVICE.match(name):
        # The file name names the phone; its User-Agent adds nothing (and costs a parse).
        mac, extension = match[1].lower(), match[2].lower()
        kind = "device" if extension == "cfg" else "device_boot"
        return FileRequest(NAME, kind, FILES[kind], f"{mac}.{extension}", mac, None, None)
    if name == COMMON_BOOT:
        ua = parse_user_agent(user_agent)
        spec = FILES["common_boot"]
        return FileRequest(NAME, "common_boot", spec, name, None, ua.mac if ua else None, None)
    if match := _COMMON.match(name):
        ua = parse_user_agent(user_agent)
        model = common_model(int(match[1]), ua.model if ua else None)
        canonical = common_file(model) or name  # an unknown model's name is never cached
        ua_mac = ua.mac if ua else None
        return FileRequest(NAME, "common", FILES["common"], canonical, None, ua_mac, model)
    return None


def common_model(code: int, ua_model: str | None) -> str | None:
    """The model whose common file is asked for: the User-Agent's model if the table knows
    it (sources disagree on a few codes), else the table's model for `code`; None if
    neither names a known model."""
    if ua_model is not None and ua_model in MODEL_CODES:
        return ua_model
    return CODE_MODELS.get(code)


def context(request: FileRequest, model: str | None) -> dict[str, Any]:
    return {"common_file": common_file(model)}


def credentials_problem(user: str, password: str) -> str | None:
    """Yealink sends any credentials its key = value lines can carry (no control character,
    which the inventory refuses anyway)."""
    return None
