"""Digest and Basic authentication, replays, the bad-answer budget and the repeat window
(the gate's decisions are in test_gate.py)."""

from __future__ import annotations

import base64
import hashlib
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xprov.auth import (
    Credentials,
    DigestAuth,
    NonceCounts,
    Proof,
    Verdict,
    claimed_user,
    parse_params,
    verify_basic,
)
from xprov.guard import allowed, macs_in
from xprov.ratelimit import BadAnswerLimiter, RepeatWindow

SECRET = b"s" * 32
ALICE = Credentials("alice", "alice-pw-Secret")


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
    nc: int = 1,
) -> str:
    """What curl --digest sends."""
    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    if qop:
        response = md5(f"{ha1}:{nonce}:{nc:08x}:abcdef:auth:{ha2}")
        extra = f', qop={qop}, nc={nc:08x}, cnonce="abcdef"'
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
    assert verify(digest, answer(nonce)) == Verdict(Proof.OK, "alice")
    fresh = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(fresh, qop=None)) == Verdict(Proof.OK, "alice")  # RFC 2069
    assert verify(digest, answer(nonce, nc=2), now=1299.0) == Verdict(Proof.OK, "alice")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"password": "wrong"}, "wrong password"),
        ({"user": "mallory"}, "unknown user"),
        ({"realm": "other"}, "wrong realm"),
        ({"uri": "/001565000002.cfg"}, "uri does not match the request"),
        ({"qop": "auth-int"}, "unsupported qop"),
    ],
)
def test_bad_responses(digest: DigestAuth, change: dict, reason: str) -> None:
    verdict = verify(digest, answer(digest.nonce("10.0.0.5", 1000.0), **change))
    assert verdict == Verdict(Proof.FAILED, None, reason)
    assert "alice-pw-Secret" not in repr(verdict)


def test_nonces_are_bound_to_the_client_and_expire(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce), client="10.0.0.6").reason == "forged or foreign nonce"
    assert verify(digest, answer("bm9uY2U"), client="10.0.0.5").reason == (
        "forged or foreign nonce"
    )
    assert verify(digest, answer(nonce), now=1301.0) == Verdict(Proof.STALE, "alice", "stale nonce")
    assert verify(digest, answer(nonce), now=999.0).proof is Proof.STALE  # from the future
    other = DigestAuth(b"x" * 32)
    assert (
        other.verify(
            answer(nonce), "GET", "/001565000001.cfg", "10.0.0.5", 1000.0, {"alice": ALICE}, None
        ).reason
        == "forged or foreign nonce"
    )


def test_basic() -> None:
    header = "Basic " + base64.b64encode(b"alice:alice-pw-Secret").decode()
    assert verify_basic(header, {"alice": ALICE}, None) == Verdict(Proof.OK, "alice")
    wrong = "Basic " + base64.b64encode(b"alice:nope").decode()
    assert verify_basic(wrong, {"alice": ALICE}, None).reason == "wrong password"
    assert verify_basic("Basic !!!", {}, None).reason == "malformed Authorization header"
    shared = Credentials("site", "site-pw-Secret")
    site = "Basic " + base64.b64encode(b"site:site-pw-Secret").decode()
    assert verify_basic(site, {}, shared) == Verdict(Proof.OK, "site")
    assert verify_basic(site, {}, None).reason == "unknown user"
    assert verify_basic("Basic " + base64.b64encode(b"\xff:x").decode(), {}, shared).reason == (
        "malformed Authorization header"
    )


@given(st.text(max_size=300))
def test_any_header_is_handled(header: str) -> None:
    digest = DigestAuth(SECRET)
    verdict = digest.verify(
        "Digest " + header, "GET", "/x.cfg", "1.2.3.4", 0.0, {"alice": ALICE}, None
    )
    assert verdict.proof is Proof.FAILED and verdict.user is None
    assert verify_basic("Basic " + header, {"alice": ALICE}, None).proof is Proof.FAILED


