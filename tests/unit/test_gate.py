"""The gate's decisions, without sockets: who may have which file, over which transport,
what each refusal costs its source, and that nothing is rendered for a refused asker."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import ipaddress
from pathlib import Path

import pytest

from tests.helpers import (
    SPA504G,
    USER_AGENTS,
    YEALINK_T31G,
    YEALINK_T46G,
    inventory_with_accounts,
    sample_config,
)
from xprov.auth import Credentials
from xprov.build import load
from xprov.guard import Asker, Gate, Policy, Transport, allowed, budget_of, notices
from xprov.provisioning import Charge, NotFound, Provisioner, Refused, Served
from xprov.selection import ActiveSites
from xprov.vendors import yealink

T46G_USER, T46G_PASSWORD = "t46g", "http-T46G-Secret"
SHARED = Credentials("site", "site-pw-Secret")
NOW = 1000.0
OFFICE = "192.0.2.10"


def inventory_with_credentials() -> str:
    return inventory_with_accounts({"T46G": (T46G_USER, T46G_PASSWORD)})


@pytest.fixture
def provisioner(tmp_path: Path) -> Provisioner:
    inputs = load(sample_config(tmp_path, inventory=inventory_with_credentials()))
    return Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))


def gate_of(provisioner: Provisioner, **policy) -> Gate:
    return Gate(provisioner, Policy(**{"burst": 20, "rate": 0.01, **policy}), b"k" * 32)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def digest(
    gate: Gate,
    path: str,
    user: str = T46G_USER,
    password: str = T46G_PASSWORD,
    source: str = OFFICE,
    nc: int = 1,
    nonce: str | None = None,
    method: str = "GET",
) -> str:
    nonce = nonce or gate.digest.nonce(source, NOW)
    ha1, ha2 = md5(f"{user}:xprov:{password}"), md5(f"{method}:{path}")
    response = md5(f"{ha1}:{nonce}:{nc:08x}:c0ffee:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="xprov", nonce="{nonce}", uri="{path}", '
        f'response="{response}", qop=auth, nc={nc:08x}, cnonce="c0ffee"'
    )


def basic(user: str = T46G_USER, password: str = T46G_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def ask(gate: Gate, path: str, transport: Transport = Transport.HTTP, now: float = NOW, **kw):
    return gate.answer(Asker(transport, kw.pop("source", OFFICE), path, **kw), now)


DEVICE = f"/{YEALINK_T46G}.cfg"


def outcome(answer) -> tuple:
    """What a transport and the security log see of a refusal."""
    return answer.status, answer.reason, answer.charge, answer.retry_after, answer.request.mac


def test_open_policy_serves_everyone_and_charges_misses(provisioner) -> None:
    gate = gate_of(provisioner)
    served = ask(gate, DEVICE)
    assert isinstance(served, Served) and b"account.1.password = yk-1001-Secret" in served.body
    miss = ask(gate, "/001565000001.cfg")
    assert miss == NotFound("unknown device", miss.request, Charge.CHARGED)
    assert ask(gate, "/nothing.txt") == NotFound("unknown file")  # names no device: free
    assert gate.charged == {"unknown device": 1}


def test_no_credentials_gets_a_challenge_and_nothing_is_rendered(provisioner) -> None:
    gate = gate_of(provisioner, digest=True)
    for method in ("GET", "HEAD"):
        refused = ask(gate, DEVICE, method=method)
        assert isinstance(refused, Refused)
        assert (refused.status, refused.reason, refused.charge) == (
            401,
            "no credentials",
            Charge.NONE,
        )
        [challenge] = refused.challenges
        assert challenge.startswith('Digest realm="xprov", qop="auth", algorithm=MD5')
    assert provisioner.renders == 0 and len(provisioner.cache) == 0


def test_the_phones_own_credentials_open_its_own_files_only(provisioner) -> None:
    gate = gate_of(provisioner, digest=True)
    served = ask(gate, DEVICE, authorization=digest(gate, DEVICE))
    assert isinstance(served, Served) and served.mac == YEALINK_T46G
    boot = f"/{YEALINK_T46G}.boot"
    assert isinstance(ask(gate, boot, authorization=digest(gate, boot)), Served)
    for other in (f"/{YEALINK_T31G}.cfg", f"/{SPA504G}.xml", "/001565000001.cfg"):
        refused = ask(gate, other, authorization=digest(gate, other))
        assert isinstance(refused, Refused), other
        assert (refused.status, refused.reason) == (403, "credentials of another device")
    assert provisioner.renders == 2


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (lambda g: digest(g, DEVICE, password="guess"), "wrong password"),
        (lambda g: digest(g, DEVICE, user="mallory"), "unknown user"),
        (lambda g: digest(g, f"/{YEALINK_T31G}.cfg"), "uri does not match the request"),
        (lambda g: digest(g, DEVICE, source="198.51.100.1"), "forged or foreign nonce"),
        (lambda g: basic(), "Basic authentication without TLS"),
        (lambda g: "Digest garbage", "wrong realm"),
        (lambda g: "Bearer abc", "malformed Authorization header"),
    ],
)
def test_failed_logins_are_challenged_again_and_charged(provisioner, header, reason) -> None:
    gate = gate_of(provisioner, digest=True)
    refused = ask(gate, DEVICE, authorization=header(gate))
    assert isinstance(refused, Refused)
    assert outcome(refused) == (401, reason, Charge.CHARGED, None, YEALINK_T46G)
    assert gate.charged == {reason: 1}
    [challenge] = refused.challenges
    assert "stale" not in challenge
    assert provisioner.renders == 0


def test_basic_over_tls_only_when_allowed(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, basic_over_tls=True)
    assert isinstance(ask(gate, DEVICE, Transport.HTTPS, authorization=basic()), Served)
    refused = ask(gate, DEVICE, Transport.HTTP, authorization=basic())
    assert isinstance(refused, Refused) and refused.status == 401
    closed = gate_of(provisioner, digest=True)
    refused = ask(closed, DEVICE, Transport.HTTPS, authorization=basic())
    assert isinstance(refused, Refused) and refused.reason == "Basic authentication without TLS"


def test_the_shared_user_may_log_in_with_basic_over_tls(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, basic_over_tls=True, shared=SHARED)
    header = basic(SHARED.user, SHARED.password)
    assert isinstance(ask(gate, f"/{SPA504G}.xml", Transport.HTTPS, authorization=header), Served)


def test_shared_credentials_open_every_phone_and_misses_still_cost(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, shared=SHARED)
    for name in (DEVICE, f"/{SPA504G}.xml"):
        header = digest(gate, name, user="site", password="site-pw-Secret")
        assert isinstance(ask(gate, name, authorization=header), Served)
    unknown = "/001565000001.cfg"
    header = digest(gate, unknown, user="site", password="site-pw-Secret")
    miss = ask(gate, unknown, authorization=header)
    assert isinstance(miss, NotFound) and miss.charge is Charge.CHARGED


def test_a_replayed_answer_is_refused_quietly_and_the_next_one_served(provisioner) -> None:
    gate = gate_of(provisioner, digest=True)
    captured = digest(gate, DEVICE)
    assert isinstance(ask(gate, DEVICE, authorization=captured), Served)
    replay = ask(gate, DEVICE, authorization=captured, now=NOW + 1)
    assert outcome(replay) == (401, "replayed answer", Charge.NONE, None, YEALINK_T46G)
    [challenge] = replay.challenges
    assert challenge.endswith(", stale=true")
    nonce = captured.split('nonce="')[1].split('"')[0]
    fresh = digest(gate, DEVICE, nonce=nonce, nc=2)
    assert isinstance(ask(gate, DEVICE, authorization=fresh, now=NOW + 2), Served)


def test_certificate_binding(provisioner) -> None:
    gate = gate_of(provisioner, bind_mac=True)
    mine = frozenset({YEALINK_T46G})
    assert isinstance(ask(gate, DEVICE, Transport.HTTPS, certificate_macs=mine), Served)
    for asker, reason in (
        (
            {"certificate_macs": frozenset({YEALINK_T31G})},
            "client certificate names another device",
        ),
        ({"certificate_macs": frozenset()}, "client certificate names another device"),
    ):
        refused = ask(gate, DEVICE, Transport.HTTPS, **asker)
        assert isinstance(refused, Refused) and (refused.status, refused.reason) == (403, reason)
    plain = ask(gate, DEVICE, Transport.HTTP)
    assert isinstance(plain, Refused)
    assert (plain.status, plain.reason) == (403, "no device certificate (plain HTTP)")
    shared = ask(gate, "/y000000000028.cfg", Transport.HTTP)
    assert isinstance(shared, Served)  # no secret in it


def test_certificate_and_digest_together(provisioner) -> None:
    gate = gate_of(provisioner, bind_mac=True, digest=True)
    mine = frozenset({YEALINK_T46G})
    challenged = ask(gate, DEVICE, Transport.HTTPS, certificate_macs=mine)
    assert isinstance(challenged, Refused) and challenged.status == 401
    header = digest(gate, DEVICE)
    assert isinstance(
        ask(gate, DEVICE, Transport.HTTPS, certificate_macs=mine, authorization=header), Served
    )


@pytest.mark.parametrize(
    ("policy", "source", "served"),
    [
        ({}, OFFICE, True),  # nothing requires proof: TFTP as ever
        ({"digest": True}, OFFICE, False),
        ({"bind_mac": True}, OFFICE, False),
        ({"digest": True, "tftp_per_device_from": ("10.20.0.0/16",)}, "10.20.3.4", True),
        ({"digest": True, "tftp_per_device_from": ("10.20.0.0/16",)}, OFFICE, False),
        ({"tftp_per_device_from": ("10.20.0.0/16",)}, OFFICE, False),  # restricts, auth or not
        ({"tftp_per_device_from": ()}, "10.20.3.4", False),  # an empty list: nobody
    ],
)
def test_tftp_per_device_files(provisioner, policy, source, served) -> None:
    if "tftp_per_device_from" in policy:
        networks = tuple(ipaddress.ip_network(n) for n in policy["tftp_per_device_from"])
        policy = {**policy, "tftp_per_device_from": networks}
    gate = gate_of(provisioner, **policy)
    answer = ask(gate, f"{YEALINK_T46G}.cfg", Transport.TFTP, source=source)
    if served:
        assert isinstance(answer, Served)
    else:
        assert isinstance(answer, Refused)
        assert (answer.status, answer.reason) == (403, "per-device file over TFTP")
        assert answer.challenges == () and provisioner.renders == 0
    for shared in ("y000000000028.cfg", "spa504G.cfg", "y000000000000.boot"):
        assert isinstance(ask(gate, shared, Transport.TFTP, source=source), Served), shared


def test_tftp_refusals_cost_once_per_mac(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, burst=3)
    charges = [
        ask(gate, f"{YEALINK_T46G}.cfg", Transport.TFTP, now=NOW + i).charge for i in range(10)
    ]
    assert charges == [Charge.CHARGED] + [Charge.REPEAT] * 9


def test_enumeration_without_auth_is_limited_after_the_burst(provisioner) -> None:
    gate = gate_of(provisioner)
    answers = [ask(gate, f"/0015{i:08x}.cfg") for i in range(1000)]
    assert [a.charge for a in answers[:20]] == [Charge.CHARGED] * 19 + [Charge.EXHAUSTED]
    assert all(isinstance(a, Refused) and a.status == 429 for a in answers[20:])
    assert gate.charged == {"unknown device": 20}
    assert isinstance(ask(gate, DEVICE), Refused)  # per-device files: refused to this source
    assert isinstance(ask(gate, "/y000000000028.cfg"), Served)  # shared ones: no secret
    assert isinstance(ask(gate, DEVICE, source="198.51.100.7"), Served)  # elsewhere: served
    later = ask(gate, DEVICE, now=NOW + 100)  # one token back after 100 s at 0.01/s
    assert isinstance(later, Served)


def test_enumeration_with_shared_credentials_is_limited_too(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, shared=SHARED)
    answers = []
    for i in range(200):
        name = f"/0015{i:08x}.cfg"
        header = digest(gate, name, user="site", password="site-pw-Secret")
        answers.append(ask(gate, name, authorization=header))
    assert all(isinstance(a, NotFound) for a in answers[:20])
    assert all(isinstance(a, Refused) and a.status == 429 for a in answers[20:])
    header = digest(gate, DEVICE, user="site", password="site-pw-Secret")
    blocked = ask(gate, DEVICE, authorization=header)  # not even a known phone: no oracle
    assert isinstance(blocked, Refused) and blocked.status == 429
    assert isinstance(ask(gate, DEVICE, authorization=digest(gate, DEVICE)), Served)  # its own


def test_nat_office_unknown_phones_retrying_never_lock_out_the_known_one(provisioner) -> None:
    """Five unprovisioned phones behind the office's address ask for their missing files on
    every poll for an hour; the provisioned phone on the same address is served all along."""
    gate = gate_of(provisioner, burst=20, rate=0.01)
    unknown = [f"/0015650000{i:02x}" for i in range(5)]
    for poll in range(60):
        now = NOW + 60 * poll
        for name in unknown:
            for suffix in (".boot", ".cfg"):
                assert isinstance(ask(gate, name + suffix, now=now), NotFound)
        assert isinstance(ask(gate, DEVICE, now=now), Served)
    assert gate.charged == {"unknown device": 5}


def test_nat_office_with_auth_a_blocked_source_may_still_log_in(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, burst=5)
    for i in range(10):  # an unprovisioned phone with no account, over and over
        name = f"/0015650000{i:02x}.cfg"
        ask(gate, name, authorization=digest(gate, name, user="unprovisioned"))
    assert gate.sources.blocked(("http", OFFICE), NOW)
    challenged = ask(gate, DEVICE)  # still told how to log in
    assert isinstance(challenged, Refused) and challenged.status == 401
    assert isinstance(ask(gate, DEVICE, authorization=digest(gate, DEVICE)), Served)
    wrong = ask(gate, DEVICE, authorization=digest(gate, DEVICE, password="guess"))
    assert isinstance(wrong, Refused) and wrong.status == 429  # failed logins: limited
    stranger = ask(gate, DEVICE, authorization=digest(gate, DEVICE, user="mallory"))
    assert isinstance(stranger, Refused) and stranger.status == 429


def test_password_guessing_is_bounded_even_from_a_blocked_source(provisioner) -> None:
    """Each account has its own budget per source: once spent, its answers are not even
    checked (no oracle), whether the source is blocked or not."""
    gate = gate_of(provisioner, digest=True, burst=5)
    verdicts = [
        ask(gate, DEVICE, authorization=digest(gate, DEVICE, password=f"guess{i}"))
        for i in range(50)
    ]
    assert [v.status for v in verdicts[:5]] == [401] * 5
    assert {v.status for v in verdicts[5:]} == {429}
    right = ask(gate, DEVICE, authorization=digest(gate, DEVICE))
    assert isinstance(right, Refused) and right.status == 429  # no oracle for the attacker
    elsewhere = ask(
        gate,
        DEVICE,
        source="198.51.100.7",
        authorization=digest(gate, DEVICE, source="198.51.100.7"),
    )
    assert isinstance(elsewhere, Served)  # the phone itself, from its own address


def test_refusals_never_render_and_carry_no_secret(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, bind_mac=True)
    askers = [
        Asker(Transport.HTTP, OFFICE, DEVICE),
        Asker(Transport.HTTPS, OFFICE, DEVICE, certificate_macs=frozenset()),
        Asker(Transport.HTTPS, OFFICE, DEVICE, certificate_macs=frozenset({YEALINK_T46G})),
        Asker(Transport.TFTP, OFFICE, DEVICE),
        Asker(Transport.HTTPS, OFFICE, f"/{YEALINK_T46G}.xml", certificate_macs=frozenset()),
    ]
    for asker in askers:
        answer = gate.answer(asker, NOW)
        assert isinstance(answer, Refused), asker
        text = repr(dataclasses.asdict(answer))
        assert "Secret" not in text
    assert provisioner.renders == 0


def test_reconfigure_keeps_the_budgets(provisioner) -> None:
    gate = gate_of(provisioner, burst=2)
    for i in range(2):
        ask(gate, f"/0015650000{i:02x}.cfg")
    gate.reconfigure(Policy(burst=2, rate=0.01, digest=True))
    assert gate.sources.blocked(("http", OFFICE), NOW) and gate.charged == {"unknown device": 2}
    assert ask(gate, DEVICE).status == 401  # the new policy, the old budget


def test_notices_explain_the_combination(tmp_path: Path) -> None:
    open_cfg = load(sample_config(tmp_path)).config
    [open_notice] = notices(open_cfg)
    assert "go to anyone who names a MAC over HTTP, TFTP" in open_notice
    digest_cfg = load(
        sample_config(tmp_path, replace={"[logging]": '[auth]\nmode = "digest"\n\n[logging]'})
    ).config
    [tftp_notice] = notices(digest_cfg)
    assert tftp_notice.startswith("per-device files are refused over TFTP: [auth] mode")
    assert "per_device_from" in tftp_notice
    trusted = load(
        sample_config(
            tmp_path,
            replace={
                "[logging]": '[auth]\nmode = "digest"\n\n[logging]',
                "max_transfers = 1000": 'max_transfers = 1000\nper_device_from = ["10.20.0.0/16"]',
            },
        )
    ).config
    assert notices(trusted) == [
        "per-device files over TFTP, without credentials, only to 10.20.0.0/16 "
        '([auth] mode = "digest" needs credentials elsewhere)'
    ]


def test_budgets_by_transport_and_ipv6_prefix() -> None:
    http = Asker(Transport.HTTP, "192.0.2.1", DEVICE)
    assert budget_of(http) == ("http", "192.0.2.1")
    assert budget_of(http._replace(transport=Transport.HTTPS)) == ("http", "192.0.2.1")
    assert budget_of(http._replace(transport=Transport.TFTP)) == ("tftp", "192.0.2.1")
    for source in ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2::1%eth0"):
        assert budget_of(http._replace(source=source)) == ("http", "2001:db8:1:2::/64")
    assert budget_of(http._replace(source="::ffff:192.0.2.1")) == ("http", "192.0.2.1")
    assert budget_of(http._replace(source="?")) == ("http", "?")


def test_forged_tftp_requests_never_limit_http(provisioner) -> None:
    """A UDP source address is trivially forged: TFTP misses in a phone's name exhaust only
    that address's TFTP budget, never what it gets over HTTP."""
    gate = gate_of(provisioner, burst=3)
    for i in range(10):
        ask(gate, f"0015650000{i:02x}.cfg", Transport.TFTP)
    limited = ask(gate, f"{YEALINK_T46G}.cfg", Transport.TFTP)
    assert isinstance(limited, Refused) and limited.status == 429
    assert isinstance(ask(gate, DEVICE), Served)


