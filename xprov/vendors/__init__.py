"""Phone vendors: which file names each asks for, how to read its User-Agent, its templates.

Each vendor module contributes its own identification rules; file names never overlap
between vendors, so the first vendor that recognises a name owns the request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from xprov.vendors import linksys, yealink
from xprov.vendors.base import FileRequest, FileSpec, ServerOrder

__all__ = [
    "VENDORS",
    "VENDOR_NAMES",
    "FileRequest",
    "FileSpec",
    "ServerOrder",
    "all_templates",
    "identify",
    "shared_requests",
    "unknown_models",
]


class Vendor(Protocol):
    NAME: str
    FILES: Mapping[str, FileSpec]
    SERVER_ORDER: ServerOrder  # of `sip_servers` in its templates

    def identify(self, name: str, user_agent: str | None) -> FileRequest | None: ...

    def device_file(self, mac: str) -> str: ...

    def context(self, request: FileRequest, model: str | None) -> dict[str, Any]: ...

    def credentials_problem(self, user: str, password: str) -> str | None: ...

    def known_model(self, model: str) -> bool: ...

    def shared_requests(self) -> Iterable[FileRequest]: ...

    def unknown_model_effect(self) -> str: ...


VENDORS: Mapping[str, Vendor] = {v.NAME: v for v in (yealink, linksys)}
VENDOR_NAMES = tuple(sorted(VENDORS))
MAX_NAME = 64
MAX_USER_AGENT = 256


def identify(path: str, user_agent: str | None) -> FileRequest | None:
    """Which vendor's file is this, for which phone and model? None: nobody's."""
    name = path.rpartition("/")[2]
    if not name or len(name) > MAX_NAME:
        return None
    ua = user_agent[:MAX_USER_AGENT] if user_agent else None
    for vendor in VENDORS.values():
        request = vendor.identify(name, ua)
        if request is not None:
            return request
    return None


def shared_requests() -> Iterator[FileRequest]:
    """Every shared file of every model of every vendor, as a phone of that model asks."""
    for vendor in VENDORS.values():
        yield from vendor.shared_requests()


def all_templates() -> list[str]:
    return sorted({spec.template for v in VENDORS.values() for spec in v.FILES.values()})


def unknown_models(phones: Iterable[tuple[str, str, str]], shown: int = 5) -> list[str]:
    """One warning per (vendor, model) of `phones` ((mac, vendor, model) triples) that is not
    in its vendor's model table, naming up to `shown` of its phones and what they get.
    Not an error: the phone's own file is served all the same."""
    unknown: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for mac, vendor, model in phones:
        if not VENDORS[vendor].known_model(model):
            unknown[(vendor, model)].append(mac)
    warnings = []
    for (vendor, model), macs in sorted(unknown.items()):
        named = ", ".join(sorted(macs)[:shown]) + (", ..." if len(macs) > shown else "")
        warnings.append(
            f"{vendor} model {model!r} is not in xprov's model table ({len(macs)} phones: "
            f"{named}): {VENDORS[vendor].unknown_model_effect()}"
        )
    return warnings
