"""Digest and Basic authentication, replays, the bad-answer budget and the repeat window
(the gate's decisions are in test_gate.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re

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
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


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


@pytest.mark.fuzz
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
        (('username="alice", ', ""), "unknown user"),
        ((', uri="/001565000001.cfg"', ""), "uri does not match the request"),
        (('nonce="', 'nonce="x'), "forged or foreign nonce"),
        (("response=", "ignored="), "wrong password"),
        ((", nc=00000001", ""), "malformed nonce count"),
        (("nc=00000001", "nc=0000001"), "malformed nonce count"),
        (("nc=00000001", "nc=1x000000"), "malformed nonce count"),
    ],
)
def test_digest_is_strict(digest: DigestAuth, change: tuple[str, str], reason: str) -> None:
    """An MD5 answer labelled with another algorithm, a qop=auth answer without its cnonce
    or with a zero count (RFC 7616 section 3.4), or any parameter missing or malformed, is
    not accepted, and the reason says which."""
    header = answer(digest.nonce("10.0.0.5", 1000.0)).replace(*change)
    assert verify(digest, header) == Verdict(Proof.FAILED, None, reason)
    lower = answer(digest.nonce("10.0.0.5", 1000.0)).replace("algorithm=MD5", "algorithm=md5")
    assert verify(digest, lower).proof is Proof.OK


@pytest.mark.parametrize("qop", ["auth", None])
def test_an_unknown_user_costs_the_same_work(qop: str | None) -> None:
    """No timing oracle for user names: an unknown user is hashed like a known one."""
    hashed: list[str] = []
    digest = DigestAuth(SECRET, md5=lambda text: hashed.append(text) or md5(text))
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce, password="guess", qop=qop)).reason == "wrong password"
    known = len(hashed)
    hashed.clear()
    assert verify(digest, answer(nonce, user="mallory", qop=qop)).reason == "unknown user"
    assert len(hashed) == known == 3
    assert hashed[0].startswith("mallory:xprov:")  # with a password nobody knows


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


CHALLENGE = re.compile(
    r'Digest realm="(?P<realm>[^"]*)", qop="auth", algorithm=MD5, '
    r'nonce="(?P<nonce>[A-Za-z0-9_-]+)"(?P<stale>, stale=true)?'
)


@pytest.mark.parametrize("stale", [False, True])
def test_the_challenge_names_realm_qop_algorithm_nonce_and_stale_only_when_stale(
    stale: bool,
) -> None:
    digest = DigestAuth(SECRET)  # the default realm
    fields = CHALLENGE.fullmatch(digest.challenge("10.0.0.5", 1000.0, stale=stale))
    assert fields is not None
    assert fields["realm"] == "xprov" and bool(fields["stale"]) is stale
    assert verify(digest, answer(fields["nonce"])).proof is Proof.OK
    default = CHALLENGE.fullmatch(digest.challenge("10.0.0.5", 1000.0))
    assert default is not None and default["stale"] is None  # not stale unless asked


def test_the_challenge_names_the_configured_realm() -> None:
    digest = DigestAuth(SECRET, realm="site-a")
    fields = CHALLENGE.fullmatch(digest.challenge("10.0.0.5", 1000.0))
    assert fields is not None and fields["realm"] == "site-a"
    header = answer(fields["nonce"], realm="site-a")
    assert verify(digest, header) == Verdict(Proof.OK, "alice")
    assert verify(digest, header.replace('"site-a"', '"xprov"')).reason == "wrong realm"


def unpadded_b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("now", [1000.9, 10_000.0, 100_000.0])  # 0, 2 and 1 padding bytes
def test_a_nonce_is_stamp_random_and_their_hmac_for_the_client(now: float) -> None:
    """The documented format: base64url without padding of `stamp:random:HMAC`, the HMAC
    (SHA-256, 32 hex digits) over `stamp:random:client` with the configured secret."""
    digest = DigestAuth(SECRET)
    for _ in range(20):
        nonce = digest.nonce("10.0.0.5", now)
        stamp, salt, mac = base64.urlsafe_b64decode(nonce + "==").decode().split(":")
        assert stamp == str(int(now)) and re.fullmatch("[0-9a-f]{16}", salt)
        signed = hmac.new(SECRET, f"{stamp}:{salt}:10.0.0.5".encode(), hashlib.sha256)
        assert mac == signed.hexdigest()[:32]
        assert nonce == unpadded_b64(f"{stamp}:{salt}:{mac}")
    assert verify(digest, answer(nonce), now=now).proof is Proof.OK


@pytest.mark.parametrize(
    ("now", "proof"),
    [
        (999.0, Proof.STALE),  # issued in the future
        (1000.0, Proof.OK),
        (1300.0, Proof.OK),  # exactly the default lifetime
        (1300.5, Proof.STALE),
    ],
)
def test_a_nonce_lives_exactly_its_lifetime(now: float, proof: Proof) -> None:
    digest = DigestAuth(SECRET)  # the default lifetime: 300 s
    nonce = digest.nonce("10.0.0.5", 1000.7)  # stamped 1000
    assert verify(digest, answer(nonce), now=now) == Verdict(
        proof, "alice", "stale nonce" if proof is Proof.STALE else ""
    )


def test_counts_of_expired_nonces_are_forgotten(digest: DigestAuth) -> None:
    for now in (1000.0, 1300.0):
        assert verify(digest, answer(digest.nonce("10.0.0.5", now)), now=now).proof is Proof.OK
    assert len(digest.counts) == 2  # the nonce of 1000 still lives at 1300
    assert verify(digest, answer(digest.nonce("10.0.0.5", 1301.0)), now=1301.0).proof is Proof.OK
    assert len(digest.counts) == 2  # ...and not at 1301


SITE = Credentials("site", "site-pw-Secret")


@pytest.mark.parametrize(
    ("lookup", "default", "user", "proof"),
    [
        (None, SITE, "site", Proof.OK),  # the shared account alone
        ({"alice": ALICE}, SITE, "site", Proof.OK),
        ({"alice": ALICE}, SITE, "alice", Proof.OK),
        ({"alice": ALICE}, None, "site", Proof.FAILED),
        (None, None, "alice", Proof.FAILED),
        ({}, Credentials("other", "site-pw-Secret"), "site", Proof.FAILED),
    ],
)
def test_digest_accepts_a_phone_account_or_the_shared_one(
    digest: DigestAuth, lookup, default, user: str, proof: Proof
) -> None:
    password = {"alice": ALICE.password, "site": SITE.password}[user]
    header = answer(digest.nonce("10.0.0.5", 1000.0), user=user, password=password)
    verdict = digest.verify(header, "GET", "/001565000001.cfg", "10.0.0.5", 1000.0, lookup, default)
    expected = Verdict(proof, user) if proof is Proof.OK else Verdict(proof, None, "unknown user")
    assert verdict == expected


def test_a_nonce_missing_entirely_is_foreign(digest: DigestAuth) -> None:
    header = re.sub(r'nonce="[^"]*", ', "", answer(digest.nonce("10.0.0.5", 1000.0)))
    assert verify(digest, header) == Verdict(Proof.FAILED, None, "forged or foreign nonce")


@pytest.mark.parametrize(
    "edit",
    [
        (", algorithm=MD5", ""),  # MD5 is the default (RFC 7616 section 3.3)
        ("Digest ", "DIGEST "),
        ("username=", "UserName="),
        ("uri=", "URI="),
    ],
)
def test_optional_and_differently_cased_parts_are_accepted(
    digest: DigestAuth, edit: tuple[str, str]
) -> None:
    header = answer(digest.nonce("10.0.0.5", 1000.0)).replace(*edit)
    assert verify(digest, header) == Verdict(Proof.OK, "alice")


def test_an_upper_case_response_is_the_same_response(digest: DigestAuth) -> None:
    header = answer(digest.nonce("10.0.0.5", 1000.0))
    response = re.search('response="([0-9a-f]+)"', header)[1]
    assert verify(digest, header.replace(response, response.upper())).proof is Proof.OK


def test_the_uri_may_carry_a_query_the_path_does_not(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    header = answer(nonce, uri="/001565000001.cfg?mac=001565000001")
    assert verify(digest, header) == Verdict(Proof.OK, "alice")
    header = answer(nonce, uri="/001565000001.cfg?a?b", nc=2)  # the path ends at the first ?
    assert verify(digest, header) == Verdict(Proof.OK, "alice")
    assert verify(digest, answer(nonce, uri="/001565000001.cfg/x?y"), now=1001.0).reason == (
        "uri does not match the request"
    )


def test_the_highest_count_still_comes_after_a_nonce_used_without_one(
    digest: DigestAuth,
) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce, qop=None)).proof is Proof.OK
    assert verify(digest, answer(nonce, nc=0xFFFFFFFF)).proof is Proof.REPLAYED
    fresh = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(fresh, nc=0xFFFFFFFF)).proof is Proof.OK


def test_a_count_is_read_as_hexadecimal(digest: DigestAuth) -> None:
    nonce = digest.nonce("10.0.0.5", 1000.0)
    assert verify(digest, answer(nonce, nc=0x10)).proof is Proof.OK
    assert verify(digest, answer(nonce, nc=0x0F)).proof is Proof.REPLAYED  # "0000000f" < 16


def padded_to(header: str, size: int) -> str:
    return header + ", x=" + "y" * (size - len(header) - 4)


def test_a_digest_header_of_up_to_2048_characters_is_read(digest: DigestAuth) -> None:
    header = answer(digest.nonce("10.0.0.5", 1000.0))
    assert verify(digest, padded_to(header, 2049)) == Verdict(
        Proof.FAILED, None, "malformed Authorization header"
    )
    assert verify(digest, padded_to(header, 2048)) == Verdict(Proof.OK, "alice")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_basic_header_of_up_to_2048_characters_is_read() -> None:
    password = "p" * 1524  # "Basic " and 2040 base64 digits, then spaces (stripped)
    accounts = {"alice": Credentials("alice", password)}
    header = basic("alice", password)
    assert verify_basic(header.ljust(2048), accounts, None) == Verdict(Proof.OK, "alice")
    assert verify_basic(header.ljust(2049), accounts, None).reason == (
        "malformed Authorization header"
    )


@pytest.mark.parametrize(
    ("header", "params"),
    [
        ('Digest a="b", c=d', {"a": "b", "c": "d"}),
        ('digest A="x\\"y\\\\z"', {"a": 'x"y\\z'}),  # escapes undone, names lower-cased
        ('DiGeSt  a = "b" ,c=""', {"a": "b", "c": ""}),
        ("Digest", None),
        ('Basic a="b"', None),
        ('Digestx a="b"', None),
    ],
)
def test_parse_params(header: str, params: dict | None) -> None:
    assert parse_params(header) == params


def test_claimed_user_reads_basic_and_digest_in_any_case() -> None:
    assert claimed_user("BASIC " + base64.b64encode(b"bob:pw").decode()) == "bob"
    assert claimed_user('dIGEST username="alice"') == "alice"


def test_digest_works_where_md5_is_allowed_only_for_non_security_use(monkeypatch) -> None:
    """FIPS-mode OpenSSL refuses MD5 unless the caller declares it not for security: Digest
    (a legacy protocol, not the server's own security) says so."""
    digest = DigestAuth(SECRET)
    header = answer(digest.nonce("10.0.0.5", 1000.0))  # computed before MD5 is restricted
    real = hashlib.md5

    def fips_md5(data: bytes = b"", *, usedforsecurity: bool = True):
        if usedforsecurity is not False:
            raise ValueError("unsupported hash type md5 (FIPS mode)")
        return real(data, usedforsecurity=False)

    monkeypatch.setattr(hashlib, "md5", fips_md5)  # the standard library's, not xprov's
    assert verify(digest, header) == Verdict(Proof.OK, "alice")


def test_nonce_counts_remember_a_hundred_thousand_nonces_by_default() -> None:
    counts = NonceCounts()
    assert counts.accept("first", 0, 1) is True  # issued at the epoch: nothing forgotten yet
    for i in range(1, 100_001):
        counts.accept(f"n{i}", i, 1)
    assert len(counts) == 100_000 and counts.forgotten_until == 0
    assert counts.accept("first", 0, 2) is False and counts.accept("n1", 1, 2) is True


def test_a_wrong_password_is_wrong_even_with_an_expired_nonce(digest: DigestAuth) -> None:
    nonce = parse_params(digest.challenge("10.0.0.5", 1000.0))["nonce"]  # type: ignore[index]
    wrong = verify(digest, answer(nonce, password="guess-Secret"), now=1301.0)
    assert wrong == Verdict(Proof.FAILED, reason="wrong password")
    right = verify(digest, answer(nonce), now=1301.0)
    assert right == Verdict(Proof.STALE, "alice", "stale nonce")


@pytest.mark.parametrize("uri", ["/", "/001565000001", "/001565000001.cfg/x", "/001565000001.cf"])
def test_an_answer_for_another_uri_is_refused_even_a_prefix(digest: DigestAuth, uri: str) -> None:
    nonce = parse_params(digest.challenge("10.0.0.5", 1000.0))["nonce"]  # type: ignore[index]
    verdict = verify(digest, answer(nonce, uri=uri))
    assert verdict == Verdict(Proof.FAILED, reason="uri does not match the request")


def test_forgetting_an_older_nonce_never_lowers_what_counts_as_forgotten() -> None:
    counts = NonceCounts(max_nonces=2)
    for nonce, issued in (("b", 200), ("a", 100), ("c", 205), ("d", 206)):  # forgets b, then a
        assert counts.accept(nonce, issued, 1)
    assert counts.forgotten_until == 200
    assert counts.accept("b", 200, 1) is False  # a replay of a forgotten nonce
