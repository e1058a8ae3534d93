"""Config validation: each class of error is named with its key path; all are listed."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from tests.helpers import inventory_with_accounts, sample_config
from xprov import cli, config


@pytest.fixture
def valid(config_path: Path) -> dict:
    with config_path.open("rb") as f:
        return tomllib.load(f)


def problems(data: dict, path: Path) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(data, path)
    return info.value.problems


def test_the_shipped_config_is_valid() -> None:
    cfg = config.load(Path(__file__).parents[2] / "etc" / "xprov.toml")
    assert cfg.failover.primary == "chicago" and cfg.failover.backup == "virginia"
    chicago, virginia = cfg.sites["chicago"], cfg.sites["virginia"]
    for service in config.SERVICES:
        assert chicago.service(service) != virginia.service(service), service
    assert [str(x) for x in cfg.http.listen] == ["127.0.0.1:8080"]


def test_valid_sample_parses(valid: dict, config_path: Path) -> None:
    cfg = config.parse(valid, config_path)
    assert cfg.sites["chicago"].sip.port == 5060
    assert cfg.sites["virginia"].stun.port == 3479  # type: ignore[union-attr]
    assert cfg.provisioning.url == "http://127.0.0.1:8080"
    with pytest.raises(AttributeError):
        cfg.http = None  # type: ignore[misc]  # frozen


def test_db_password_is_not_in_repr(valid: dict, config_path: Path) -> None:
    cfg = config.parse(valid, config_path)
    assert "provpass" not in repr(cfg)
    assert cfg.secrets() == ["provpass", "provpass", "dev-admin-token-change-me"]
    assert "dev-admin-token-change-me" not in repr(cfg)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["http"].update(lisen=["x"]), "http.lisen: unknown key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (
            lambda d: d["sites"]["chicago"]["sip"].update(port="5060"),
            "sites.chicago.sip.port: expected an integer, got a string",
        ),
        (
            lambda d: d["sites"]["chicago"]["sip"].update(port=True),
            "sites.chicago.sip.port: expected an integer, got true or false",
        ),
        (
            lambda d: d["sites"]["chicago"]["sip"].update(port=70000),
            "sites.chicago.sip.port: 70000 is out of range 1..65535",
        ),
        (
            lambda d: d["http"].update(listen=["127.0.0.1:0"]),
            "http.listen[0]: bad port in '127.0.0.1:0' (1..65535)",
        ),
        (
            lambda d: d["http"].update(listen=["localhost:8080"]),
            "http.listen[0]: 'localhost:8080' is not ADDRESS:PORT with an IP address",
        ),
        (lambda d: d["http"].update(listen=[]), "http.listen: needs at least one address"),
        (
            lambda d: d["failover"].update(backup="denver"),
            "failover.backup: site 'denver' is not defined under [sites]",
        ),
        (
            lambda d: d["failover"].update(backup="chicago"),
            "failover.backup: must be a different site from primary",
        ),
        (lambda d: d["sites"]["chicago"]["sip"].pop("host"), "sites.chicago.sip.host: missing"),
        (lambda d: d["sites"]["chicago"].pop("sip"), "sites.chicago.sip: missing"),
        (
            lambda d: d["sites"]["chicago"]["sip"].update(transport="sctp"),
            "sites.chicago.sip.transport: 'sctp' is not one of udp, tcp, tls",
        ),
        (
            lambda d: d["sites"]["virginia"].pop("stun"),
            "sites: stun is set for chicago but missing for virginia",
        ),
        (
            lambda d: d["templates"].update(dirs=["/nonexistent/templates"]),
            "templates.dirs[0]: '/nonexistent/templates' is not a readable directory",
        ),
        (lambda d: d["templates"].update(dirs=[]), "templates.dirs: needs at least one directory"),
        (
            lambda d: d["inventory"].update(path="/nonexistent.toml"),
            "inventory.path: '/nonexistent.toml' is not a readable file",
        ),
        (
            lambda d: d["inventory"].update(source="ldap"),
            "inventory.source: 'ldap' is not one of file",
        ),
        (
            lambda d: d["provisioning"].update(url="ftp://x"),
            "provisioning.url: 'ftp://x' is not an http:// or https:// URL with a host",
        ),
        (
            lambda d: d["provisioning"].update(poll_seconds=5),
            "provisioning.poll_seconds: 5 is out of range 60..86400",
        ),
        (
            lambda d: d["sites"]["chicago"]["sip"].update(host="a\nb"),
            "sites.chicago.sip.host: contains a control character",
        ),
        (
            lambda d: d["vars"].update(bad=[1, 2]),
            "vars.bad: expected a string or an integer or a number or true or false, got a list",
        ),
        (
            lambda d: d["logging"].update(format="xml"),
            "logging.format: 'xml' is not one of json, console",
        ),
        (lambda d: d.pop("sites"), "sites: missing"),
        (
            lambda d: d["provisioning"].update(url="http://prov:pw@127.0.0.1:8080"),
            "provisioning.url: must not hold credentials: it is written into shared files",
        ),
        # second_url (issue 16) is checked as url is: it is written into the same files
        (
            lambda d: d["provisioning"].update(second_url="ftp://x"),
            "provisioning.second_url: 'ftp://x' is not an http:// or https:// URL with a host",
        ),
        (
            lambda d: d["provisioning"].update(second_url="http://prov-b/?x=1"),
            "provisioning.second_url: must not have a query or fragment",
        ),
        (
            lambda d: d["provisioning"].update(second_url="http://prov:pw@prov-b"),
            "provisioning.second_url: must not hold credentials: it is written into shared",
        ),
        (
            lambda d: d["provisioning"].update(second_url="http://127.0.0.1:8080/"),
            "provisioning.second_url: must name the other data centre, not url again",
        ),
        (
            lambda d: d["provisioning"].update(second_url=""),
            "provisioning.second_url: must not be empty (leave it out for none)",
        ),
        (
            lambda d: d["provisioning"].update(second_url=8080),
            "provisioning.second_url: expected a string, got an integer",
        ),
        (
            lambda d: d["tftp"].update(per_device_from=["10.0.0.0/33"]),
            "tftp.per_device_from[0]: '10.0.0.0/33' is not an address or CIDR network",
        ),
        (
            lambda d: d["security"].update(repeat_window=-1),
            "security.repeat_window: -1 is out of range 0..86400",
        ),
        (
            lambda d: d["admin"].update(page_refresh=0.1),
            "admin.page_refresh: 0.1 is out of range 0.2..60.0",
        ),
        (
            lambda d: d["admin"].update(page_refresh="1s"),
            "admin.page_refresh: expected an integer or a number, got a string",
        ),
    ],
)
def test_each_error_names_its_key(valid: dict, config_path: Path, mutate, expected: str) -> None:
    data = copy.deepcopy(valid)
    mutate(data)
    found = problems(data, config_path)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_is_listed_at_once(valid: dict, config_path: Path) -> None:
    data = copy.deepcopy(valid)
    data["http"]["listen"] = ["nope"]
    data["sites"]["chicago"]["sip"]["port"] = 0
    data["failover"]["primary"] = "nowhere"
    data["surprise"] = True
    assert len(problems(data, config_path)) == 4


def test_password_file(valid: dict, tmp_path: Path) -> None:
    secret = tmp_path / "db.secret"
    secret.write_text("from-a-file\n")
    data = copy.deepcopy(valid)
    db = data["sites"]["chicago"]["db"]
    del db["password"]
    db["password_file"] = str(secret)
    cfg = config.parse(data, tmp_path / "xprov.toml")
    assert cfg.sites["chicago"].db.password == "from-a-file"  # type: ignore[union-attr]
    db["password_file"] = str(tmp_path / "missing")
    assert "sites.chicago.db.password_file: cannot read: FileNotFoundError" in problems(
        data, tmp_path / "xprov.toml"
    )


def test_secret_files_must_be_small_regular_files(valid: dict, tmp_path: Path) -> None:
    """Break-it pass: a FIFO as password_file or token_file blocked the reload's build thread
    forever (and every later reload behind it). Refused at once, as a device or a huge file."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_text("x" * 5000)
    for path, reason in ((fifo, "not a regular file"), (big, "more than 4096 bytes")):
        data = copy.deepcopy(valid)
        del data["sites"]["chicago"]["db"]["password"]
        data["sites"]["chicago"]["db"]["password_file"] = str(path)
        del data["admin"]["token"]
        data["admin"]["token_file"] = str(path)
        data["auth"] = {"user": "prov", "password_file": str(path)}
        found = problems(data, tmp_path / "xprov.toml")
        assert found == [
            f"sites.chicago.db.password_file: cannot read: {reason}",
            f"auth.password_file: cannot read: {reason}",
            f"admin.token_file: cannot read: {reason}",
        ]  # and no misleading "password: must be at least 8 characters" beside them


