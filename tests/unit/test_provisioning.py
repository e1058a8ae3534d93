"""The provisioning core: files parsed back key by key, byte stability, escaping, cache."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.helpers import (
    FILES,
    SPA504G,
    SPA942,
    USER_AGENTS,
    YEALINK_T31G,
    YEALINK_T46G,
    copy_templates,
    inventory_with_accounts,
    sample_config,
)
from xprov.build import BuildError, load
from xprov.inventory import Inventory
from xprov.provisioning import Failed, NotFound, Provisioner, Served
from xprov.render import COMPILED, TemplateProblems, Templates
from xprov.selection import ActiveSites
from xprov.vendors import all_templates


def yealink_keys(body: bytes) -> dict[str, str]:
    lines = body.decode().splitlines()
    assert lines[0] == "#!version:1.0.0.1"
    keys = {}
    for line in lines[1:]:
        if line.startswith("#") or not line.strip():
            continue
        key, sep, value = line.partition(" = ")
        assert sep, line
        assert key not in keys, f"duplicate {key}"
        keys[key] = value
    return keys


def spa_keys(body: bytes) -> dict[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "flat-profile"
    for element in root:
        assert element.get("ua") == "na"
    return {element.tag: element.text or "" for element in root}


def served(p: Provisioner, name: str, user_agent: str | None = None) -> bytes:
    outcome = p.provide(name, user_agent)
    assert isinstance(outcome, Served), outcome
    return outcome.body


def test_yealink_device_file(provisioner: Provisioner) -> None:
    keys = yealink_keys(served(provisioner, f"{YEALINK_T46G}.cfg", USER_AGENTS[YEALINK_T46G]))
    assert keys["account.1.enable"] == "1"
    assert keys["account.1.user_name"] == "1001"
    assert keys["account.1.auth_name"] == "1001"
    assert keys["account.1.password"] == "yk-1001-Secret"
    assert keys["account.1.display_name"] == "Alice Archer"
    assert keys["account.2.auth_name"] == "auth1002"
    assert keys["account.2.label"] == "Desk"
    for n in ("1", "2"):
        assert keys[f"account.{n}.sip_server.1.address"] == "127.0.0.1"
        assert keys[f"account.{n}.sip_server.1.port"] == "5060"
        assert keys[f"account.{n}.sip_server.1.transport_type"] == "0"
        assert keys[f"account.{n}.sip_server.1.expires"] == "600"
        assert keys[f"account.{n}.nat.nat_traversal"] == "1"
    assert keys["static.sip.nat_stun.enable"] == "1"
    assert keys["static.sip.nat_stun.server"] == "127.0.0.1"
    assert keys["static.sip.nat_stun.port"] == "3478"
    assert keys["static.auto_provision.repeat.enable"] == "1"
    assert keys["static.auto_provision.repeat.minutes"] == "1"
    assert "account.3.enable" not in keys


def test_yealink_boot_and_common_files(provisioner: Provisioner) -> None:
    boot = served(provisioner, f"{YEALINK_T46G}.boot").decode().splitlines()
    assert boot[0] == "#!version:1.0.0.1"
    includes = [line for line in boot if line.startswith("include:config")]
    assert includes == [
        'include:config "y000000000028.cfg"',
        f'include:config "{YEALINK_T46G}.cfg"',
    ]
    assert "overwrite_mode = 1" in boot
    common_boot = served(provisioner, "y000000000000.boot").decode().splitlines()
    assert common_boot[0] == "#!version:1.0.0.1"
    assert 'include:config "y000000000000.cfg"' in common_boot
    common = yealink_keys(served(provisioner, "y000000000028.cfg"))
    assert common["static.auto_provision.repeat.minutes"] == "1"
    assert common["static.auto_provision.server.url"] == "http://127.0.0.1:8080/"
    assert common["local_time.ntp_server1"] == "pool.ntp.org"


def test_spa_device_file(provisioner: Provisioner) -> None:
    keys = spa_keys(served(provisioner, f"{SPA504G}.xml"))
    assert keys["Password_1_"] == "spa&<2001>\"'Secret"
    assert keys["Display_Name_1_"] == "Carol & Co <Sales>"
    assert keys["User_ID_1_"] == "2001"
    assert keys["Proxy_1_"] == "127.0.0.1:5060"
    assert keys["Proxy_2_"] == "127.0.0.1:5060"
    assert keys["SIP_Transport_1_"] == "UDP"
    assert keys["Register_Expires_1_"] == "600"
    assert keys["Use_Auth_ID_1_"] == "No"
    assert keys["STUN_Enable"] == "Yes"
    assert keys["STUN_Server"] == "127.0.0.1:3478"
    assert keys["Resync_Periodic"] == "60"
    assert "Line_Enable_3_" not in keys


def test_spa_model_file_points_at_the_device_file(provisioner: Provisioner) -> None:
    keys = spa_keys(served(provisioner, "/spa504G.cfg", USER_AGENTS[SPA504G]))
    assert keys["Profile_Rule"] == "http://127.0.0.1:8080/spa504G.cfg"
    assert keys["Profile_Rule_B"] == "http://127.0.0.1:8080/$MA.xml"
    assert keys["Resync_Periodic"] == "60"
    assert int(keys["Resync_Error_Retry_Delay"]) <= 60
    assert keys["Resync_Fails_On_FNF"] == "Yes"
    assert spa_keys(served(provisioner, "/init.cfg"))["Profile_Rule"].endswith("/init.cfg")


@pytest.mark.parametrize("mac", sorted(FILES))
def test_every_sample_file_is_served_and_ends_with_a_newline(provisioner, mac) -> None:
    for name in FILES[mac]:
        body = served(provisioner, name, USER_AGENTS[mac])
        assert body.endswith(b"\n") and not body.endswith(b"\n\n"), name


def test_output_is_byte_stable(provisioner: Provisioner, config_path: Path) -> None:
    before = {name: served(provisioner, name) for names in FILES.values() for name in names}
    # Render again from scratch (new generations, empty cache) with an unrelated change:
    # another phone's password.
    inputs = load(config_path)  # new generations
    phones = dict(inputs.inventory.phones)
    other = phones[SPA942]
    phones[SPA942] = other._replace(lines=(other.lines[0]._replace(password="changed-Secret"),))
    inventory = Inventory.of(phones.values(), inputs.inventory.generation + 1, "test")
    again = Provisioner(dataclasses.replace(inputs, inventory=inventory), provisioner.active)
    for name, body in before.items():
        if SPA942 not in name:
            assert served(again, name) == body, name
    assert served(again, f"{SPA942}.xml") != before[f"{SPA942}.xml"]


def test_a_switch_changes_only_the_switched_service(provisioner: Provisioner) -> None:
    before = yealink_keys(served(provisioner, f"{YEALINK_T46G}.cfg"))
    selection = provisioner.active.switch({"sip": "virginia"})
    outcome = provisioner.provide(f"{YEALINK_T46G}.cfg")
    assert isinstance(outcome, Served) and outcome.selection_generation == selection.generation
    after = yealink_keys(outcome.body)
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {
        "account.1.sip_server.1.address",
        "account.1.sip_server.1.port",
        "account.2.sip_server.1.address",
        "account.2.sip_server.1.port",
    }
    assert after["account.1.sip_server.1.address"] == "127.0.0.2"
    assert after["account.1.sip_server.1.port"] == "5070"
    assert after["static.sip.nat_stun.server"] == "127.0.0.1"  # stun stayed at chicago


def test_switch_is_atomic_and_validated(provisioner: Provisioner) -> None:
    active = provisioner.active
    first = active.current
    both = active.switch({"sip": "virginia", "stun": "virginia"})
    assert both.generation == first.generation + 1
    assert active.switch({"sip": "virginia"}) is both  # nothing changed: same generation
    with pytest.raises(ValueError, match="unknown site"):
        active.switch({"sip": "denver"})
    with pytest.raises(ValueError, match="unknown service"):
        active.switch({"ntp": "virginia"})
    assert active.current is both


def test_second_request_renders_nothing(provisioner: Provisioner) -> None:
    name = f"{YEALINK_T46G}.cfg"
    first = served(provisioner, name)
    renders = provisioner.renders
    assert served(provisioner, name) is first
    assert provisioner.renders == renders
    provisioner.active.switch({"stun": "virginia"})
    assert served(provisioner, name) != first
    assert provisioner.renders == renders + 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ffffffffffff.cfg", "unknown device"),
        ("ffffffffffff.xml", "unknown device"),
        ("ffffffffffff.boot", "unknown device"),
        (f"{SPA504G}.cfg", "vendor mismatch"),  # an SPA asking for a Yealink file
        (f"{YEALINK_T46G}.xml", "vendor mismatch"),
        (f"{YEALINK_T46G}-local.cfg", "unknown file"),
        ("index.html", "unknown file"),
    ],
)
def test_not_found(provisioner: Provisioner, name: str, reason: str) -> None:
    outcome = provisioner.provide(name, USER_AGENTS[YEALINK_T46G])
    assert isinstance(outcome, NotFound) and outcome.reason == reason


def test_user_agent_hint_identifies_the_phone_but_not_the_bytes(provisioner) -> None:
    plain = provisioner.provide("y000000000123.cfg")
    hinted = provisioner.provide("y000000000123.cfg", USER_AGENTS[YEALINK_T31G])
    assert isinstance(plain, Served) and isinstance(hinted, Served)
    assert plain.mac is None and hinted.mac == YEALINK_T31G
    assert hinted.body == plain.body


def broken(tmp_path: Path, template: str, text: str) -> Provisioner:
    templates = copy_templates(tmp_path)
    (templates / template).write_text(text)
    inputs = load(sample_config(tmp_path, templates=templates))
    return Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))


def test_undefined_variable_fails_with_template_line_and_key(tmp_path: Path) -> None:
    p = broken(
        tmp_path,
        "yealink/device.cfg",
        "#!version:1.0.0.1\naccount.1.enable = 1\nx = {{ sip.nonexistent }}\n",
    )
    outcome = p.provide(f"{YEALINK_T46G}.cfg")
    assert isinstance(outcome, Failed)
    assert outcome.error.template == "yealink/device.cfg"
    assert outcome.error.line == 3
    assert "nonexistent" in outcome.error.reason
    assert isinstance(p.provide(f"{SPA504G}.xml"), Served)  # other templates unaffected


def test_control_character_in_output_fails(tmp_path: Path) -> None:
    p = broken(tmp_path, "yealink/device.cfg", '#!version:1.0.0.1\nx = {{ "a\\nb" }}\n')
    outcome = p.provide(f"{YEALINK_T46G}.cfg")
    assert isinstance(outcome, Failed) and "control character" in outcome.error.reason


def test_sandbox_blocks_unsafe_attributes(tmp_path: Path) -> None:
    p = broken(
        tmp_path,
        "yealink/device.cfg",
        "#!version:1.0.0.1\n{{ phone.__class__.__init__.__globals__ }}\n",
    )
    outcome = p.provide(f"{YEALINK_T46G}.cfg")
    assert isinstance(outcome, Failed)


def test_render_error_message_holds_no_secret(tmp_path: Path) -> None:
    p = broken(
        tmp_path,
        "yealink/device.cfg",
        "#!version:1.0.0.1\n{{ lines[0].password | int }}{{ lines[0].password.x }}\n",
    )
    outcome = p.provide(f"{YEALINK_T46G}.cfg")
    assert isinstance(outcome, Failed)
    assert "yk-1001-Secret" not in str(outcome.error)


def test_device_file_names(provisioner: Provisioner) -> None:
    assert provisioner.device_file(YEALINK_T46G) == f"{YEALINK_T46G}.cfg"
    assert provisioner.device_file(SPA942) == f"{SPA942}.xml"
    assert provisioner.device_file("ffffffffffff") is None


SECRET_CONFIG = {
    "[logging]": '[auth]\nmode = "digest"\nuser = "site"\npassword = "auth-shared-Secret"\n\n'
    "[logging]",
    'yealink_time_zone = "-6"': 'yealink_time_zone = "-6"\nadmin_password = "vars-admin-Secret"\n'
    'voicemail_pin = "vars-pin-Secret"\napi_token = "vars-token-Secret"',
}


def shared_names() -> list[tuple[str, str | None]]:
    """Every shared file a phone of any known model may ask for, with a User-Agent."""
    from xprov.vendors import yealink

    names: list[tuple[str, str | None]] = [("y000000000000.boot", None), ("spa.cfg", None)]
    names += [("init.cfg", None), ("spa504G.cfg", USER_AGENTS[SPA504G])]
    names += [(f"y{code:012d}.cfg", None) for code in sorted(set(yealink.MODEL_CODES.values()))]
    names += [("y000000000028.cfg", USER_AGENTS[YEALINK_T46G])]  # the UA names a known phone
    names += [(f"spa{psn}.cfg", None) for psn in ("942", "504G", "525G", "303", "122")]
    return names


def test_no_secret_reaches_a_shared_file(tmp_path: Path) -> None:
    """Shared files go to anyone: no SIP or HTTP password of the inventory, no password or
    token of the config, no secret-named [vars] entry ever appears in one."""
    from tests.helpers import SAMPLE_PASSWORDS

    config = sample_config(tmp_path, replace=SECRET_CONFIG)
    inputs = load(config)
    provisioner = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    secrets = [*SAMPLE_PASSWORDS, *inputs.config.secrets(), *inputs.inventory.secrets()]
    assert {"vars-admin-Secret", "vars-pin-Secret", "vars-token-Secret"} <= set(secrets)
    for name, agent in shared_names():
        body = served(provisioner, name, agent)
        leaked = [s for s in secrets if s.encode() in body]
        assert not leaked, (name, leaked)
    device = served(provisioner, f"{YEALINK_T46G}.cfg")
    assert b"yk-1001-Secret" in device  # the per-device file is where secrets belong


def test_a_shared_template_cannot_reach_a_secret(tmp_path: Path) -> None:
    """A shared template that asks for a secret [vars] entry fails instead of handing it to
    anyone: refused when the config is built (check-config, reload), and, should such a
    template serve all the same, a 500 at render; a per-device template may use it."""
    templates = copy_templates(tmp_path)
    common = templates / "yealink" / "common.cfg"
    added_line = len(common.read_text().splitlines()) + 1
    common.write_text(
        common.read_text() + "static.security.user_password = {{ vars.admin_password }}\n"
    )
    device = templates / "yealink" / "device.cfg"
    device.write_text(
        device.read_text() + "static.security.user_password = {{ vars.admin_password }}\n"
    )
    config = sample_config(tmp_path, templates=templates, replace=SECRET_CONFIG)
    with pytest.raises(BuildError) as refused:
        load(config)
    assert f"yealink/common.cfg line {added_line}" in str(refused.value)
    assert "admin_password" in str(refused.value) and "vars-admin-Secret" not in str(refused.value)
    (tmp_path / "good").mkdir()
    inputs = load(sample_config(tmp_path / "good", replace=SECRET_CONFIG))
    broken = Templates([templates], all_templates(), inputs.templates.generation + 1)
    inputs = dataclasses.replace(inputs, templates=broken)
    provisioner = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    outcome = provisioner.provide("y000000000028.cfg")
    assert isinstance(outcome, Failed) and "admin_password" in outcome.error.reason
    assert "vars-admin-Secret" not in str(outcome.error)
    assert b"vars-admin-Secret" in served(provisioner, f"{YEALINK_T46G}.cfg")


def test_a_shared_template_failing_for_one_model_or_site_is_refused(tmp_path: Path) -> None:
    """Break-it pass: a typo in a model's branch of a shared template passed check-config
    and answered 500 to every phone of that model. Every shared file of every model of the
    tables is rendered with each site active before a config serves."""
    templates = copy_templates(tmp_path)
    common = templates / "linksys" / "model.xml"
    common.write_text(
        common.read_text().replace(
            "<flat-profile>",
            '<flat-profile>{% if model == "SPA525G2" and sip.site == "virginia" %}'
            "{{ vars.dect_base_nmae.x }}{% endif %}",
        )
    )
    with pytest.raises(BuildError) as refused:
        load(sample_config(tmp_path, templates=templates))
    (problem,) = refused.value.problems
    assert problem.startswith("linksys/model.xml line ")
    assert "dect_base_nmae" in problem
    assert "(rendering spa525G2.cfg for a SPA525G2, every service on virginia)" in problem


def test_with_auth_phones_keep_their_credentials(tmp_path: Path) -> None:
    """With [auth] on, $MA.xml needs credentials and an SPA keeps them only in its resync
    rule. The shared model file names them by macro ($O, $P), never by value, and falls
    back to TFTP (trusted networks) while they are unset; a phone's own file sets them:
    its own account, else the shared user's. Yealink files carry them as keys."""
    inventory = inventory_with_accounts(
        {"SPA504G": ("spa504g", "http-SPA-Secret"), "T46G": ("t46g", "http-T46G-Secret")}
    )
    auth = '[auth]\nmode = "digest"\nuser = "site"\npassword = "site-pw-Secret"\n\n[logging]'
    inputs = load(sample_config(tmp_path, inventory=inventory, replace={"[logging]": auth}))
    p = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    model = spa_keys(served(p, "spa504G.cfg"))
    assert model["Profile_Rule_B"] == (
        '("$P" eq "")? /$MA.xml | [--uid "$O" --pwd "$P"]http://127.0.0.1:8080/$MA.xml'
    )
    own = spa_keys(served(p, f"{SPA504G}.xml"))
    assert (own["GPP_O"], own["GPP_P"]) == ("spa504g", "http-SPA-Secret")
    assert "Profile_Rule_B" not in own  # the model file's rule, the same for every phone
    shared = spa_keys(served(p, f"{SPA942}.xml"))
    assert (shared["GPP_O"], shared["GPP_P"]) == ("site", "site-pw-Secret")
    yealink = yealink_keys(served(p, f"{YEALINK_T46G}.cfg"))
    assert yealink["static.auto_provision.server.username"] == "t46g"
    assert yealink["static.auto_provision.server.password"] == "http-T46G-Secret"
    t31g = yealink_keys(served(p, f"{YEALINK_T31G}.cfg"))
    assert t31g["static.auto_provision.server.username"] == "site"