def test_an_ipv6_subscriber_scans_with_one_budget(provisioner) -> None:
    gate = gate_of(provisioner, burst=5)
    answers = [ask(gate, f"/0015{i:08x}.cfg", source=f"2001:db8:7:7::{i + 1:x}") for i in range(50)]
    assert all(isinstance(a, NotFound) for a in answers[:5])
    assert all(isinstance(a, Refused) and a.status == 429 for a in answers[5:])
    assert isinstance(ask(gate, DEVICE, source="2001:db8:7:8::1"), Served)  # the next /64


def test_rate_limited_answers_say_when_to_retry(provisioner) -> None:
    gate = gate_of(provisioner, burst=1, rate=0.01)
    ask(gate, "/001565000001.cfg")
    limited = ask(gate, DEVICE, now=NOW + 30)
    assert outcome(limited) == (429, "rate limited", Charge.NONE, 70, YEALINK_T46G)


def test_basic_is_offered_over_tls_only_where_accepted(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, basic_over_tls=True)
    over_tls = ask(gate, DEVICE, Transport.HTTPS)
    assert isinstance(over_tls, Refused) and len(over_tls.challenges) == 2
    assert over_tls.challenges[1] == 'Basic realm="xprov", charset="UTF-8"'
    plain = ask(gate, DEVICE, Transport.HTTP)
    assert isinstance(plain, Refused) and [c[:7] for c in plain.challenges] == ["Digest "]


