"""Every Yealink model xprov knows: the common file it asks for, its firmware family, the form
of its User-Agent, and where each fact comes from.

A phone with a boot file (firmware 81 and later) fetches what its boot file includes, so the
first code of a row is the common file xprov names there; a phone without one asks for its
model's `y0000000000XX.cfg` itself, so every code of a row is served. Codes are not the
firmware family: the T4xS share firmware 66 and have four files (65 to 68). Conflicts
between sources are kept as second codes, never guessed away (docs/models.md lists them).
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from xprov.vendors.base import Evidence


class Form(enum.Enum):
    """How the model's HTTP User-Agent starts, before `<firmware> <mac>` (the projects' UA
    examples, source "wazo-yealink")."""

    SIP = "Yealink SIP-{model}"
    LOWER = "yealink SIP-{model}"  # the oldest firmware
    VIDEO = "Yealink SIP VP-{model}"
    PLAIN = "Yealink {model}"  # DECT bases, CP860, AX handsets
    BARE = "{model}"  # VP530: no vendor at all


class Model(NamedTuple):
    name: str  # as the User-Agent spells it (inventory: any case, "T21P E2" = "T21P_E2")
    codes: tuple[int, ...]  # XX of y0000000000XX.cfg; the first is the one boot files name
    family: int  # first number of its current firmware version ("28" of 28.83.0.50)
    form: Form
    evidence: Evidence
    sources: tuple[str, ...]  # keys of SOURCES


SOURCES = {
    "yealink-apg-t4x-71": "Yealink SIP-T4X IP Phones Auto Provisioning Guide, release 71, "
    "'Obtaining Configuration Files' (common CFG file per model)",
    "yealink-admin-t2-t4-t5": "Yealink Administrator Guide for SIP-T2/T4/T5 Series and CP920 "
    "IP phones, 'Boot Files' (MAC-oriented and common boot files, [$MODEL] sections)",
    "wazo-yealink": "wazo-platform/wazo-provd-plugins, plugins/wazo-yealink v73 to v86 and "
    "xivo-yealink v70 (entry.py common files, models.py firmware, common.py User-Agents)",
    "fusionpbx": "fusionpbx/fusionpbx, resources/templates/provision/yealink/<model>/",
    "freepbx-yealink": "FreePBX yealink endpoint module, yealinkGlobalCfgMap",
    "perl-autoprov": "a public Perl auto-provisioning script mapping models to y0000000000XX.cfg",
    "sark": "aelintra/sail, SARK device database (db_v4_device.sql), Yealink descriptors",
    "public-code": "single files of public code: tests, comments, SIP fingerprints",
    "xprov-reference": "xprov's phone reference sheet, from wazo-provd and FusionPBX (2025)",
}

_W, _F, _E, _P, _S = "wazo-yealink", "fusionpbx", "freepbx-yealink", "perl-autoprov", "sark"
_X, _C, _A = "xprov-reference", "public-code", "yealink-apg-t4x-71"
_V, _P2, _P1, _I = Evidence.VENDOR, Evidence.PROJECTS, Evidence.PROJECT, Evidence.INFERRED
SIP, LOWER, VIDEO, PLAIN, BARE = Form.SIP, Form.LOWER, Form.VIDEO, Form.PLAIN, Form.BARE

MODELS = (
    # T2x and T19: the first desk phones
    Model("T28P", (0,), 2, LOWER, _P2, (_W, _F, _S, _X)),
    Model("T26P", (4,), 6, SIP, _P2, (_W, _F, _S, _X)),
    Model("T22P", (5,), 7, SIP, _P2, (_W, _F, _S, _X)),
    Model("T20P", (7,), 9, SIP, _P2, (_W, _F, _S, _X)),
    Model("T18", (9,), 18, LOWER, _P2, (_W, _P, _S)),
    Model("T19P", (31,), 31, SIP, _P2, (_P, _S)),
    Model("T21P", (34,), 34, SIP, _P2, (_W, _P, _C)),
    Model("T19P_E2", (53,), 53, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T21P_E2", (52,), 52, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T23P", (44,), 44, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T23G", (44,), 44, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T27P", (45,), 45, SIP, _P2, (_W, _F, _P, _X)),
    Model("T27G", (69,), 69, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T29G", (46,), 46, SIP, _P2, (_W, _F, _E, _P, _X)),
    # T3x: one firmware (124) for three common files
    Model("T30P", (127,), 124, SIP, _P2, (_W, _E, _P)),
    Model("T30", (127,), 124, SIP, _P2, (_W, _E, _P)),
    Model("T31G", (123,), 124, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T31", (123,), 124, SIP, _P2, (_W, _F, _E, _P)),
    Model("T31P", (123,), 124, SIP, _P2, (_W, _F, _E, _P)),
    Model("T31W", (172,), 124, SIP, _P2, (_F, _E, _X)),
    Model("T32G", (32,), 32, SIP, _P2, (_W, _F, _P, _S, _X)),
    Model("T33G", (124,), 124, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T33P", (124,), 124, SIP, _P2, (_W, _F, _E, _P)),
    Model("T34W", (171,), 124, SIP, _P2, (_W, _F, _E, _X)),
    Model("T38G", (38,), 38, SIP, _P2, (_W, _F, _P, _S, _X)),
    # T4x
    Model("T40P", (54,), 54, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T40G", (76,), 76, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T41P", (36,), 36, SIP, _V, (_A, _W, _F, _E, _P, _S, _X)),
    Model("T42G", (29,), 29, SIP, _P2, (_W, _F, _P, _S, _X)),
    Model("T46G", (28,), 28, SIP, _P2, (_W, _F, _P, _S, _X)),
    Model("T48G", (35,), 35, SIP, _P2, (_W, _F, _E, _P, _S, _X)),
    Model("T49G", (51,), 51, VIDEO, _P2, (_W, _F, _P, _X)),
    Model("T41S", (68,), 66, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T42S", (67,), 66, SIP, _P2, (_W, _F, _P, _X)),
    Model("T46S", (66,), 66, SIP, _P2, (_W, _F, _P, _X)),
    Model("T48S", (65,), 66, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T41U", (116,), 108, SIP, _I, (_W,)),  # no source names its file: T42U's case
    Model("T42U", (116,), 108, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T43U", (107,), 108, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T46U", (108,), 108, SIP, _P2, (_W, _F, _P, _X)),
    Model("T48U", (109,), 108, SIP, _P2, (_F, _E, _P, _X)),
    Model("T44U", (173,), 108, SIP, _P1, (_E,)),
    Model("T44W", (174,), 108, SIP, _P2, (_F, _E, _X)),
    # T5x: the T53 and T57W moved to firmware 96 in release 85
    Model("T52S", (74,), 70, SIP, _P2, (_W, _F, _P, _X)),
    Model("T54S", (70,), 70, SIP, _P2, (_W, _F, _P, _X)),
    Model("T53", (95,), 96, SIP, _P2, (_W, _F, _P, _X)),
    Model("T53W", (95,), 96, SIP, _P2, (_W, _F, _P, _X)),
    Model("T53C", (95,), 96, SIP, _I, (_W,)),  # in firmware 96's list; file as the T53's
    Model("T54W", (96,), 96, SIP, _P2, (_W, _F, _P, _X)),
    Model("T57W", (97,), 96, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T56A", (58, 56), 58, SIP, _P2, (_W, _F, _X)),  # wazo: 58; fusionpbx: 56
    Model("T58", (58,), 58, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("T58V", (58,), 58, SIP, _P2, (_W, _F, _E, _P)),
    Model("T58A", (58,), 58, SIP, _P2, (_W, _F, _E, _P)),
    Model("T58W", (150,), 150, SIP, _P2, (_W, _F, _E, _X)),
    # T7x and T8x: newest, in one project so far; family assumed equal to the code
    Model("T73W", (183,), 183, SIP, _P1, (_F,)),
    Model("T74W", (184,), 184, SIP, _P1, (_F,)),
    Model("T73U", (186,), 186, SIP, _P1, (_F,)),
    Model("T74U", (187,), 187, SIP, _P1, (_F,)),
    Model("T77U", (188,), 188, SIP, _P1, (_F,)),
    Model("T85W", (196,), 196, SIP, _P1, (_F,)),
    Model("T87W", (197,), 197, SIP, _P1, (_F,)),
    Model("T88W", (192,), 192, SIP, _P1, (_F,)),
    Model("T88V", (192,), 192, SIP, _P1, (_F,)),
    # conference and video
    Model("CP860", (37,), 37, PLAIN, _P2, (_W, _F, _P, _X)),
    Model("CP920", (78,), 78, SIP, _P2, (_W, _F, _E, _P, _X)),
    Model("CP925", (148,), 148, SIP, _P2, (_W, _F, _X)),
    Model("CP960", (73,), 73, SIP, _P2, (_W, _F, _P, _X)),
    Model("CP965", (143,), 143, SIP, _P2, (_F, _X)),
    Model("VP530", (23,), 23, BARE, _P2, (_W, _P, _S)),
    Model("VP530P", (23,), 23, BARE, _P2, (_W, _P, _S)),
    Model("VP59", (91,), 91, SIP, _P2, (_F, _E, _P)),  # User-Agent form not confirmed
    # DECT bases (a kit is named after its handset; its base asks for the base's file)
    Model("W52P", (25,), 25, PLAIN, _P2, (_W, _F, _P, _X)),
    Model("W56P", (25,), 25, PLAIN, _P2, (_W, _F, _P, _X)),
    Model("W53P", (77,), 77, PLAIN, _P2, (_W, _F, _P)),
    Model("W60P", (77,), 77, PLAIN, _P2, (_W, _F, _P)),
    Model("W60B", (77,), 77, PLAIN, _P2, (_W, _F, _P, _X)),
    Model("W70B", (146,), 146, PLAIN, _P2, (_W, _F, _X)),
    Model("W73P", (146,), 146, PLAIN, _I, (_W,)),  # W70B base and W73H handset
    Model("W76P", (146,), 146, PLAIN, _I, (_W,)),  # W70B base and W56H handset
    Model("W78P", (146,), 146, PLAIN, _I, (_W,)),  # W70B base and W78H handset
    Model("W80B", (175, 103), 103, PLAIN, _P2, (_W, _F)),  # fusionpbx: 175; wazo v83: 103
    Model("W80DM", (175, 103), 103, PLAIN, _P2, (_W, _F)),
    Model("W80", (175,), 175, PLAIN, _P2, (_F, _X)),
    Model("W90B", (130,), 130, PLAIN, _P1, (_W,)),
    Model("W90DM", (130,), 130, PLAIN, _P1, (_W,)),
    Model("W90", (130,), 130, PLAIN, _P1, ("xprov-reference",)),
    Model("AX83H", (180,), 180, PLAIN, _P1, (_F,)),
)  # fmt: skip
