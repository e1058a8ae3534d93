"""Issue 18, phone side: the phone's own second SIP server ([failover] phone_redundancy) and
the keys a resync NOTIFY needs ([push]), in both vendors' files (docs/phone-redundancy.md).

Files are rendered by the real Provisioner from the sample config and parsed back: Yealink
`key = value` lines, the SPA XML with the standard library. Off, every file of every model is
the bytes of the code before issue 18 (the digests below)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    FILES,
    SPA504G,
    SPA942,
    USER_AGENTS,
    YEALINK_T31G,
    YEALINK_T46G,
    sample_config,
)
from tests.unit.test_provisioning import served, spa_keys, yealink_keys
from xprov import cli
from xprov.build import load
from xprov.provisioning import Provisioner, Served
from xprov.selection import ActiveSites, sip_servers
from xprov.vendors import ServerOrder, shared_requests

# -- configs ---------------------------------------------------------------------------------

REDUNDANCY = {'backup = "virginia"\n': 'backup = "virginia"\nphone_redundancy = true\n'}
REDUNDANCY_OFF = {'backup = "virginia"\n': 'backup = "virginia"\nphone_redundancy = false\n'}
PUSH = {"[logging]": "[push]\n\n[logging]"}
PUSH_DISABLED = {"[logging]": "[push]\nenabled = false\n\n[logging]"}
# virginia's SIP on another transport and expiry, so that each server's values are its own
VIRGINIA_TCP = {
    'port = 5070\ntransport = "udp"\nexpires = 600': 'port = 5070\ntransport = "tcp"\nexpires = 300'
}
AUTH_ON = {
    "[logging]": '[auth]\nmode = "digest"\nuser = "site"\npassword = "site-pw-Secret"\n\n[logging]'
}
SECOND_URL = {
    'url = "http://127.0.0.1:8080"': 'url = "http://127.0.0.1:8080"\n'
    'second_url = "http://prov-b.example.net:8080"'
}
# a third site, after the primary and the backup
DENVER = {
    "[vars]\n": '[sites.denver.sip]\nhost = "127.0.0.3"\nport = 5080\n\n'
    '[sites.denver.stun]\nhost = "127.0.0.3"\n\n'
    '[sites.denver.db]\nhost = "127.0.0.3"\ndatabase = "provisioning"\nuser = "prov"\n'
    'password = "provpass"\n\n[vars]\n'
}


def provisioner(tmp_path: Path, *replaces: dict[str, str], site: str = "chicago") -> Provisioner:
    """A Provisioner of the sample config with `replaces` applied, every service on `site`."""
    replace: dict[str, str] = {}
    for more in replaces:
        for old, new in more.items():  # two changes of one anchor: the second extends it
            replace[old] = new.replace(old, replace[old]) if old in replace else new
    tmp_path.mkdir(parents=True, exist_ok=True)
    inputs = load(sample_config(tmp_path, replace=replace, tftp_port=6969, admin_port=8081))
    return Provisioner(inputs, ActiveSites(inputs.config.sites, site))


def spa_elements(body: bytes) -> dict[str, str]:
    """An SPA profile parsed back, each element once (the firmware takes the last)."""
    keys = spa_keys(body)
    assert len(keys) == body.count(b' ua="na">'), "an element twice"
    return keys


# -- off: today's bytes ------------------------------------------------------------------------

# What the code before issue 18 (commit 754a8b7) served from the sample config with every
# service on a site: per (vendor, file kind), sha256 over "name NUL body" of every shared
# file of every model of the tables (as check-config renders them) then of every sample
# phone's files, in that order, first 16 hex digits (`digests` below, run at 754a8b7).
BEFORE = {
    ("sample", "chicago"): {
        ("linksys", "device"): "0d1ee7727e2fcd41",
        ("linksys", "model"): "23fab574badeb7ab",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "c48f4d7f6bcefaa7",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("sample", "virginia"): {
        ("linksys", "device"): "dc237c15c9bd4ee0",
        ("linksys", "model"): "23fab574badeb7ab",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "49d897e9148b2a0a",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("auth", "chicago"): {
        ("linksys", "device"): "759d4be24cbcfaf6",
        ("linksys", "model"): "5d841643611d4c5d",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "2b638595a344658d",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("auth", "virginia"): {
        ("linksys", "device"): "3e2015d29c63434a",
        ("linksys", "model"): "5d841643611d4c5d",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "5391a14395404a9a",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("second_url", "chicago"): {
        ("linksys", "device"): "0d1ee7727e2fcd41",
        ("linksys", "model"): "8bc1286c12e375ac",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "c48f4d7f6bcefaa7",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("second_url", "virginia"): {
        ("linksys", "device"): "dc237c15c9bd4ee0",
        ("linksys", "model"): "8bc1286c12e375ac",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "49d897e9148b2a0a",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    # the sites on different transports and expiries: each file takes the active site's
    ("virginia_tcp", "chicago"): {
        ("linksys", "device"): "0d1ee7727e2fcd41",
        ("linksys", "model"): "23fab574badeb7ab",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "c48f4d7f6bcefaa7",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
    ("virginia_tcp", "virginia"): {
        ("linksys", "device"): "6d0b21ca8bf4b41b",
        ("linksys", "model"): "23fab574badeb7ab",
        ("yealink", "common"): "e9d5d4ac52eb3f30",
        ("yealink", "common_boot"): "6fb1b2e3b91f57d2",
        ("yealink", "device"): "aab82a953ab8aaf7",
        ("yealink", "device_boot"): "b1de604de5ee4bec",
    },
}
VARIANTS = {"sample": {}, "auth": AUTH_ON, "second_url": SECOND_URL, "virginia_tcp": VIRGINIA_TCP}


def digests(p: Provisioner) -> dict[tuple[str, str], str]:
    hashes: dict[tuple[str, str], Any] = {}
    for request in shared_requests():
        outcome = p.render(request)
        assert isinstance(outcome, Served), outcome
        key = (request.vendor, request.kind)
        hashes.setdefault(key, hashlib.sha256()).update(
            request.name.encode() + b"\0" + outcome.body
        )
    for mac, names in FILES.items():
        for name in names:
            outcome = p.provide(name, USER_AGENTS[mac])
            assert isinstance(outcome, Served), outcome
            key = (outcome.request.vendor, outcome.request.kind)
            hashes.setdefault(key, hashlib.sha256()).update(name.encode() + b"\0" + outcome.body)
    return {key: h.hexdigest()[:16] for key, h in sorted(hashes.items())}


@pytest.mark.parametrize("switches", ["absent", "set off"])
@pytest.mark.parametrize(("variant", "site"), sorted(BEFORE))
def test_off_every_file_is_todays_bytes(
    tmp_path: Path, variant: str, site: str, switches: str
) -> None:
    """Absent, or phone_redundancy = false with a [push] table that says enabled = false:
    every shared file of every model and every sample phone's files are the bytes the code
    served before the keys existed, with [auth] off and on, second_url set, sites on other
    transports, either site active."""
    off = (REDUNDANCY_OFF, PUSH_DISABLED) if switches == "set off" else ()
    p = provisioner(tmp_path, VARIANTS[variant], *off, site=site)
    assert p.inputs.config.failover.phone_redundancy is False
    assert digests(p) == BEFORE[(variant, site)]


# -- Yealink -------------------------------------------------------------------------------


def server_keys(keys: dict[str, str], account: int, server: int) -> dict[str, str]:
    prefix = f"account.{account}.sip_server.{server}."
    return {k.removeprefix(prefix): v for k, v in keys.items() if k.startswith(prefix)}


CHICAGO_SERVER = {
    "address": "127.0.0.1",
    "port": "5060",
    "transport_type": "0",
    "expires": "600",
    "retry_counts": "3",
}
VIRGINIA_SERVER = {
    "address": "127.0.0.2",
    "port": "5070",
    "transport_type": "1",  # TCP
    "expires": "300",
    "retry_counts": "3",
}


def test_yealink_second_server_keys(tmp_path: Path) -> None:
    """On: each account names the active site as server 1 and the other as server 2, each
    with its own address, port, transport and expiry, and concurrent registration; the
    rest of the file is as with redundancy off, and so is every other Yealink file."""
    off = provisioner(tmp_path / "off", VIRGINIA_TCP)
    p = provisioner(tmp_path / "on", VIRGINIA_TCP, REDUNDANCY)
    name = f"{YEALINK_T46G}.cfg"
    before, keys = yealink_keys(served(off, name)), yealink_keys(served(p, name))
    for account in (1, 2):
        assert server_keys(keys, account, 1) == CHICAGO_SERVER
        assert server_keys(keys, account, 2) == VIRGINIA_SERVER
        assert keys[f"account.{account}.fallback.redundancy_type"] == "0"
        assert keys[f"account.{account}.fallback.timeout"] == "120"
        assert keys[f"account.{account}.reg_fail_retry_interval"] == "30"
    added = {k for k in keys if k not in before}
    assert added == {
        f"account.{a}.{key}"
        for a in (1, 2)
        for key in (
            "sip_server.1.retry_counts",
            *(f"sip_server.2.{k}" for k in VIRGINIA_SERVER),
            "fallback.redundancy_type",
            "fallback.timeout",
            "reg_fail_retry_interval",
        )
    }
    assert {k: keys[k] for k in before} == before  # nothing else changed
    assert "static.sip.nat_stun.server" in keys and not any("stun" in k for k in added)
    t31g = yealink_keys(served(p, f"{YEALINK_T31G}.cfg"))
    assert server_keys(t31g, 1, 2)["address"] == "127.0.0.2"
    for mac in (YEALINK_T46G, YEALINK_T31G):
        for other in FILES[mac]:
            if other != f"{mac}.cfg":
                assert served(p, other, USER_AGENTS[mac]) == served(off, other, USER_AGENTS[mac])


def test_yealink_server_1_follows_the_active_site(tmp_path: Path) -> None:
    """A SIP switch swaps the servers (server 1 is the site that works now) and changes
    nothing else; a switch back gives the first bytes again; a STUN switch moves STUN
    only."""
    p = provisioner(tmp_path, VIRGINIA_TCP, REDUNDANCY)
    name = f"{YEALINK_T46G}.cfg"
    first = served(p, name)
    p.active.switch({"sip": "virginia"})
    after = yealink_keys(served(p, name))
    for account in (1, 2):
        assert server_keys(after, account, 1) == VIRGINIA_SERVER
        assert server_keys(after, account, 2) == CHICAGO_SERVER
    before = yealink_keys(first)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {
        f"account.{a}.sip_server.{y}.{k}"
        for a in (1, 2)
        for y in (1, 2)
        for k in ("address", "port", "transport_type", "expires")
    }
    assert after.keys() == before.keys()
    p.active.switch({"sip": "chicago"})
    assert served(p, name) == first
    p.active.switch({"stun": "virginia"})
    stun = yealink_keys(served(p, name))
    assert {k for k in before if before[k] != stun[k]} == {
        "static.sip.nat_stun.server",
        "static.sip.nat_stun.port",
    }


# -- SPA ----------------------------------------------------------------------------------

SRV = "xprov:SRV=127.0.0.1:5060:p=0|127.0.0.2:5070:p=1"


def test_spa_static_srv_list(tmp_path: Path) -> None:
    """On: every line's Proxy is the static SRV list, primary p=0 and backup p=1, read as
    SRV without a prefix, with the fallback interval and method; the registration retry
    interval is set once; transport and expiry are the primary's. Nothing else changes,
    in no other file."""
    off = provisioner(tmp_path / "off", VIRGINIA_TCP)
    p = provisioner(tmp_path / "on", VIRGINIA_TCP, REDUNDANCY)
    for mac, model_file, lines in ((SPA504G, "spa504G.cfg", (1, 2)), (SPA942, "spa942.cfg", (1,))):
        assert served(p, model_file) == served(off, model_file)
        before = spa_elements(served(off, f"{mac}.xml"))
        keys = spa_elements(served(p, f"{mac}.xml"))
        expected = {"Reg_Retry_Intvl": "30"}
        for n in lines:
            expected |= {
                f"Proxy_{n}_": SRV,
                f"Use_DNS_SRV_{n}_": "Yes",
                f"DNS_SRV_Auto_Prefix_{n}_": "No",
                f"Proxy_Fallback_Intvl_{n}_": "120",
                f"Proxy_Redundancy_Method_{n}_": "Normal",
            }
            assert (keys[f"SIP_Transport_{n}_"], keys[f"Register_Expires_{n}_"]) == ("UDP", "600")
        assert {k: v for k, v in keys.items() if before.get(k) != v} == expected
        assert keys.keys() >= before.keys()
        assert keys["STUN_Server"] == "127.0.0.1:3478"  # one STUN server: the active site's


def test_spa_file_does_not_change_across_a_sip_switch(tmp_path: Path) -> None:
    """An SPA reboots on any changed value: with the second server on, a SIP switch changes
    not a byte of its file (the phone moves to p=1 by itself); a STUN switch still changes
    STUN_Server, and only it. Off, the same SIP switch does change the file."""
    p = provisioner(tmp_path / "on", VIRGINIA_TCP, REDUNDANCY, PUSH)
    off = provisioner(tmp_path / "off", VIRGINIA_TCP)
    names = [f"{SPA504G}.xml", f"{SPA942}.xml", "spa504G.cfg", "spa942.cfg"]
    first = {name: served(p, name) for name in names}
    before_off = served(off, f"{SPA504G}.xml")
    for active in (p.active, off.active):
        active.switch({"sip": "virginia"})
    assert {name: served(p, name) for name in names} == first
    assert served(off, f"{SPA504G}.xml") != before_off  # the contrast: off, Proxy moves
    p.active.switch({"stun": "virginia"})
    before, after = spa_elements(first[f"{SPA504G}.xml"]), spa_elements(served(p, f"{SPA504G}.xml"))
    assert {k for k in before if before[k] != after[k]} == {"STUN_Server"}
    assert after["STUN_Server"] == "127.0.0.2:3479"


# -- every site, every order ------------------------------------------------------------------


def test_sip_servers_order_per_vendor(tmp_path: Path) -> None:
    """CONFIGURED: primary, backup, then the other sites by name, whatever is active;
    ACTIVE_FIRST: the active SIP site, then the others in that order. Yealink writes the
    first two (its two servers), an SPA lists every site."""
    p = provisioner(tmp_path, REDUNDANCY, DENVER, site="denver")
    config, selection = p.inputs.config, p.active.current
    sites = lambda order: [s["site"] for s in sip_servers(config, selection, order)]  # noqa: E731
    assert sites(ServerOrder.CONFIGURED) == ["chicago", "virginia", "denver"]
    assert sites(ServerOrder.ACTIVE_FIRST) == ["denver", "chicago", "virginia"]
    assert sip_servers(config, selection, ServerOrder.CONFIGURED)[0] == {
        "host": "127.0.0.1",
        "port": 5060,
        "transport": "udp",
        "expires": 600,
        "tls_server_name": None,
        "tls_ca": None,
        "site": "chicago",
    }
    keys = yealink_keys(served(p, f"{YEALINK_T31G}.cfg"))
    assert (keys["account.1.sip_server.1.address"], keys["account.1.sip_server.2.address"]) == (
        "127.0.0.3",
        "127.0.0.1",
    )
    assert not any(".sip_server.3." in k for k in keys)
    proxy = spa_elements(served(p, f"{SPA942}.xml"))["Proxy_1_"]
    assert proxy == SRV + "|127.0.0.3:5080:p=2"
    p.active.switch({"sip": "virginia"})
    assert spa_elements(served(p, f"{SPA942}.xml"))["Proxy_1_"] == proxy


def test_on_the_files_are_byte_stable(tmp_path: Path) -> None:
    """Two renders from two fresh loads (new generations, empty caches), redundancy and
    push on, either site active: the same bytes for every file."""
    for site in ("chicago", "virginia"):
        one = provisioner(tmp_path / f"{site}1", REDUNDANCY, PUSH, site=site)
        two = provisioner(tmp_path / f"{site}2", REDUNDANCY, PUSH, site=site)
        assert one.inputs.config_generation != two.inputs.config_generation
        assert digests(one) == digests(two)


# -- push -----------------------------------------------------------------------------------


def test_push_keys(tmp_path: Path) -> None:
    """[push] on: every Yealink common file says a check-sync does not reboot; each SPA
    accepts a resync NOTIFY and challenges it per line. Nothing else changes, and no
    second-server key appears (each switch is on its own)."""
    off = provisioner(tmp_path / "off")
    p = provisioner(tmp_path / "on", PUSH)
    for request in shared_requests():
        body, before = p.render(request), off.render(request)
        assert isinstance(body, Served) and isinstance(before, Served)
        if request.kind == "common":
            assert body.body == before.body + b"sip.notify_reboot_enable = 0\n", request.name
        else:
            assert body.body == before.body, request.name
    for mac in (YEALINK_T46G, YEALINK_T31G):
        for name in FILES[mac]:
            if name.endswith(".boot") or name == f"{mac}.cfg":
                assert served(p, name, USER_AGENTS[mac]) == served(off, name, USER_AGENTS[mac])
    assert yealink_keys(served(p, "y000000000028.cfg"))["sip.notify_reboot_enable"] == "0"
    for mac, lines in ((SPA504G, (1, 2)), (SPA942, (1,))):
        before = spa_elements(served(off, f"{mac}.xml"))
        keys = spa_elements(served(p, f"{mac}.xml"))
        expected = {"Resync_From_SIP": "Yes"} | {f"Auth_Resync-Reboot_{n}_": "Yes" for n in lines}
        assert {k: v for k, v in keys.items() if k not in before} == expected
        assert {k: keys[k] for k in before} == before
    disabled = provisioner(tmp_path / "disabled", PUSH_DISABLED)
    assert served(disabled, "y000000000028.cfg") == served(off, "y000000000028.cfg")
    assert served(disabled, f"{SPA504G}.xml") == served(off, f"{SPA504G}.xml")


def test_check_config_passes_with_redundancy_and_push(tmp_path: Path, capsys) -> None:
    """check-config renders every shared file of every model with each site active."""
    path = sample_config(tmp_path, replace={**REDUNDANCY, **PUSH})
    assert cli.main(["check-config", "-c", str(path)]) == 0
    assert "OK (4 phones" in capsys.readouterr().out