AUTH = '[auth]\nmode = "digest"\n\n[logging]'


def notices_of(tmp_path: Path, replace: dict[str, str], inventory: str | None = None) -> list[str]:
    inputs = load(sample_config(tmp_path, replace=replace, inventory=inventory))
    return notices(inputs.config, inputs.inventory)


def test_notices_name_phones_that_cannot_log_in(tmp_path: Path) -> None:
    found = notices_of(tmp_path, {"[logging]": AUTH}, inventory_with_credentials())
    assert (
        "3 phones have no http_user and there is no [auth] user: they cannot log in for "
        f"their per-device files (0002fdff2103, 000e08aabbcc, {YEALINK_T31G})"
    ) in found
    shared = '[auth]\nmode = "digest"\nuser = "site"\npassword = "site-pw-Secret"\n\n[logging]'
    assert not any("cannot log in" in n for n in notices_of(tmp_path, {"[logging]": shared}))


def test_notices_of_settings_that_do_nothing_or_undo_tls(tmp_path: Path) -> None:
    off = '[auth]\nmode = "off"\nbasic_over_tls = true\n\n[logging]'
    assert '[auth] user and basic_over_tls do nothing while mode = "off"' in notices_of(
        tmp_path, {"[logging]": off}
    )
    basic = '[auth]\nmode = "digest"\nbasic_over_tls = true\n\n[logging]'
    assert "[auth] basic_over_tls does nothing without [https]" in notices_of(
        tmp_path, {"[logging]": basic}
    )
    everyone = 'max_transfers = 1000\nper_device_from = ["0.0.0.0/0", "::/0"]'
    tftp = notices_of(tmp_path, {"[logging]": AUTH, "max_transfers = 1000": everyone})[-1]
    assert tftp.startswith(
        "per-device files over TFTP, without credentials, only to 0.0.0.0/0, ::/0 (that is "
        "every IPv4 address and every IPv6 address: anyone who reaches TFTP gets every "
        "phone's SIP passwords)"
    )