def test_every_challenge_has_its_own_nonce(digest: DigestAuth) -> None:
    """Two phones behind one NAT address, challenged in the same second, never share a
    nonce (a shared one would make the second phone's first answer look like a replay)."""
    nonces = {digest.nonce("10.0.0.5", 1000.0) for _ in range(100)}
    assert len(nonces) == 100
    first, second = sorted(nonces)[:2]
    assert verify(digest, answer(first)).proof is Proof.OK
    assert verify(digest, answer(second)).proof is Proof.OK


def test_a_replayed_answer_is_refused_and_the_next_count_served(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    captured = answer(nonce)
    assert verify(digest, captured).proof is Proof.OK
    assert verify(digest, captured, now=1001.0) == Verdict(
        Proof.REPLAYED, "alice", "replayed answer"
    )
    assert verify(digest, answer(nonce, nc=2), now=1002.0).proof is Proof.OK
    assert verify(digest, answer(nonce, nc=2), now=1003.0).proof is Proof.REPLAYED
    assert verify(digest, answer(nonce, nc=1), now=1003.0).proof is Proof.REPLAYED  # lower
    assert verify(digest, answer(nonce, nc=7), now=1004.0).proof is Proof.OK  # gaps are fine
    old = digest.nonce("10.0.0.5", 1000.0)
    once = answer(old, qop=None)  # RFC 2069: no count, so each nonce serves once
    assert verify(digest, once).proof is Proof.OK
    assert verify(digest, once).proof is Proof.REPLAYED


def test_a_wrong_password_never_spends_a_nonce_count(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    for _ in range(3):
        assert verify(digest, answer(nonce, password="guess")).reason == "wrong password"
    assert len(digest.counts) == 0
    assert verify(digest, answer(nonce)).proof is Proof.OK


@pytest.mark.parametrize("nc", ["1", "0000000g", "000000001", ""])
def test_malformed_nonce_counts(digest: DigestAuth, nc: str) -> None:
    header = answer(digest.nonce("10.0.0.5", 1000.0)).replace("nc=00000001", f"nc={nc}")
    assert verify(digest, header) == Verdict(Proof.FAILED, None, "malformed nonce count")


def test_nonce_counts_are_bounded_and_forgetting_never_lets_a_replay_through() -> None:
    counts = NonceCounts(max_nonces=3)
    for stamp, nonce in enumerate("abcd"):
        assert counts.accept(nonce, stamp, 1) is True
    assert len(counts) == 3 and counts.forgotten_until == 0
    assert counts.accept("a", 0, 2) is False  # forgotten: asked again with a fresh nonce
    assert counts.accept("b", 1, 1) is False and counts.accept("b", 1, 2) is True
    assert counts.accept("e", 4, 1) is True  # issued after the forgotten one: fine
    for i in range(10_000):  # a flood of fresh nonces never grows the table
        counts.accept(f"n{i}", 10 + i, 1)
    assert len(counts) == 3
    counts.expire(before=10_009)  # issued 10,007 and 10,008 go
    assert len(counts) == 1


def test_nonce_count_memory_under_a_flood_of_good_answers() -> None:
    digest = DigestAuth(SECRET, counts=NonceCounts(max_nonces=50))
    for i in range(500):
        nonce = digest.nonce("10.0.0.5", 1000.0 + i)
        assert verify(digest, answer(nonce), now=1000.0 + i).proof is Proof.OK
    assert len(digest.counts) == 50


def test_non_ascii_answers_are_refused_not_raised(digest: DigestAuth) -> None:
    header = answer(digest.nonce("10.0.0.5", 1000.0))
    assert verify(digest, header.replace('response="', 'response="\u00e9')).proof is Proof.FAILED
    forged = base64.urlsafe_b64encode("1000:ab:\u00e9\u00e9".encode()).decode()
    assert verify(digest, answer(forged)).reason == "forged or foreign nonce"


def test_claimed_user() -> None:
    assert claimed_user('Digest username="alice", realm="xprov"') == "alice"
    assert claimed_user("Basic " + base64.b64encode(b"bob:pw:x").decode()) == "bob"
    assert claimed_user("Basic !!!") is None and claimed_user("Bearer x") is None
    assert claimed_user("Digest realm=x") is None


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


def test_repeat_window() -> None:
    window = RepeatWindow(window=600, max_keys=3)
    assert window.first(("10.0.0.5", "a"), 0.0) is True
    assert window.first(("10.0.0.5", "a"), 599.0) is False  # the same miss again: free
    assert window.first(("10.0.0.6", "a"), 10.0) is True  # another source pays its own
    assert window.first(("10.0.0.5", "a"), 600.0) is True  # a new window
    for i in range(100):
        window.first(("10.0.0.7", str(i)), 700.0)
    assert len(window) == 3  # bounded: a forgotten key costs again, never less
    assert window.first(("10.0.0.5", "a"), 700.0) is True
    assert RepeatWindow(window=0).first("k", 0.0) is True


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


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (("algorithm=MD5", "algorithm=MD5-sess"), "unsupported algorithm"),
        (("algorithm=MD5", "algorithm=SHA-256"), "unsupported algorithm"),
        ((', cnonce="abcdef"', ""), "missing cnonce"),
        (("nc=00000001", "nc=00000000"), "malformed nonce count"),
    ],
)
def test_digest_is_strict(digest: DigestAuth, change: tuple[str, str], reason: str) -> None:
    """An MD5 answer labelled with another algorithm, or a qop=auth answer without its
    cnonce or with a zero count, is not accepted (RFC 7616 section 3.4)."""
    header = answer(digest.nonce("10.0.0.5", 1000.0)).replace(*change)
    assert verify(digest, header) == Verdict(Proof.FAILED, None, reason)
    lower = answer(digest.nonce("10.0.0.5", 1000.0)).replace("algorithm=MD5", "algorithm=md5")
    assert verify(digest, lower).proof is Proof.OK


