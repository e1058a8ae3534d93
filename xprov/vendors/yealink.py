"""Yealink: boot files, the per-model common file and the per-device `<mac>.cfg`.

A phone asks for `<mac>.boot`, then (if missing) `y000000000000.boot`, then the common
`y0000000000XX.cfg` and `<mac>.cfg`. `<mac>-local.cfg` holds the phone's own changes and is
never ours to serve.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from xprov.mac import normalize_mac
from xprov.vendors.base import FileRequest, FileSpec, ServerOrder, UserAgent
from xprov.vendors.yealink_models import MODELS

NAME = "yealink"
# A Yealink applies a changed server address without a reboot (reference/phones.md, "Reboot
# behaviour"): account.X.sip_server.1 is the active site, so a switch moves it first.
SERVER_ORDER = ServerOrder.ACTIVE_FIRST
_TEXT = "text/plain; charset=utf-8"
FILES = {
    "device_boot": FileSpec("yealink/device.boot", _TEXT, per_device=True),
    "common_boot": FileSpec("yealink/common.boot", _TEXT, per_device=False),
    "common": FileSpec("yealink/common.cfg", _TEXT, per_device=False, per_model=True),
    "device": FileSpec("yealink/device.cfg", _TEXT, per_device=True),
}

# Model -> the XX of the common file its boot file names; XX -> the model that asks for it
# (the first row of the table with that code).
MODEL_CODES = {model.name: model.codes[0] for model in MODELS}
CODE_MODELS: dict[int, str] = {}
for _model in MODELS:
    for _code in _model.codes:
        CODE_MODELS.setdefault(_code, _model.name)
# The common file a model outside the table gets in its boot file: the one the common boot
# file (y000000000000.boot) names for every phone without a boot file of its own.
GENERIC_COMMON = "y000000000000.cfg"

# \Z, not $: "$" also matches before a final newline, and a TFTP name may end in one.
_DEVICE = re.compile(r"^([0-9a-f]{12})\.(cfg|boot)\Z", re.IGNORECASE)
_COMMON = re.compile(r"^y([0-9]{12})\.cfg\Z", re.IGNORECASE)
COMMON_BOOT = "y000000000000.boot"  # the one common boot file every model asks for
# "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37", "Yealink SIP VP-T49G 51.80.0.10 ...",
# "W52P 25.30.0.2 ...", "Yealink-T46G 28.71.0.81 28.1.0.128.0.0.0" (old firmware: no MAC)
_USER_AGENT = re.compile(
    r"^(?:Yealink[\s-]+)?(?:SIP[\s-]+)?(?:VP-)?"
    r"(?P<model>[A-Z]{1,3}\d{2,3}[A-Z]{0,2}(?:[_\s]E2)?)\s+"
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


def canonical_model(model: str) -> str:
    """The table's spelling of a model as an inventory may write it: 't21p e2' -> 'T21P_E2',
    'SIP-T46G' -> 'T46G'."""
    name = re.sub(r"[\s-]+E2$", "_E2", model.strip().upper())
    return re.sub(r"^SIP[\s-]+(?:VP-)?", "", name)


def common_file(model: str | None) -> str | None:
    """'T46G' -> 'y000000000028.cfg'; None for a model outside the table."""
    code = MODEL_CODES.get(canonical_model(model)) if model else None
    return None if code is None else _common_name(code)


def _common_name(code: int) -> str:
    return f"y{code:012d}.cfg"


def known_model(model: str) -> bool:
    return canonical_model(model) in MODEL_CODES


def unknown_model_effect() -> str:
    return (
        f"its <mac>.cfg is served, and its <mac>.boot includes the generic {GENERIC_COMMON}; "
        "a request for its own y0000000000XX.cfg is 404 until the table knows the model"
    )


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
    if name.lower() == COMMON_BOOT:
        ua = parse_user_agent(user_agent)
        spec = FILES["common_boot"]
        return FileRequest(
            NAME, "common_boot", spec, COMMON_BOOT, None, ua.mac if ua else None, None
        )
    if match := _COMMON.match(name):
        ua = parse_user_agent(user_agent)
        model = common_model(int(match[1]), ua.model if ua else None)
        canonical = common_file(model) or name.lower()  # an unknown model's is never cached
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


def shared_requests() -> Iterator[FileRequest]:
    """Every shared file as phones ask for it: the common boot file, and each model's
    common file (for check-config to render them all)."""
    yield FileRequest(NAME, "common_boot", FILES["common_boot"], COMMON_BOOT, None, None, None)
    for model in MODELS:
        name = _common_name(model.codes[0])
        yield FileRequest(NAME, "common", FILES["common"], name, None, None, model.name)


def context(request: FileRequest, model: str | None) -> dict[str, Any]:
    """`common_file`: what a boot file includes before the phone's own file."""
    return {"common_file": common_file(model) or GENERIC_COMMON}


def credentials_problem(user: str, password: str) -> str | None:
    """Yealink sends any credentials its key = value lines can carry (no control character,
    which the inventory refuses anyway)."""
    return None