def test_notice_of_an_http_url_beside_https(tmp_path: Path) -> None:
    from tests.certs import authority

    cert, key = authority(tmp_path, "server")
    https = f'[https]\nlisten = ["127.0.0.1:8443"]\ncertificate = "{cert}"\nprivate_key = "{key}"\n'
    found = notices_of(tmp_path, {"[logging]": https + "\n" + AUTH})
    assert any(n.startswith("[provisioning] url is http://") for n in found)
    assert not any(n.startswith("[provisioning] second_url") for n in found)  # unset
    second = 'url = "http://127.0.0.1:8080"\nsecond_url = "http://prov-b.example.net"'
    found = notices_of(
        tmp_path, {"[logging]": https + "\n" + AUTH, 'url = "http://127.0.0.1:8080"': second}
    )
    assert any(n.startswith("[provisioning] second_url is http://") for n in found)


T31G_FILE = f"/{YEALINK_T31G}.cfg"


@pytest.mark.parametrize(
    ("path", "header", "expected"),
    [
        (DEVICE, lambda g: None, (401, "no credentials", Charge.NONE, None, YEALINK_T46G)),
        (
            DEVICE,
            lambda g: digest(g, DEVICE, user="mallory", nonce=g.digest.nonce(OFFICE, NOW + 30)),
            (429, "rate limited", Charge.NONE, 70, YEALINK_T46G),
        ),
        (
            DEVICE,
            lambda g: digest(g, DEVICE, password="guess", nonce=g.digest.nonce(OFFICE, NOW + 30)),
            (429, "rate limited", Charge.NONE, 70, YEALINK_T46G),
        ),
        (
            T31G_FILE,
            lambda g: digest(g, T31G_FILE, nonce=g.digest.nonce(OFFICE, NOW + 30)),
            (429, "rate limited", Charge.NONE, 70, YEALINK_T31G),
        ),
        (DEVICE, lambda g: basic(), (429, "rate limited", Charge.NONE, 70, YEALINK_T46G)),
    ],
    ids=["challenged", "stranger", "phone-guessing", "phone-on-another-phone", "basic-without-tls"],
)
def test_a_source_out_of_tokens_is_told_when_to_retry(provisioner, path, header, expected) -> None:
    """One failed login empties a one-token budget; 30 s later (0.3 of a token back at
    0.01/s) everything but a challenge is limited, with 70 s to wait, for the file asked."""
    gate = gate_of(provisioner, digest=True, burst=1)
    emptied = ask(gate, DEVICE, authorization=digest(gate, DEVICE, user="mallory"))
    assert emptied.charge is Charge.EXHAUSTED
    assert outcome(ask(gate, path, now=NOW + 30, authorization=header(gate))) == expected