def test_without_auth_files_carry_no_provisioning_credentials(provisioner) -> None:
    assert spa_keys(served(provisioner, "spa504G.cfg"))["Profile_Rule_B"] == (
        "http://127.0.0.1:8080/$MA.xml"
    )
    for mac, name in ((SPA504G, "xml"), (YEALINK_T46G, "cfg")):
        body = served(provisioner, f"{mac}.{name}")
        assert b"GPP_P" not in body and b"auto_provision.server.username" not in body


def test_render_refuses_another_phones_file(config_path: Path, capsys) -> None:
    from xprov import cli

    assert cli.main(["render", "-c", str(config_path), YEALINK_T46G, f"{SPA504G}.xml"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "another phone's file" in captured.err
    assert cli.main(["render", "-c", str(config_path), SPA504G, f"{SPA504G}.xml"]) == 0


def test_a_reload_compiles_a_changed_template_anew_and_keeps_one_entry_per_file(
    tmp_path: Path,
) -> None:
    template = tmp_path / "a.cfg"
    template.write_text("one {{ x }}\n")
    before = len(COMPILED)
    assert Templates([tmp_path], ["a.cfg"], 1).render("a.cfg", {"x": 1}) == b"one 1\n"
    template.write_text("two {{ x }}\n")
    assert Templates([tmp_path], ["a.cfg"], 2).render("a.cfg", {"x": 1}) == b"two 1\n"
    template.write_text("{{ broken\n")
    with pytest.raises(TemplateProblems, match=r"a\.cfg:1"):
        Templates([tmp_path], ["a.cfg"], 3)
    assert len(COMPILED) == before + 1


# -- [provisioning] second_url (issue 16): the other data centre as the SPA's second source

# spa504G.cfg as the sample config rendered it before second_url existed (`xprov render -c
# etc/xprov.toml 0002fdff2103 spa504G.cfg`): with the key unset, not a byte may change.
SPA504G_MODEL_FILE = b"""<flat-profile>
  <!-- xprov per-model profile: poll often, then fetch this device's own file -->
  <Provision_Enable ua="na">Yes</Provision_Enable>
  <Resync_On_Reset ua="na">Yes</Resync_On_Reset>
  <Resync_Periodic ua="na">60</Resync_Periodic>
  <Resync_Error_Retry_Delay ua="na">30</Resync_Error_Retry_Delay>
  <Resync_Random_Delay ua="na">1</Resync_Random_Delay>
  <Resync_Fails_On_FNF ua="na">Yes</Resync_Fails_On_FNF>
  <Profile_Rule ua="na">http://127.0.0.1:8080/spa504G.cfg</Profile_Rule>
  <Profile_Rule_B ua="na">http://127.0.0.1:8080/$MA.xml</Profile_Rule_B>
</flat-profile>
"""
# ...and its Profile_Rule_B with [auth] on (the rest of the file is the same).
AUTH_RULE_B = (
    b'  <Profile_Rule_B ua="na">(&#34;$P&#34; eq &#34;&#34;)? /$MA.xml | [--uid &#34;$O&#34; '
    b"--pwd &#34;$P&#34;]http://127.0.0.1:8080/$MA.xml</Profile_Rule_B>\n"
)
SECOND = "http://prov-b.example.net:8080"
AUTH_ON = '[auth]\nmode = "digest"\nuser = "site"\npassword = "site-pw-Secret"\n\n[logging]'


def with_second(tmp_path: Path, extra: dict[str, str] | None = None) -> Provisioner:
    url = 'url = "http://127.0.0.1:8080"'
    replace = {url: f'{url}\nsecond_url = "{SECOND}/"', **(extra or {})}
    inputs = load(sample_config(tmp_path, replace=replace))
    assert inputs.config.provisioning.second_url == SECOND  # the slash trimmed, as url's
    return Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))