def test_ipv6_listen(valid: dict, config_path: Path) -> None:
    data = copy.deepcopy(valid)
    data["http"]["listen"] = ["[::1]:8080", "127.0.0.1:8081"]
    cfg = config.parse(data, config_path)
    assert [str(x) for x in cfg.http.listen] == ["[::1]:8080", "127.0.0.1:8081"]


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "x.toml"
    path.write_text("[http\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert "not valid TOML" in info.value.problems[0]


def test_check_config_prints_every_problem_and_exits_1(tmp_path: Path, capsys) -> None:
    path = sample_config(
        tmp_path, {"port = 5060": "port = 99999", 'primary = "chicago"': 'primary = "denver"'}
    )
    assert cli.main(["check-config", "-c", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "sites.chicago.sip.port: 99999 is out of range 1..65535" in err
    assert "failover.primary: site 'denver' is not defined under [sites]" in err


def test_check_config_reports_template_and_inventory_problems(tmp_path: Path, capsys) -> None:
    templates = tmp_path / "t"
    (templates / "yealink").mkdir(parents=True)
    (templates / "yealink" / "device.cfg").write_text("{% if %}\n")
    path = sample_config(
        tmp_path, templates=templates, inventory='[[phones]]\nmac = "zz"\nvendor = "yealink"\n'
    )
    assert cli.main(["check-config", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "template yealink/device.cfg:1:" in err
    assert "template linksys/model.xml: not found" in err
    assert "phones[0].mac: not a MAC address" in err


def test_check_config_ok(config_path: Path, capsys) -> None:
    assert cli.main(["check-config", "-c", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "OK (4 phones" in out
    assert "note: per-device files (SIP passwords) go to anyone who names a MAC" in out


def test_shared_user_may_not_be_a_phones_account(tmp_path: Path, capsys) -> None:
    inventory = inventory_with_accounts({"T46G": ("site", "pw-Secret")})
    auth = '[auth]\nmode = "digest"\nuser = "site"\npassword = "site-Secret"\n\n[logging]'
    path = sample_config(tmp_path, inventory=inventory, replace={"[logging]": auth})
    assert cli.main(["check-config", "-c", str(path)]) == 1
    assert "auth.user: 'site' is also a phone's http_user" in capsys.readouterr().err


def test_check_config_explains_tftp_with_auth(tmp_path: Path, capsys) -> None:
    path = sample_config(tmp_path, replace={"[logging]": '[auth]\nmode = "digest"\n\n[logging]'})
    assert cli.main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: per-device files are refused over TFTP" in out
    assert "per_device_from" in out


def test_tftp_per_device_from_absent_empty_or_given(valid: dict, config_path: Path) -> None:
    assert config.parse(valid, config_path).tftp.per_device_from is None  # type: ignore[union-attr]
    data = copy.deepcopy(valid)
    data["tftp"]["per_device_from"] = []
    assert config.parse(data, config_path).tftp.per_device_from == ()  # type: ignore[union-attr]
    data["tftp"]["per_device_from"] = ["10.20.0.0/16", "2001:db8::/48"]
    networks = config.parse(data, config_path).tftp.per_device_from  # type: ignore[union-attr]
    assert [str(n) for n in networks] == ["10.20.0.0/16", "2001:db8::/48"]


def test_secret_vars_are_secrets(valid: dict, config_path: Path) -> None:
    data = copy.deepcopy(valid)
    data["vars"].update(admin_password="a-Secret", voicemail_pin="4711", dsskey_label="Desk")
    cfg = config.parse(data, config_path)
    assert "a-Secret" in cfg.secrets() and "4711" in cfg.secrets()
    assert "Desk" not in cfg.secrets()
    assert set(cfg.shared_vars) == {"ntp_server", "yealink_time_zone", "dsskey_label"}
    for name in ("password", "Admin_Passwd", "sip_pwd", "client_secret", "api_token", "key", "pin"):
        assert config.secret_name(name), name
    for name in ("keyboard", "dsskey_type", "pinned_line", "ntp_server", "spinner"):
        assert not config.secret_name(name), name


SHORT = "shorter than 4 characters (a secret that short could not be kept out of the logs)"


@pytest.mark.parametrize("secret", ["x", "ab", "p4$"])
def test_a_secret_too_short_to_redact_is_refused(valid, tmp_path: Path, secret: str) -> None:
    """The log redactor cannot cut a 3-character string out of every line without masking
    ordinary words, so no such secret is accepted anywhere (issue 13, item 6); the problem
    names the key and never the value."""
    data = copy.deepcopy(valid)
    data["sites"]["chicago"]["db"]["password"] = secret
    data["vars"].update(voicemail_pin=secret, sip_pwd=7)
    (tmp_path / "db.secret").write_text(secret + "\n")
    del data["sites"]["virginia"]["db"]["password"]
    data["sites"]["virginia"]["db"]["password_file"] = str(tmp_path / "db.secret")
    named = "; a name like this one marks a secret"
    assert set(problems(data, tmp_path / "xprov.toml")) == {
        f"sites.chicago.db.password: {SHORT}",
        f"sites.virginia.db.password_file: {SHORT}",
        f"vars.voicemail_pin: {SHORT}{named}",
        f"vars.sip_pwd: {SHORT}{named}",
    }


def test_unreadable_config(tmp_path: Path, capsys) -> None:
    assert cli.main(["check-config", "-c", str(tmp_path / "none.toml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_admin_token_file(valid: dict, tmp_path: Path) -> None:
    (tmp_path / "admin.token").write_text("0123456789abcdef0123\n")
    data = copy.deepcopy(valid)
    del data["admin"]["token"]
    data["admin"]["token_file"] = "admin.token"
    cfg = config.parse(data, tmp_path / "xprov.toml")
    assert cfg.admin is not None and cfg.admin.token == "0123456789abcdef0123"
    data["admin"]["token"] = "another-long-token-here"
    assert "admin.token: give exactly one of token or token_file" in problems(
        data, tmp_path / "xprov.toml"
    )
    data = copy.deepcopy(valid)
    data["admin"]["token"] = "short"
    assert "admin.token: must be at least 16 characters" in problems(data, tmp_path / "x.toml")
    data["admin"]["token"] = "long-enough-token-1"
    data["admin"]["listen"] = data["http"]["listen"]
    assert any("is a phones' listener" in p for p in problems(data, tmp_path / "x.toml"))


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ({"user": "site"}, "auth.password: must be at least 8 characters (it opens every phone)"),
        ({"user": "site", "password": ""}, "auth.password: must be at least 8 characters"),
        ({"user": "", "password": "long-enough"}, "auth.user: must be a name without ':'"),
        ({"user": " ", "password": "long-enough"}, "auth.user: must be a name without ':'"),
        ({"user": "si:te", "password": "long-enough"}, "auth.user: must be a name without ':'"),
        ({"user": "site", "password": " " * 12}, "auth.password: must be at least 8"),
        ({"password": "long-enough"}, "auth.user: missing (the password belongs to a user)"),
    ],
)
def test_the_shared_user_needs_a_real_password(valid, config_path, auth, expected) -> None:
    """The shared user opens every phone's file: without a password it would open them to
    anyone (found by the break-it pass: check-config said OK, Digest with '' gave 200)."""
    data = copy.deepcopy(valid)
    data["auth"] = {"mode": "digest", **auth}
    assert any(p.startswith(expected) for p in problems(data, config_path))


def test_a_shared_password_an_spa_cannot_send(tmp_path: Path, capsys) -> None:
    auth = '[auth]\nmode = "digest"\nuser = "site"\npassword = "has a space"\n\n[logging]'
    path = sample_config(tmp_path, replace={"[logging]": auth})
    assert cli.main(["check-config", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "auth.password: an SPA cannot send credentials holding a quote" in err
    assert "(linksys phones use the shared user)" in err and "has a space" not in err


def test_check_config_notes_weak_phone_passwords(tmp_path: Path, capsys) -> None:
    inventory = inventory_with_accounts({"T46G": ("t46g", "short")})
    auth = '[auth]\nmode = "digest"\nuser = "site"\npassword = "long-enough-pw"\n\n[logging]'
    path = sample_config(tmp_path, inventory=inventory, replace={"[logging]": auth})
    assert cli.main(["check-config", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: 1 phones have an http_password shorter than 12 characters" in out
    assert "short" not in out.replace("shorter", "")


def test_bind_mac_with_a_plain_http_url_is_an_error(valid, config_path, tmp_path) -> None:
    """Phones fetch from the provisioning URL; bind_mac refuses per-device files over plain
    HTTP: together they lock every phone out after its first file."""
    from tests.certs import authority

    cert, key = authority(tmp_path, "server")
    ca, _ = authority(tmp_path, "phone-ca")
    data = copy.deepcopy(valid)
    data["https"] = {
        "certificate": str(cert),
        "private_key": str(key),
        "client_ca": [str(ca)],
        "bind_mac": True,
    }
    assert any(
        p.startswith("provisioning.url: phones fetch their files from this http:// URL")
        for p in problems(data, config_path)
    )
    data["provisioning"]["url"] = "https://127.0.0.1:8443"
    assert config.parse(data, config_path).https.bind_mac  # type: ignore[union-attr]
    data["provisioning"]["second_url"] = "http://prov-b.example.net"  # the other site's too
    assert any(
        p.startswith("provisioning.second_url: phones fetch their files from this http:// URL")
        for p in problems(data, config_path)
    )
    data["provisioning"]["second_url"] = "https://prov-b.example.net"
    assert config.parse(data, config_path).provisioning.second_url == ("https://prov-b.example.net")


def test_an_empty_password_file_is_named(valid, tmp_path: Path) -> None:
    data = copy.deepcopy(valid)
    (tmp_path / "empty.secret").write_text("\n")
    data["auth"] = {"mode": "digest", "user": "site", "password_file": "empty.secret"}
    found = problems(data, tmp_path / "xprov.toml")
    assert "auth.password_file: is empty (the password is its first line)" in found


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        (  # HTTPS on HTTP's address
            {"https": ["127.0.0.1:8080"]},
            "https.listen: 127.0.0.1:8080 overlaps http.listen 127.0.0.1:8080",
        ),
        (  # any IPv4 address and loopback, on one port
            {"http": ["0.0.0.0:8080"], "admin": ["127.0.0.1:8080"]},
            "admin.listen: 127.0.0.1:8080 overlaps http.listen 0.0.0.0:8080",
        ),
        (  # `::` takes IPv4 too
            {"https": ["[::]:8080"]},
            "https.listen: [::]:8080 overlaps http.listen 127.0.0.1:8080",
        ),
        (  # the same address twice in one list
            {"http": ["127.0.0.1:8080", "127.0.0.1:8080"]},
            "http.listen: 127.0.0.1:8080 overlaps http.listen 127.0.0.1:8080",
        ),
        (  # the admin API on any address, HTTPS on one
            {"admin": ["0.0.0.0:8443"], "https": ["127.0.0.2:8443"]},
            "admin.listen: 0.0.0.0:8443 overlaps https.listen 127.0.0.2:8443",
        ),
    ],
)
def test_tcp_listeners_on_one_address(
    listen: dict[str, list[str]], expected: str, valid: dict, tmp_path: Path
) -> None:
    """Two TCP listeners whose addresses overlap: a config problem, not a failed bind at
    start or at a reload."""
    data = copy.deepcopy(valid)
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    data["https"] = {"listen": ["127.0.0.1:8443"], "certificate": "cert.pem"}
    data["https"]["private_key"] = "key.pem"
    for table, addresses in listen.items():
        data[table]["listen"] = addresses
    found = problems(data, tmp_path / "xprov.toml")
    assert found == [
        f"{expected} (the same port, and the same address or any address): each listener "
        "needs an address of its own"
    ]


def test_tcp_listeners_that_do_not_overlap(valid: dict, tmp_path: Path) -> None:
    data = copy.deepcopy(valid)
    (tmp_path / "cert.pem").write_text("x")
    (tmp_path / "key.pem").write_text("x")
    data["http"]["listen"] = ["127.0.0.1:8080", "127.0.0.2:8080", "[::1]:8443"]
    data["https"] = {"listen": ["0.0.0.0:8443"], "certificate": "cert.pem"}
    data["https"]["private_key"] = "key.pem"
    data["admin"]["listen"] = ["127.0.0.1:8081"]
    data["tftp"]["listen"] = ["127.0.0.1:8080"]  # UDP: another port space
    cfg = config.parse(data, tmp_path / "xprov.toml")
    assert [str(x) for x in cfg.https.listen] == ["0.0.0.0:8443"]  # type: ignore[union-attr]
