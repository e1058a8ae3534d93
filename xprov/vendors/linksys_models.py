"""Every Linksys, Cisco and Sipura SPA phone and ATA xprov knows: the profile file its factory
`Profile_Rule` asks for, the form of its User-Agent, and where each fact comes from.

The default rule is `/spa$PSN.cfg` (Sipura SPA-2000 and Linksys admin guides, Cisco SPA100
and SPA300/SPA500 admin guides): `$PSN` is the product series number as the firmware spells
it, letters in capitals (`spa504G.cfg`, `spa525G2.cfg`). Two older names are served too: the
PAP2T's `init.cfg` and the `spa.cfg` of early Sipura firmware (docs/models.md, open points).
"""

from __future__ import annotations

from typing import NamedTuple

from xprov.vendors.base import Evidence


class Model(NamedTuple):
    name: str  # $PN without its hyphen, as the inventory names it: "SPA504G", "PAP2T"
    files: tuple[str, ...]  # what its factory Profile_Rule fetches, as the firmware spells it
    user_agent: str  # its HTTP User-Agent, "{MAC}" for its MAC in capitals
    evidence: Evidence
    sources: tuple[str, ...]  # keys of SOURCES


SOURCES = {
    "sipura-spa2000": "Sipura SPA-2000 Administration Guide (2003-2005), Profile_Rule default "
    "/spa$PSN.cfg, macros $PN 'SPA-2000' and $PSN '2000'",
    "linksys-provisioning-3.01": "Linksys SPA Provisioning Guide 3.01, ch. 4 'Macro Expansion "
    "Variables' ($PN SPA2102, $PSN 2102)",
    "cisco-spa100-admin": "Cisco SPA100 Series Phone Adapters Administration Guide, Voice > "
    "Provisioning, Profile Rule default /spa$PSN.cfg (SPA112, SPA122; SPA232D)",
    "cisco-spa300-500-admin": "Cisco Small Business SPA300/SPA500 Series IP Phone "
    "Administration Guide, macro variables ($PN, $PSN)",
    "linksys-spa9000-admin": "Linksys Voice System (SPA9000) Administration Guide, appendix "
    "'Remote Provisioning Features' (client stations request /spa$PSN.cfg)",
    "wazo-cisco-spa": "wazo-platform/wazo-provd-plugins, plugins/wazo-cisco-spa and "
    "xivo-cisco-spa (PSN lists, 'G is uppercase', User-Agent examples, init.cfg for PAP2T)",
    "fusionpbx": "fusionpbx/fusionpbx, app/provision User-Agent to template map",
    "provisioner": "provisioner/Provisioner (FreePBX endpoint manager), cisco/spa and "
    "linksysata family_data.json model lists",
    "fingerprints": "SIP User-Agent fingerprints in public code (Tenable, Greenbone, traces)",
    "public-code": "single files of public code: tests, comments",
    "xprov-reference": "xprov's phone reference sheet, from wazo-provd and FusionPBX (2025)",
}

_W, _F, _R, _FP = "wazo-cisco-spa", "fusionpbx", "provisioner", "fingerprints"
_V, _P2, _P1, _I = Evidence.VENDOR, Evidence.PROJECTS, Evidence.PROJECT, Evidence.INFERRED
_SPA100, _SPA500 = "cisco-spa100-admin", "cisco-spa300-500-admin"
_X, _C, _L = "xprov-reference", "public-code", "linksys-provisioning-3.01"
_SIPURA, _9000 = "sipura-spa2000", "linksys-spa9000-admin"
_CISCO = "-7.5.5 ({MAC})(CBT141400UK)"  # Cisco 7.x phones: firmware, MAC, serial number

