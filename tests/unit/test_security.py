"""Digest and Basic authentication, the bad-answer budget and the guard's decisions."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xprov.auth import Credentials, DigestAuth, parse_params, verify_basic
from xprov.guard import Guard, allowed, macs_in
from xprov.ratelimit import BadAnswerLimiter

SECRET = b"s" * 32
ALICE = Credentials("alice", "alice-pw-Secret")
ACCOUNTS = {
    "alice": (ALICE, "001565000001"),
    "bob": (Credentials("bob", "bob-pw-Secret"), "001565000002"),
}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(
    nonce: str,
    user: str = "alice",
    password: str = "alice-pw-Secret",
    uri: str = "/001565000001.cfg",
    method: str = "GET",
    realm: str = "xprov",
    qop: str | None = "auth",
) -> str:
    """What curl --digest sends."""
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    if qop:
        response = md5(f"{ha1}:{nonce}:00000001:abcdef:auth:{ha2}")
        extra = f', qop={qop}, nc=00000001, cnonce="abcdef"'
    else:
        response, extra = md5(f"{ha1}:{nonce}:{ha2}"), ""
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5{extra}'
    )


@pytest.fixture
def digest() -> DigestAuth:
    return DigestAuth(SECRET, lifetime=300)


def verify(
    digest: DigestAuth,
    header: str,
    client: str = "10.0.0.5",
    now: float = 1000.0,
    path: str = "/001565000001.cfg",
):
    return digest.verify(header, "GET", path, client, now, {"alice": ALICE}, None)


def test_challenge(digest: DigestAuth) -> None:
    challenge = digest.challenge("10.0.0.5", 1000.0)
    params = parse_params(challenge)
    assert params is not None and params["realm"] == "xprov" and params["qop"] == "auth"
    assert params["algorithm"] == "MD5" and params["nonce"]


def test_good_response(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce)).ok
    assert verify(digest, answer(nonce, qop=None)).ok  # RFC 2069 firmware
    assert verify(digest, answer(nonce), now=1299.0).user == "alice"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "wrong"}, "wrong password"),
        ({"user": "mallory"}, "unknown user"),
        ({"realm": "other"}, "wrong realm"),
        ({"uri": "/001565000002.cfg"}, "uri does not match the request"),
        ({"qop": "auth-int"}, "unsupported qop 'auth-int'"),
    ],
)
def test_bad_responses(digest: DigestAuth, change: dict, reason: str) -> None:
    verdict = verify(digest, answer(digest.nonce("10.0.0.5", 1000.0), **change))
    assert not verdict.ok and verdict.reason == reason
    assert "alice-pw-Secret" not in repr(verdict)


def test_nonces_are_bound_to_the_client_and_expire(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce), client="10.0.0.6").reason == "forged or foreign nonce"
    assert verify(digest, answer("bm9uY2U"), client="10.0.0.5").reason == (
        "forged or foreign nonce"
    )
    stale = verify(digest, answer(nonce), now=1301.0)
    assert not stale.ok and stale.stale and stale.user == "alice"
    other = DigestAuth(b"x" * 32)
    assert (
        other.verify(
            answer(nonce), "GET", "/001565000001.cfg", "10.0.0.5", 1000.0, {"alice": ALICE}, None
        ).reason
        == "forged or foreign nonce"
    )


def test_basic() -> None:
    header = "Basic " + base64.b64encode(b"alice:alice-pw-Secret").decode()
    assert verify_basic(header, {"alice": ALICE}, None).ok
    wrong = "Basic " + base64.b64encode(b"alice:nope").decode()
    assert verify_basic(wrong, {"alice": ALICE}, None).reason == "wrong password"
    assert verify_basic("Basic !!!", {}, None).reason == "malformed Authorization header"
    shared = Credentials("site", "site-pw-Secret")
    site = "Basic " + base64.b64encode(b"site:site-pw-Secret").decode()
    assert verify_basic(site, {}, shared).ok


@given(st.text(max_size=300))
def test_any_header_is_handled(header: str) -> None:
    digest = DigestAuth(SECRET)
    verdict = digest.verify(
        "Digest " + header, "GET", "/x.cfg", "1.2.3.4", 0.0, {"alice": ALICE}, None
    )
    assert not verdict.ok
    assert not verify_basic("Basic " + header, {"alice": ALICE}, None).ok


def test_bad_answer_budget() -> None:
    limiter = BadAnswerLimiter(burst=3, per_second=0.1)
    assert not limiter.blocked("1.2.3.4", 0.0)
    assert [limiter.spend("1.2.3.4", 0.0) for _ in range(3)] == [False, False, True]
    assert limiter.blocked("1.2.3.4", 0.0) and not limiter.blocked("5.6.7.8", 0.0)
    assert limiter.blocked("1.2.3.4", 9.9)
    assert not limiter.blocked("1.2.3.4", 10.0)  # one token back after 10 s
    small = BadAnswerLimiter(burst=1, per_second=1, max_sources=10)
    for i in range(100):
        small.spend(f"10.0.0.{i}", 0.0)
    assert len(small) == 10


def test_allow_lists() -> None:
    networks = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]
    assert allowed("10.1.2.3", networks) and allowed("2001:db8::5", networks)
    assert allowed("::ffff:10.0.0.1", networks)  # an IPv4 client on an IPv6 socket
    assert not allowed("192.0.2.1", networks) and not allowed("junk", networks)
    assert allowed("192.0.2.1", [])


def test_macs_in_certificate_names() -> None:
    assert macs_in(["001565000001"]) == {"001565000001"}
    assert macs_in(["SEP0015.6500.0002", "DNS:spa-00:02:FD:FF:21:03.example"]) == {
        "001565000002",
        "0002fdff2103",
    }
    assert macs_in(["Yealink Equipment Issuing CA", "0015650000011"]) == set()


def guard(**changes) -> Guard:
    values = dict(
        limiter=BadAnswerLimiter(20, 0.1),
        digest=DigestAuth(SECRET),
        basic_over_tls=True,
        default=None,
        bind_mac=False,
    )
    return Guard(**{**values, **changes})


def authorize(
    g: Guard,
    header: str | None,
    mac: str = "001565000001",
    tls: bool = False,
    cert_macs: set[str] | None = None,
    path: str = "/001565000001.cfg",
):
    return g.authorize(mac, "GET", path, header, "10.0.0.5", tls, cert_macs, ACCOUNTS, 1000.0)


def test_guard_asks_for_credentials_without_charging() -> None:
    refusal = authorize(guard(), None)
    assert refusal is not None and refusal.code == 401 and not refusal.spend
    assert refusal.challenge and refusal.challenge.startswith("Digest realm=")


def test_guard_own_files_only() -> None:
    g = guard()
    nonce = g.digest.nonce("10.0.0.5", 1000.0)  # type: ignore[union-attr]
    assert authorize(g, answer(nonce)) is None
    theft = authorize(
        g, answer(nonce, uri="/001565000002.cfg"), mac="001565000002", path="/001565000002.cfg"
    )
    assert theft is not None and (theft.code, theft.reason) == (
        403,
        "credentials of another device",
    )
    wrong = authorize(g, answer(nonce, password="guess"))
    assert wrong is not None and wrong.code == 401 and wrong.spend


def test_guard_shared_credentials_open_every_phone() -> None:
    g = guard(default=Credentials("site", "site-pw-Secret"))
    nonce = g.digest.nonce("10.0.0.5", 1000.0)  # type: ignore[union-attr]
    header = answer(nonce, user="site", password="site-pw-Secret", uri="/001565000009.cfg")
    assert authorize(g, header, mac="001565000009", path="/001565000009.cfg") is None


def test_guard_basic_only_over_tls() -> None:
    g = guard()
    header = "Basic " + base64.b64encode(b"alice:alice-pw-Secret").decode()
    refusal = authorize(g, header)
    assert refusal is not None and refusal.reason == "Basic authentication without TLS"
    assert authorize(g, header, tls=True) is None


def test_guard_binds_the_certificate_to_the_mac() -> None:
    g = guard(digest=None, bind_mac=True)
    assert authorize(g, None, tls=True, cert_macs={"001565000001"}) is None
    refusal = authorize(g, None, tls=True, cert_macs={"001565000002"})
    assert refusal is not None and refusal.code == 403
    assert authorize(guard(digest=None), None) is None  # nothing to check