def test_an_account_out_of_guesses_waits_for_its_own_budget(provisioner) -> None:
    """From a source already out of tokens, each account still has a guess of its own;
    once spent, the wait is the account's (90 s), not the source's (60 s)."""
    gate = gate_of(provisioner, digest=True, burst=1)
    ask(gate, DEVICE, authorization=digest(gate, DEVICE, user="mallory"))
    answers = []
    for now in (NOW + 30, NOW + 40):
        guess = digest(gate, DEVICE, password="guess", nonce=gate.digest.nonce(OFFICE, now))
        answers.append(outcome(ask(gate, DEVICE, now=now, authorization=guess)))
    assert answers == [
        (429, "rate limited", Charge.NONE, 70, YEALINK_T46G),
        (429, "rate limited", Charge.NONE, 90, YEALINK_T46G),
    ]
    assert gate.charged == {"unknown user": 1}


@pytest.mark.parametrize(
    ("policy", "transport", "name", "reason"),
    [
        ({"bind_mac": True}, Transport.HTTP, "/{}.cfg", "no device certificate (plain HTTP)"),
        ({"digest": True}, Transport.TFTP, "{}.cfg", "per-device file over TFTP"),
    ],
)
def test_refusals_spend_the_sources_own_budget_then_limit_it(
    provisioner, policy, transport, name, reason
) -> None:
    gate = gate_of(provisioner, burst=2, **policy)
    answers = [
        ask(gate, name.format(mac), transport, now=NOW + 10 * i)
        for i, mac in enumerate((YEALINK_T46G, YEALINK_T31G, YEALINK_T46G))
    ]
    assert [outcome(a) for a in answers] == [
        (403, reason, Charge.CHARGED, None, YEALINK_T46G),
        (403, reason, Charge.EXHAUSTED, None, YEALINK_T31G),
        (429, "rate limited", Charge.NONE, 80, YEALINK_T46G),
    ]
    assert gate.charged == {reason: 2}
    elsewhere = ask(gate, name.format(YEALINK_T46G), transport, source="198.51.100.7")
    assert outcome(elsewhere) == (403, reason, Charge.CHARGED, None, YEALINK_T46G)