MODELS = (
    # Cisco SPA300 and SPA500 phones (firmware 7.x)
    Model("SPA301", ("spa301.cfg",), "Cisco/SPA301" + _CISCO, _P1, (_W, _F)),
    Model("SPA303", ("spa303.cfg",), "Cisco/SPA303" + _CISCO, _P1, (_W, _F, _FP)),
    Model("SPA501G", ("spa501G.cfg",), "Cisco/SPA501G" + _CISCO, _P1, (_W, _R)),
    Model("SPA502G", ("spa502G.cfg",), "Cisco/SPA502G" + _CISCO, _P1, (_W, _F, _R)),
    Model("SPA504G", ("spa504G.cfg",), "Cisco/SPA504G" + _CISCO, _P2, (_W, _F, _R, _FP, _X)),
    Model("SPA508G", ("spa508G.cfg",), "Cisco/SPA508G" + _CISCO, _P1, (_W,)),
    Model("SPA509G", ("spa509G.cfg",), "Cisco/SPA509G" + _CISCO, _P1, (_W, _F, _R)),
    Model("SPA512G", ("spa512G.cfg",), "Cisco/SPA512G" + _CISCO, _P1, (_W, _F)),
    Model("SPA514G", ("spa514G.cfg",), "Cisco/SPA514G" + _CISCO, _P1, (_W, _F)),
    # the SPA525G sends its serial number only: its MAC comes from the $MA.xml path
    Model("SPA525G", ("spa525G.cfg",), "Cisco/SPA525G-7.4.4 (CBT141900G7)", _P1, (_W, _R)),
    Model("SPA525G2", ("spa525G2.cfg",), "Cisco/SPA525G2-7.5.5 (CBT141900G8)", _P1, (_W, _F, _R)),
    # Linksys SPA900 phones (firmware 5.x and 6.x): "SPA-942", a serial number only
    Model("SPA901", ("spa901.cfg",), "Linksys/SPA-901-5.1.5 (88019FA42801)", _P1, (_W, _R)),
    Model("SPA921", ("spa921.cfg",), "Linksys/SPA-921-5.1.8 (88019FA42802)", _P1, (_W, _F, _R)),
    Model("SPA922", ("spa922.cfg",), "Linksys/SPA-922-6.1.5(a) (88019FA42803)", _P1, (_W, _R)),
    Model("SPA941", ("spa941.cfg",), "Linksys/SPA-941-5.1.8 (88019FA42804)", _P1, (_W, _R, _FP)),
    Model("SPA942", ("spa942.cfg",), "Linksys/SPA-942-6.1.5(a) (88019FA42805)", _P2, (_W, _FP, _X)),
    Model("SPA962", ("spa962.cfg",), "Linksys/SPA-962-6.1.5(a) (4MM00F903042)", _P1, (_W, _FP)),
    # ATAs and gateways
    Model("SPA112", ("spa112.cfg",), "Cisco/SPA112-1.4.1(SR5) (88755A000001)", _V,
          (_SPA100, _W, _C, _X)),
    Model("SPA122", ("spa122.cfg",), "Cisco/SPA122-1.4.1(SR5) (88755A000002)", _V,
          (_SPA100, _W, _FP)),
    Model("SPA232D", ("spa232D.cfg",), "Cisco/SPA232D-1.4.1(SR5) (88755A000003)", _I, (_SPA100,)),
    Model("PAP2T", ("init.cfg",), "Linksys/PAP2T-5.1.6(LS) (88019FA42806)", _P2, (_W, _R, _FP, _X)),
    Model("SPA2102", ("spa2102.cfg",), "Linksys/SPA-2102-5.2.12 (88019FA42807)", _V,
          (_L, _W, _F, _FP, _X)),
    Model("SPA3102", ("spa3102.cfg",), "Linksys/SPA-3102-5.1.10(GW) (88019FA42808)", _P2,
          (_W, _F, _FP, _X)),
    Model("SPA8000", ("spa8000.cfg",), "Linksys/SPA-8000-6.1.12 (88019FA42809)", _P1, (_W,)),
    Model("SPA8800", ("spa8800.cfg",), "Linksys/SPA-8800-6.1.7 (88019FA4280A)", _P1, (_W,)),
    Model("SPA2000", ("spa2000.cfg", "spa.cfg"), "Sipura/SPA2000-3.1.5 (88019FA4280B)", _V,
          (_SIPURA, _FP, _X)),
    Model("SPA3000", ("spa3000.cfg",), "Sipura/SPA3000-3.1.20 (88019FA4280C)", _I,
          (_SIPURA,)),
    Model("SPA1001", ("spa1001.cfg",), "Linksys/SPA-1001-3.1.19 (88019FA4280D)", _I, (_R,)),
    # the SPA9000 IP PBX: provisions its phones, and itself by the same rule
    Model("SPA9000", ("spa9000.cfg",), "Linksys/SPA-9000-6.1.5 (88019FA4280E)", _I, (_9000, _FP)),
)  # fmt: skip