def every_file(p: Provisioner) -> dict[str, bytes]:
    return {
        name: served(p, name, USER_AGENTS[mac]) for mac, names in FILES.items() for name in names
    }


def test_without_second_url_the_files_are_as_before(provisioner, tmp_path: Path) -> None:
    """Off by default, and then byte-identical to the files before the key existed, with
    [auth] off and on."""
    assert provisioner.inputs.config.provisioning.second_url is None
    assert served(provisioner, "spa504G.cfg") == SPA504G_MODEL_FILE
    for body in every_file(provisioner).values():
        assert b"PRVST" not in body and b"prov-b" not in body
    inputs = load(sample_config(tmp_path, replace={"[logging]": AUTH_ON}))
    auth = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    before = SPA504G_MODEL_FILE.decode().splitlines(keepends=True)
    before[-2] = AUTH_RULE_B.decode()
    assert served(auth, "spa504G.cfg") == "".join(before).encode()


def test_second_url_is_the_spa_source_on_a_retry(provisioner, tmp_path: Path) -> None:
    """Set: both SPA rules fetch from the other data centre when $PRVST is 2 (the retry
    after a failed resync) and from url otherwise; nothing else changes, in no file of
    either vendor (Yealink has no second source), and the bytes are stable."""
    before, p = every_file(provisioner), with_second(tmp_path)
    after = every_file(p)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"spa504G.cfg", "spa942.cfg"}  # the SPA model files only
    keys = spa_keys(after["spa504G.cfg"])
    retry = '("$(PRVST)" eq "2")? '
    assert keys["Profile_Rule"] == (
        f"{retry}{SECOND}/spa504G.cfg | http://127.0.0.1:8080/spa504G.cfg"
    )
    assert keys["Profile_Rule_B"] == f"{retry}{SECOND}/$MA.xml | http://127.0.0.1:8080/$MA.xml"
    old = spa_keys(before["spa504G.cfg"])
    assert {k: v for k, v in keys.items() if not k.startswith("Profile_Rule")} == {
        k: v for k, v in old.items() if not k.startswith("Profile_Rule")
    }
    assert every_file(with_second(tmp_path)) == after  # stable: a fresh render, same bytes


def test_second_url_with_auth_keeps_the_factory_fallback_and_credentials(tmp_path) -> None:
    """With [auth] on, the TFTP fallback of a factory phone comes first, then the second
    source on a retry with the phone's credentials by macro, then url."""
    p = with_second(tmp_path, {"[logging]": AUTH_ON})
    rule = spa_keys(served(p, "spa942.cfg"))["Profile_Rule_B"]
    login = '[--uid "$O" --pwd "$P"]'
    assert rule == (
        f'("$P" eq "")? /$MA.xml | ("$(PRVST)" eq "2")? {login}{SECOND}/$MA.xml | '
        f"{login}http://127.0.0.1:8080/$MA.xml"
    )
