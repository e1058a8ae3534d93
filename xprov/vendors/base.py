"""What every vendor module produces: the file it recognised and how to render it."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True)
class FileSpec:
    template: str
    content_type: str
    per_device: bool  # True: only for a known phone of this vendor, MAC from the file name
    # True: one file per model, which only a model in the vendor's table has (a name that
    # names no known model is 404: the render cache holds one entry per model, never one
    # per name a stranger makes up)
    per_model: bool = False


@dataclass(frozen=True)
class UserAgent:
    """What a phone's User-Agent says about it; `mac` is a hint, never proof of identity."""

    model: str
    firmware: str
    mac: str | None


class FileRequest(NamedTuple):  # a tuple: made on every request, so cheap to build
    vendor: str
    kind: str
    spec: FileSpec
    name: str  # the file name as asked, without directories
    mac: str | None  # from the file name: identifies the phone
    ua_mac: str | None  # from the User-Agent: a hint, never proof of identity
    model: str | None  # from the file name or User-Agent


class Evidence(enum.Enum):
    """How sure a row of a model table is, from its sources (docs/models.md)."""

    VENDOR = "a vendor document"
    PROJECTS = "two or more public provisioning projects"
    PROJECT = "one public provisioning project"
    INFERRED = "inferred from its family or series, said beside the row"


class ServerOrder(enum.Enum):
    """How a vendor's per-device file orders the phone's own list of SIP servers, with
    [failover] phone_redundancy on (`xprov.selection.sip_servers`, docs/phone-redundancy.md).
    A property of the firmware: what a changed file costs the phone."""

    # The firmware applies a changed server without a reboot: the active site first, so
    # new requests go to the working server at once; a switch reorders the list.
    ACTIVE_FIRST = "active first"
    # Any changed value reboots the phone: [failover] primary, backup, then the others, the
    # same list whatever the selection; the phone moves down the list by its own timers.
    CONFIGURED = "configured"