def test_a_phone_answering_its_own_challenge_is_served(provisioner) -> None:
    gate = gate_of(provisioner, digest=True)
    [challenge] = ask(gate, DEVICE).challenges
    nonce = challenge.split('nonce="')[1].split('"')[0]
    answer = ask(gate, DEVICE, now=NOW + 1, authorization=digest(gate, DEVICE, nonce=nonce))
    assert isinstance(answer, Served)


def test_reconfigure_applies_the_new_nonce_lifetime_and_repeat_window(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, shared=SHARED)
    gate.reconfigure(Policy(digest=True, shared=SHARED, nonce_lifetime=30, repeat_window=10))
    late = ask(gate, DEVICE, now=NOW + 60, authorization=digest(gate, DEVICE))
    assert (late.status, late.reason, late.charge) == (401, "stale nonce", Charge.NONE)
    unknown = "/001565000001.cfg"
    charges = []
    for now in (NOW, NOW + 5, NOW + 20):
        header = digest(
            gate, unknown, "site", "site-pw-Secret", nonce=gate.digest.nonce(OFFICE, now)
        )
        charges.append(ask(gate, unknown, now=now, authorization=header).charge)
    assert charges == [Charge.CHARGED, Charge.REPEAT, Charge.CHARGED]


def test_basic_over_plain_http_spends_the_accounts_and_the_sources_budgets(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, burst=1)
    refused = ask(gate, DEVICE, authorization=basic())
    without_tls = "Basic authentication without TLS"
    assert outcome(refused) == (401, without_tls, Charge.EXHAUSTED, None, YEALINK_T46G)
    later = NOW + 30
    right = digest(gate, DEVICE, nonce=gate.digest.nonce(OFFICE, later))
    stranger = digest(gate, DEVICE, user="mallory", nonce=gate.digest.nonce(OFFICE, later))
    assert [outcome(ask(gate, DEVICE, now=later, authorization=h)) for h in (right, stranger)] == [
        (429, "rate limited", Charge.NONE, 70, YEALINK_T46G)
    ] * 2
    assert gate.charged == {without_tls: 1}


def test_a_certificate_proves_the_phone_even_from_a_source_out_of_tokens(provisioner) -> None:
    gate = gate_of(provisioner, bind_mac=True, burst=1)
    assert ask(gate, DEVICE).charge is Charge.EXHAUSTED
    mine, other = frozenset({YEALINK_T46G}), frozenset({YEALINK_T31G})
    served = ask(gate, DEVICE, Transport.HTTPS, now=NOW + 30, certificate_macs=mine)
    assert isinstance(served, Served)
    stranger = ask(gate, DEVICE, Transport.HTTPS, now=NOW + 30, certificate_macs=other)
    assert outcome(stranger) == (429, "rate limited", Charge.NONE, 70, YEALINK_T46G)


def test_tftp_from_a_source_out_of_tokens_is_limited_before_any_look_up(provisioner) -> None:
    gate = gate_of(provisioner, burst=1)
    assert ask(gate, "001565000001.cfg", Transport.TFTP).charge is Charge.EXHAUSTED
    limited = ask(gate, f"{YEALINK_T46G}.cfg", Transport.TFTP, now=NOW + 30)
    assert outcome(limited) == (429, "rate limited", Charge.NONE, 70, YEALINK_T46G)
    assert provisioner.renders == 0


