"""What the gate makes of a config: its Policy, the notices `xprov check-config` and the
start-up log print, and the credential problems that would lock phones out."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from tests.helpers import sample_config
from xprov.auth import Credentials
from xprov.build import load
from xprov.config import AuthConfig, Config, HttpsConfig
from xprov.guard import Policy, credential_problems, notices
from xprov.inventory.snapshot import Inventory, Phone

OPEN = (
    "per-device files (SIP passwords) go to anyone who names a MAC over {}: "
    'set [auth] mode = "digest" (or [https] bind_mac) in production'
)
DIGEST = '[auth] mode = "digest" needs credentials'
BIND = "[https] bind_mac needs a device certificate"
REFUSED_OVER_TFTP = (
    "per-device files are refused over TFTP: {}, and TFTP carries none (shared files are "
    "still served); to serve them to trusted provisioning networks only, set [tftp] "
    'per_device_from = ["CIDR", ...]'
)
AUTH_OFF = '[auth] user and basic_over_tls do nothing while mode = "off"'
BASIC_WITHOUT_HTTPS = "[auth] basic_over_tls does nothing without [https]"
HTTP_URL = (
    "[provisioning] url is http://, and it is written into the files: phones move to plain "
    "HTTP after their first file (use https:// to keep them on TLS)"
)
PLAIN_HTTP = "per-device files are refused over plain HTTP: [https] bind_mac is on"
HTTPS = HttpsConfig((), Path("server.pem"), Path("server.key"), (), "off", False)


@pytest.fixture
def sample(tmp_path: Path) -> Config:
    """The sample config: HTTP and TFTP, no HTTPS, [auth] mode = "off", an http:// URL."""
    return load(sample_config(tmp_path)).config


def configured(cfg: Config, auth: dict, https: dict | None, tftp: dict | None, **fields) -> Config:
    """`cfg` with these [auth] settings, and [https] and [tftp] (None: not configured)."""
    return dataclasses.replace(
        cfg,
        auth=dataclasses.replace(cfg.auth, **auth),
        https=None if https is None else dataclasses.replace(HTTPS, **https),
        tftp=None if tftp is None or cfg.tftp is None else dataclasses.replace(cfg.tftp, **tftp),
        **fields,
    )