def test_an_unknown_user_costs_the_same_work(digest: DigestAuth, monkeypatch) -> None:
    """No timing oracle for user names: an unknown user is hashed like a known one."""
    import xprov.auth

    calls: list[str] = []
    real = xprov.auth._md5
    monkeypatch.setattr(xprov.auth, "_md5", lambda text: calls.append("md5") or real(text))
    nonce = digest.nonce("10.0.0.5", 1000.0)
    verify(digest, answer(nonce, password="guess"))
    known = len(calls)
    calls.clear()
    assert verify(digest, answer(nonce, user="mallory")).reason == "unknown user"
    assert len(calls) == known == 3


def test_a_nonce_is_one_nonce_however_it_is_spelled(digest: DigestAuth) -> None:
    """The replay table knows a nonce by what it decodes to: padding or spacing added by a
    client (or an attacker) does not give it a fresh count."""
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce)).proof is Proof.OK
    padded = nonce + "=" * (-len(nonce) % 4) if len(nonce) % 4 else nonce + "===="
    for variant in (padded, nonce.rstrip("=")):
        assert verify(digest, answer(variant)).proof in (Proof.REPLAYED, Proof.FAILED)
    assert verify(digest, answer(nonce, nc=2)).proof is Proof.OK


def test_a_nonce_used_without_a_count_serves_no_more(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce, qop=None)).proof is Proof.OK
    assert verify(digest, answer(nonce, nc=9)).proof is Proof.REPLAYED


def test_refusal_reasons_are_a_fixed_set(digest: DigestAuth) -> None:
    """Reasons label metrics: nothing a client sends may become part of one."""
    reasons = set()
    for i in range(200):
        header = answer(digest.nonce("10.0.0.5", 1000.0)).replace(
            "algorithm=MD5", f"algorithm=x{i}"
        )
        reasons.add(verify(digest, header).reason)
        header = answer(digest.nonce("10.0.0.5", 1000.0), qop=f"q{i}")
        reasons.add(verify(digest, header).reason)
    assert reasons == {"unsupported algorithm", "unsupported qop"}