def test_gates_with_one_secret_accept_each_others_nonces(provisioner) -> None:
    issuer = gate_of(provisioner, digest=True)
    header = digest(issuer, DEVICE)
    assert isinstance(ask(gate_of(provisioner, digest=True), DEVICE, authorization=header), Served)
    stranger = Gate(provisioner, Policy(digest=True))
    refused = ask(stranger, DEVICE, authorization=header)
    assert (refused.status, refused.reason) == (401, "forged or foreign nonce")


@pytest.mark.parametrize("source", ["fe80::1%eth0", "fe80::1%", "10.1.2.3%eth0", "10.1.2.3%a%b"])
def test_what_follows_a_zone_sign_never_decides_whether_a_source_is_allowed(source) -> None:
    networks = [ipaddress.ip_network("fe80::/10"), ipaddress.ip_network("10.0.0.0/8")]
    assert allowed(source, networks)
    assert not allowed(source, [ipaddress.ip_network("192.0.2.0/24")])


def test_a_shared_file_is_made_for_the_model_its_user_agent_names(provisioner) -> None:
    gate = gate_of(provisioner, digest=True)
    named = ask(gate, "/spa.cfg", user_agent=USER_AGENTS[SPA504G])
    assert isinstance(named, Served) and named.request.model == "SPA504G"


def test_the_nonce_lifetime_is_the_policys_from_the_start(provisioner) -> None:
    gate = gate_of(provisioner, digest=True, nonce_lifetime=30)
    late = ask(gate, DEVICE, now=NOW + 60, authorization=digest(gate, DEVICE))
    assert (late.status, late.reason, late.charge) == (401, "stale nonce", Charge.NONE)


def test_a_certificate_is_held_against_the_file_asked_for_never_the_user_agent(
    provisioner,
) -> None:
    gate = gate_of(provisioner, bind_mac=True)
    t46g, t31g = frozenset({YEALINK_T46G}), frozenset({YEALINK_T31G})
    t31g_ua = USER_AGENTS[YEALINK_T31G]
    served = ask(gate, DEVICE, Transport.HTTPS, certificate_macs=t46g, user_agent=t31g_ua)
    assert isinstance(served, Served)
    refused = ask(gate, DEVICE, Transport.HTTPS, certificate_macs=t31g, user_agent=t31g_ua)
    assert isinstance(refused, Refused)
    assert (refused.status, refused.reason) == (403, "client certificate names another device")


def test_a_miss_is_charged_under_its_own_reason(provisioner) -> None:
    gate = gate_of(provisioner)
    mismatch = ask(gate, f"/{YEALINK_T46G}.xml")  # a Yealink's MAC in an SPA's file name
    unknown = ask(gate, "/001565000001.cfg")
    assert isinstance(mismatch, NotFound) and isinstance(unknown, NotFound)
    assert (mismatch.reason, unknown.reason) == ("vendor mismatch", "unknown device")
    assert gate.charged == {"vendor mismatch": 1, "unknown device": 1}


def test_a_name_flood_leaves_one_cache_entry_per_model(provisioner: Provisioner) -> None:
    """Issue 13, item 11: distinct `y<12 digits>.cfg` names once filled the render cache to
    its 250,000-entry cap. Shared files exist per model: every spelling of a name maps to its
    model's one entry, and a name no model asks for is 404, never rendered, never cached and
    never charged (issue 14: a new model is not an attack)."""
    gate = gate_of(provisioner, burst=100_000)
    flooder, phone = "198.51.100.7", "192.0.2.20"
    served = misses = 0
    for code in range(2000):
        for path in (f"/y{code:012d}.cfg", f"/Y{code:012d}.CFG", f"/y{code:012d}.boot"):
            answer = gate.answer(Asker(Transport.HTTP, flooder, path), NOW)
            if isinstance(answer, Served):
                served += 1
            else:
                assert isinstance(answer, NotFound) and answer.charge is Charge.NONE
                misses += 1
    assert len(provisioner.cache) <= len(set(yealink.MODEL_CODES.values())) + 1  # + the boot
    assert len(provisioner.cache) == provisioner.renders
    assert served == 2 * len(yealink.CODE_MODELS) + 1
    assert misses == 2 * (2000 - len(yealink.CODE_MODELS)) + 1999
    assert gate.charged == {}
    before = len(provisioner.cache)
    for _ in range(100):
        answer = gate.answer(
            Asker(Transport.HTTP, phone, "/y000000000028.cfg", USER_AGENTS[YEALINK_T46G]), NOW
        )
        assert isinstance(answer, Served)
    assert len(provisioner.cache) == before


def test_a_new_model_asking_its_file_is_never_charged(provisioner: Provisioner) -> None:
    """Issue 14: a model missing from the table is not an attack: its one file name, asked
    on every poll, is 404 and costs its source nothing (the office behind it keeps its
    budget for real misses)."""
    gate = gate_of(provisioner, burst=2, rate=0.0001)
    asker = Asker(Transport.HTTP, OFFICE, "/spa9999.cfg", "Cisco/SPA9999-7.6.2 (CBT1)")
    answers = [gate.answer(asker, NOW + poll * 60) for poll in range(50)]
    assert {(type(a), a.charge) for a in answers} == {(NotFound, Charge.NONE)}  # type: ignore[union-attr]
    assert gate.charged == {}
    assert not gate.sources.blocked(budget_of(asker), NOW + 3000)
    assert isinstance(gate.answer(Asker(Transport.HTTP, OFFICE, "/spa504G.cfg"), NOW), Served)