def networks(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def test_the_sample_config_asks_nothing_of_phones(sample) -> None:
    assert Policy.of(sample) == Policy()
    assert Policy.of(dataclasses.replace(sample, tftp=None)) == Policy()


def test_policy_of_every_setting(sample) -> None:
    auth = {"mode": "digest", "basic_over_tls": True, "user": "site", "password": "site-pw-Secret"}
    security = dataclasses.replace(
        sample.security, bad_answer_burst=7, bad_answer_rate=0.5, repeat_window=100.0
    )
    cfg = configured(
        sample,
        {**auth, "nonce_lifetime": 60.0},
        {"bind_mac": True},
        {"per_device_from": networks("10.20.0.0/16")},
        security=security,
    )
    assert Policy.of(cfg) == Policy(
        digest=True,
        basic_over_tls=True,
        shared=Credentials("site", "site-pw-Secret"),
        bind_mac=True,
        tftp_per_device_from=networks("10.20.0.0/16"),
        burst=7,
        rate=0.5,
        repeat_window=100.0,
        nonce_lifetime=60.0,
    )


def test_https_without_bind_mac_binds_nothing(sample) -> None:
    assert Policy.of(configured(sample, {}, {}, None)).bind_mac is False


@pytest.mark.parametrize(
    ("auth", "https", "tftp", "url", "expected"),
    [
        ({}, None, {}, None, [OPEN.format("HTTP, TFTP")]),
        ({}, {}, None, "https://xprov.example", [OPEN.format("HTTP, HTTPS")]),
        ({}, {}, {}, None, [OPEN.format("HTTP, HTTPS, TFTP"), HTTP_URL]),
        ({"user": "site"}, None, None, None, [OPEN.format("HTTP"), AUTH_OFF]),
        ({"basic_over_tls": True}, None, None, None, [OPEN.format("HTTP"), AUTH_OFF]),
        (
            {"mode": "digest", "basic_over_tls": True},
            None,
            {},
            None,
            [BASIC_WITHOUT_HTTPS, REFUSED_OVER_TFTP.format(DIGEST)],
        ),
        ({"mode": "digest", "basic_over_tls": True}, {}, None, "https://xprov.example", []),
        (
            {},
            {"bind_mac": True},
            {},
            None,
            [HTTP_URL, PLAIN_HTTP, REFUSED_OVER_TFTP.format(BIND)],
        ),
        (
            {"mode": "digest"},
            {"bind_mac": True},
            {},
            "https://xprov.example",
            [PLAIN_HTTP, REFUSED_OVER_TFTP.format(f"{DIGEST} and {BIND}")],
        ),
    ],
    ids=[
        "open",
        "open-https",
        "open-everywhere",
        "shared-user-unused",
        "basic-unused",
        "basic-without-https",
        "digest-and-basic-over-https",
        "bind-mac",
        "digest-and-bind-mac",
    ],
)
def test_notices_of_listeners_and_auth(sample, auth, https, tftp, url, expected) -> None:
    cfg = configured(sample, auth, https, tftp)
    if url is not None:
        cfg = dataclasses.replace(cfg, provisioning=dataclasses.replace(cfg.provisioning, url=url))
    assert notices(cfg) == expected


def test_bind_mac_without_a_plain_http_listener_refuses_nothing_there(sample) -> None:
    no_http = dataclasses.replace(sample.http, listen=())
    cfg = configured(sample, {}, {"bind_mac": True}, None, http=no_http)
    assert PLAIN_HTTP not in notices(cfg)


@pytest.mark.parametrize(
    ("auth", "https", "trusted", "expected"),
    [
        (
            {"mode": "digest"},
            None,
            ("10.20.0.0/16", "192.0.2.0/24"),
            'only to 10.20.0.0/16, 192.0.2.0/24 ([auth] mode = "digest" needs credentials '
            "elsewhere)",
        ),
        (
            {"mode": "digest"},
            {"bind_mac": True},
            (),
            f"only to nowhere ({DIGEST} and {BIND} elsewhere)",
        ),
        (
            {},
            None,
            ("10.20.0.0/16", "::/0"),
            "only to 10.20.0.0/16, ::/0 (that is every IPv6 address: anyone who reaches TFTP "
            "gets every phone's SIP passwords)",
        ),
        (
            {},
            None,
            ("::/0", "0.0.0.0/0"),
            "only to ::/0, 0.0.0.0/0 (that is every IPv4 address and every IPv6 address: anyone "
            "who reaches TFTP gets every phone's SIP passwords)",
        ),
    ],
    ids=["trusted-networks", "nowhere", "every-ipv6", "everyone"],
)
def test_notice_of_tftps_trusted_networks(sample, auth, https, trusted, expected) -> None:
    cfg = configured(sample, auth, https, {"per_device_from": networks(*trusted)})
    assert notices(cfg)[-1] == "per-device files over TFTP, without credentials, " + expected


def phone(mac: str, vendor: str = "yealink", user: str = "", password: str = "") -> Phone:
    return Phone(
        mac, vendor, "T46G" if vendor == "yealink" else "SPA504G", (), (), "", user, password
    )


def inventory(*phones: Phone) -> Inventory:
    return Inventory.of(phones, 1, "test")


MACS = [f"0015650000{i:02x}" for i in range(7)]


@pytest.mark.parametrize(
    ("phones", "shared", "expected"),
    [
        (
            [phone(mac) for mac in MACS[:5]],
            None,
            [
                "5 phones have no http_user and there is no [auth] user: they cannot log in for "
                f"their per-device files ({', '.join(MACS[:5])})"
            ],
        ),
        (
            [phone(mac) for mac in reversed(MACS[:6])],
            None,
            [
                "6 phones have no http_user and there is no [auth] user: they cannot log in for "
                f"their per-device files ({', '.join(MACS[:5])}, ...)"
            ],
        ),
        ([phone(mac) for mac in MACS], "site", []),
        (
            [
                phone(MACS[1], user="b", password="x" * 11),
                phone(MACS[0], user="a", password="y" * 11),
                phone(MACS[2], user="c", password="z" * 12),
            ],
            None,
            [
                "2 phones have an http_password shorter than 12 characters, which guesses from "
                f"many addresses could find ({MACS[0]}, {MACS[1]})"
            ],
        ),
    ],
    ids=["locked-out", "many-locked-out", "shared-user", "weak-passwords"],
)
def test_notices_of_phones_accounts(sample, phones, shared, expected) -> None:
    auth = {"mode": "digest", "user": shared, "password": "site-pw-Secret" if shared else ""}
    assert notices(configured(sample, auth, None, None), inventory(*phones)) == expected


def test_no_account_notices_while_auth_is_off(sample) -> None:
    locked = inventory(phone(MACS[0]), phone(MACS[1], user="a", password="short"))
    assert notices(configured(sample, {}, None, None), locked) == [OPEN.format("HTTP")]


@pytest.mark.parametrize(
    ("user", "password", "phones", "expected"),
    [
        (None, "", [phone(MACS[0], "linksys")], []),
        ("site", "site-pw-Secret", [phone(MACS[0], "linksys"), phone(MACS[1])], []),
        (
            "site",
            "has a space",
            [phone(MACS[0], "linksys"), phone(MACS[1])],
            [
                'auth.password: an SPA cannot send credentials holding a quote, bracket, "$" or '
                "space (linksys phones use the shared user)"
            ],
        ),
        ("site", "has a space", [phone(MACS[0], "linksys", "spa", "spa-pw-Secret")], []),
        (
            "t46g",
            "site-pw-Secret",
            [phone(MACS[0], user="t46g", password="t46g-pw-Secret")],
            ["auth.user: 't46g' is also a phone's http_user"],
        ),
    ],
    ids=["no-shared-user", "sendable", "unsendable-by-spa", "spa-has-its-own", "user-taken"],
)
def test_credential_problems(sample, user, password, phones, expected) -> None:
    cfg = dataclasses.replace(sample, auth=AuthConfig("digest", False, user, password))
    assert credential_problems(cfg, inventory(*phones)) == expected