def test_forged_tftp_sources_never_give_an_http_source_its_budget_back(
    provisioner: Provisioner,
) -> None:
    """Break-it pass: a flood of forged TFTP sources asking for unknown MACs pushed a drained
    HTTP source out of the limiter's table; it then had a fresh budget. TFTP's budgets fill
    a partition of their own."""
    gate = gate_of(provisioner, burst=3, rate=0.0001)
    gate.sources.max_sources = 50
    http = [gate.answer(Asker(Transport.HTTP, OFFICE, f"/0015{n:08x}.cfg"), NOW) for n in range(5)]
    assert [a.status if isinstance(a, Refused) else 404 for a in http] == [404] * 3 + [429] * 2
    for n in range(500):  # forged sources, each with a made-up MAC
        gate.answer(Asker(Transport.TFTP, f"10.9.{n // 250}.{n % 250}", f"0015{n:08x}.cfg"), NOW)
    again = gate.answer(Asker(Transport.HTTP, OFFICE, "/001599999999.cfg"), NOW + 1)
    assert isinstance(again, Refused) and again.status == 429


def test_http_sources_share_one_bounded_partition(provisioner: Provisioner) -> None:
    """The partitions are the transports, not the sources: a flood of HTTP sources still
    forgets the oldest HTTP source, so the table stays bounded."""
    gate = gate_of(provisioner, burst=1, rate=0.0001)
    gate.sources.max_sources = 3
    for n in range(5):
        gate.answer(Asker(Transport.HTTP, f"192.0.2.{n}", "/001599999999.cfg"), NOW)
    assert len(gate.sources) == 3


# "/%300156574B150%2Ecfg": the first character and the "." escaped, the MAC in capitals
ENCODED = f"/%{ord(YEALINK_T46G[0]):02x}{YEALINK_T46G[1:].upper()}%2Ecfg"


def test_an_http_path_is_percent_normalised_before_the_file_is_named(provisioner) -> None:
    gate = gate_of(provisioner)
    plain = ask(gate, DEVICE)
    assert isinstance(plain, Served)
    for path in (ENCODED, f"/dir/sub{ENCODED}"):
        for transport in (Transport.HTTP, Transport.HTTPS):
            served = ask(gate, path, transport, certificate_macs=frozenset())
            assert isinstance(served, Served), (path, transport)
            assert (served.body, served.mac) == (plain.body, YEALINK_T46G)
    common = ask(gate, "/y000000000028%2ecfg", user_agent=USER_AGENTS[YEALINK_T46G])
    assert isinstance(common, Served) and common.request.name == "y000000000028.cfg"
    assert provisioner.renders == 2  # one file per spelling: the cache's one entry


@pytest.mark.parametrize(
    "path",
    [
        f"/dir%2F{YEALINK_T46G}.cfg",
        f"/{YEALINK_T46G}%00.cfg",
        f"/dir%5C{YEALINK_T46G}.cfg",
        f"/%2530{YEALINK_T46G[1:]}.cfg",
        f"/{YEALINK_T46G}%2.cfg",
        "/%C3%A9.cfg",
    ],
)
def test_a_path_with_another_escape_names_no_file_and_costs_nothing(provisioner, path) -> None:
    """Like any name no vendor has: 404, uncharged (it names no MAC), nothing rendered."""
    gate = gate_of(provisioner, digest=True)
    assert ask(gate, path) == NotFound("unknown file")
    assert ask(gate, path, authorization=digest(gate, path)) == NotFound("unknown file")
    assert gate.charged == {} and provisioner.renders == 0


def test_digest_checks_the_request_target_as_sent(provisioner) -> None:
    """RFC 7616 section 3.4: `uri` is the request-target; a phone that percent-encodes its
    path signs that spelling, and the file is still the one its normal form names."""
    gate = gate_of(provisioner, digest=True)
    served = ask(gate, ENCODED, authorization=digest(gate, ENCODED))
    assert isinstance(served, Served) and served.mac == YEALINK_T46G
    for sent, signed in ((ENCODED, DEVICE), (DEVICE, ENCODED)):
        refused = ask(gate, sent, authorization=digest(gate, signed))
        assert isinstance(refused, Refused), (sent, signed)
        assert (refused.status, refused.reason) == (401, "uri does not match the request")


def test_a_tftp_file_name_is_not_percent_decoded(provisioner) -> None:
    """A TFTP name is not a URL (RFC 1350): "%30" is three characters of the name."""
    gate = gate_of(provisioner)
    assert isinstance(ask(gate, f"{YEALINK_T46G}.cfg", Transport.TFTP), Served)
    for name in (f"%30{YEALINK_T46G[1:]}.cfg", "y000000000028%2Ecfg"):
        assert ask(gate, name, Transport.TFTP) == NotFound("unknown file"), name
