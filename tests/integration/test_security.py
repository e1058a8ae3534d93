"""Security against a running xprov: TLS and device certificates, Digest and Basic
authentication, MAC enumeration, slow and greedy clients, allow-lists."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.client
import re
import socket
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tests.certs import Pki
from tests.helpers import (
    ROOT,
    SAMPLE_PASSWORDS,
    SPA504G,
    YEALINK_T31G,
    YEALINK_T46G,
    XprovProcess,
    copy_templates,
    free_port,
    inventory_with_accounts,
    port_open,
    sample_config,
    wait_for,
)
from xprov.auth import parse_params
from xprov.security_log import BURST, PER_SECOND
from xprov.tftp import codec
from xprov.vendors import yealink

T46G_USER, T46G_PASSWORD = "t46g", "http-T46G-Secret"
SPA_USER, SPA_PASSWORD = "spa504g", "http-SPA-Secret"


def inventory() -> str:
    return inventory_with_accounts(
        {"T46G": (T46G_USER, T46G_PASSWORD), "SPA504G": (SPA_USER, SPA_PASSWORD)}
    )


def curl(*args: str) -> tuple[int, int, dict[str, str]]:
    """(curl's exit code, HTTP status, response headers)."""
    done = subprocess.run(
        [
            "curl",
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    head, _, code = done.stdout.rpartition("\n")
    headers = {}
    for line in head.splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return done.returncode, int(code or 0), headers


def server(tmp_path, extra: str, **kwargs) -> tuple[XprovProcess, int, int]:
    http, https = free_port(), free_port()
    config = sample_config(tmp_path, http_port=http, inventory=inventory(), **kwargs)
    config.write_text(config.read_text() + extra.replace("HTTPS_PORT", str(https)))
    return XprovProcess(config, http, tmp_path / "xprov.log"), http, https


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls(tmp_path_factory, pki):
    """HTTPS requiring a device certificate from the phone CA, bound to the MAC."""
    extra = f"""
[https]
listen = ["127.0.0.1:HTTPS_PORT"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"
client_ca = ["{pki.ca[0]}"]
client_certificate = "require"
bind_mac = true
"""
    proc, http, https = server(tmp_path_factory.mktemp("mtls"), extra)
    text = proc.config.read_text()  # phones fetch from the URL: with bind_mac, over TLS
    url = f'url = "http://127.0.0.1:{http}"'
    proc.config.write_text(text.replace(url, f'url = "https://127.0.0.1:{https}"'))
    with proc:
        wait_for(lambda: port_open(https), 10, "https")
        yield proc, https


def tls(https: int, name: str, pki: Pki, *args: str) -> tuple[int, int, dict[str, str]]:
    return curl("--cacert", str(pki.server_ca[0]), *args, f"https://127.0.0.1:{https}/{name}")


def with_cert(cert: tuple) -> list[str]:
    return ["--cert", str(cert[0]), "--key", str(cert[1])]


def test_device_certificate_naming_the_mac(mtls, pki) -> None:
    _, https = mtls
    assert tls(https, f"{YEALINK_T46G}.cfg", pki, *with_cert(pki.t46g))[:2] == (0, 200)
    assert tls(https, f"{SPA504G}.xml", pki, *with_cert(pki.spa))[:2] == (0, 200)  # SAN


def test_certificate_of_another_device_is_forbidden(mtls, pki) -> None:
    _, https = mtls
    assert tls(https, f"{YEALINK_T31G}.cfg", pki, *with_cert(pki.t46g))[:2] == (0, 403)
    assert tls(https, "y000000000028.cfg", pki, *with_cert(pki.t46g))[:2] == (0, 200)  # shared


def test_untrusted_server_certificate(mtls) -> None:
    _, https = mtls
    code, _, _ = curl(f"https://127.0.0.1:{https}/{YEALINK_T46G}.cfg")
    assert code == 60  # curl: peer certificate cannot be authenticated


def test_no_or_foreign_client_certificate_fails_the_handshake(mtls, pki) -> None:
    _, https = mtls
    assert tls(https, f"{YEALINK_T46G}.cfg", pki)[0] != 0
    assert tls(https, f"{YEALINK_T46G}.cfg", pki, *with_cert(pki.rogue))[0] != 0


def test_tls_below_1_2_is_refused(mtls, pki) -> None:
    _, https = mtls
    code = tls(
        https, f"{YEALINK_T46G}.cfg", pki, "--tlsv1.1", "--tls-max", "1.1", *with_cert(pki.t46g)
    )[0]
    assert code != 0


SHARED_USER, SHARED_PASSWORD = "site", "site-pw-Secret"
SECRETS = [
    *SAMPLE_PASSWORDS,
    T46G_PASSWORD,
    SPA_PASSWORD,
    SHARED_PASSWORD,
    "dev-admin-token-change-me",
]


@pytest.fixture(scope="module")
def digest(tmp_path_factory, pki):
    """Digest on HTTP and HTTPS, Basic on HTTPS only, a shared user, TFTP, a small
    bad-answer budget, and a broken per-device boot template (the render failure path)."""
    tmp = tmp_path_factory.mktemp("digest")
    templates = copy_templates(tmp)
    (templates / "yealink" / "device.boot").write_text("#!version:1.0.0.1\n{{ vars.no_such }}\n")
    extra = f"""
[https]
listen = ["127.0.0.1:HTTPS_PORT"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"

[auth]
mode = "digest"
basic_over_tls = true
user = "{SHARED_USER}"
password = "{SHARED_PASSWORD}"
"""
    tftp = free_port(socket.SOCK_DGRAM)
    proc, http, https = server(
        tmp,
        extra,
        tftp_port=tftp,
        templates=templates,
        replace={
            "bad_answer_rate = 0.1 ": "bad_answer_rate = 0.01 ",
            "header_timeout = 10 ": "header_timeout = 1.0 ",
            "max_connections_per_source = 64": "max_connections_per_source = 16",
        },
    )
    with proc:
        wait_for(lambda: port_open(https), 10, "https")
        proc.tftp_port = tftp
        yield proc, http, https


def test_digest_with_curl(digest) -> None:
    _, http, _ = digest
    url = f"http://127.0.0.1:{http}/{YEALINK_T46G}.cfg"
    code, status, headers = curl(url)
    assert (code, status) == (0, 401)
    assert headers["www-authenticate"].startswith('Digest realm="xprov", qop="auth"')
    assert curl("--digest", "-u", f"{T46G_USER}:{T46G_PASSWORD}", url)[1] == 200
    assert curl("--digest", "-u", f"{T46G_USER}:wrong-password", url)[1] == 401
    other = f"http://127.0.0.1:{http}/{SPA504G}.xml"
    assert curl("--digest", "-u", f"{T46G_USER}:{T46G_PASSWORD}", other)[1] == 403
    assert curl(f"http://127.0.0.1:{http}/y000000000028.cfg")[1] == 200  # shared: no secret


def test_digest_signs_the_path_as_sent_and_the_file_is_its_normal_form(digest) -> None:
    """A phone that percent-encodes its path signs that spelling (RFC 7616 section 3.4:
    `uri` is the request-target); curl --path-as-is sends it and signs it unchanged."""
    _, http, _ = digest
    source = "127.0.3.20"  # a budget of its own: a wrong password below costs a token
    encoded = f"http://127.0.0.1:{http}/%{ord(YEALINK_T46G[0]):02x}{YEALINK_T46G[1:]}%2Ecfg"
    response = fetch(encoded, "--path-as-is", *digest_as(T46G_USER, T46G_PASSWORD), source=source)
    assert response.status == 200 and b"account.1.password = yk-1001-Secret\n" in response.body
    wrong = fetch(encoded, "--path-as-is", *digest_as(T46G_USER, "wrong"), source=source)
    assert_refused(wrong, 401)
    other = f"http://127.0.0.1:{http}/%{ord(SPA504G[0]):02x}{SPA504G[1:]}.xml"
    own = digest_as(T46G_USER, T46G_PASSWORD)
    assert_refused(fetch(other, "--path-as-is", *own, source=source), 403)


# Spellings the issue 14 break-it pass tried for a phone's file without credentials: none
# may ever be 200 (a spelling that names the file is 401; one that names none, 404 or 400).
T = YEALINK_T46G
SPELLINGS = [
    f"/{T}.cfg", f"/{T.upper()}.CFG", f"/%30%30{T[2:]}.cfg", f"/%30%30{T[2:]}%2Ecfg",
    f"/{T}%2ecfg", f"/a/../{T}.cfg", f"/%2E%2E/{T}.cfg", f"//{T}.cfg", f"/./{T}.cfg",
    f"/{T}.cfg?x=1", f"/{T}.cfg#frag", f"/{T}.cfg%23frag", f"/{T}%252Ecfg",
    f"/%2530%30{T[2:]}.cfg", f"/dir%2F{T}.cfg", f"/dir%5C{T}.cfg", f"/dir\\{T}.cfg",
    f"/{T}.cfg%00", f"/{T}%00.cfg", f"/{T}.cfg/", f"/{T}.cfg;x", f"/{T}.cfg%20",
    f"/%7E/{T}.cfg", f"/{T}.cfg%0A", f"/{T}.cfg%0d%0a", f"/{'a' * 3000}/{T}.cfg",
    "/00-15-65-74-b1-50.cfg", "/00:15:65:74:b1:50.cfg", f"/{T}.Cfg", f"/{T}.cfg.",
    f"/{T}.cfg%", f"/{T}.cfg%2", f"/{T}.cfg%zz", f"/%u0030{T[1:]}.cfg", f"/{T}.c%66g",
    f"/%EF%BC%8F{T}.cfg", "*", f"/{T}.boot", f"/{T}-local.cfg", f"/{T}.xml",
    f"http://127.0.0.1/{T}.cfg",
]  # fmt: skip


def raw_get(port: int, target: str, source: str, authorization: str | None = None) -> Response:
    """One GET with `target` exactly as written (curl would normalise some)."""
    head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    head += f"Authorization: {authorization}\r\n" if authorization else ""
    with socket.create_connection(("127.0.0.1", port), 10, (source, 0)) as sock:
        sock.sendall(head.encode() + b"\r\n")
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    first, _, body = answer.partition(b"\r\n\r\n")
    return Response(int(first.split()[1]), first + b"\r\n\r\n", body)


@pytest.mark.parametrize("target", SPELLINGS)
def test_no_spelling_opens_a_phones_file_without_credentials(digest, target: str) -> None:
    _, http, _ = digest
    response = raw_get(http, target, "127.0.3.40")
    assert response.status in (400, 401, 404, 405)  # 405: "*" is OPTIONS's target only
    assert_refused(response, response.status)


def signed(http: int, sent: str, uri: str, source: str) -> Response:
    """The phone's own credentials, Digest-signed (RFC 7616, MD5, qop=auth) for `uri`,
    sent with the request-target `sent`."""
    challenge = raw_get(http, sent, source).head.decode()
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce is not None, challenge
    realm = re.search(r'realm="([^"]+)"', challenge)[1]  # type: ignore[index]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{T46G_USER}:{realm}:{T46G_PASSWORD}"), md5(f"GET:{uri}")
    answer = md5(f"{ha1}:{nonce[1]}:00000001:c0ffee:auth:{ha2}")
    authorization = (
        f'Digest username="{T46G_USER}", realm="{realm}", nonce="{nonce[1]}", uri="{uri}", '
        f'qop=auth, nc=00000001, cnonce="c0ffee", response="{answer}", algorithm=MD5'
    )
    return raw_get(http, sent, source, authorization)


@pytest.mark.parametrize(
    ("spelling", "source"),
    [
        (f"/%30%30{T[2:]}%2Ecfg", "127.0.3.41"),
        (f"/{T.upper()}.CFG", "127.0.3.42"),
        (f"/x/{T}.cfg", "127.0.3.43"),
    ],
)
def test_digest_signs_one_spelling_only(digest, spelling: str, source: str) -> None:
    """Signed for one spelling of the phone's file and sent with another: never the file
    (RFC 7616 section 3.4.6: the uri must be the request-target)."""
    _, http, _ = digest
    source = (
        f"127.0.3.{50 + SPELLINGS.index(spelling) % 100}" if spelling in SPELLINGS else "127.0.3.49"
    )
    canonical = f"/{T}.cfg"
    assert signed(http, canonical, canonical, source).status == 200  # the signer works
    for sent, uri in ((spelling, canonical), (canonical, spelling)):
        response = signed(http, sent, uri, source)
        assert response.status in (401, 429)
        assert_refused(response, response.status)


def test_basic_only_over_https(digest, pki) -> None:
    _, http, https = digest
    credentials = ["--basic", "-u", f"{T46G_USER}:{T46G_PASSWORD}"]
    assert curl(*credentials, f"http://127.0.0.1:{http}/{YEALINK_T46G}.cfg")[1] == 401
    assert tls(https, f"{YEALINK_T46G}.cfg", pki, *credentials)[1] == 200
    assert (
        tls(https, f"{YEALINK_T46G}.cfg", pki, "--digest", "-u", f"{SPA_USER}:{SPA_PASSWORD}")[1]
        == 403
    )


def test_security_events_for_fail2ban(digest) -> None:
    proc, http, _ = digest
    curl("--digest", "-u", f"{SPA_USER}:not-it", f"http://127.0.0.1:{http}/{SPA504G}.xml")
    refused = [e for e in proc.events("security") if e["mac"] == SPA504G]
    assert refused and refused[-1]["reason"] == "wrong password"
    assert refused[-1]["client"] == "127.0.0.1" and refused[-1]["level"] == "warning"
    assert "not-it" not in proc.log() and SPA_PASSWORD not in proc.log()


def test_the_readmes_fail2ban_rule_matches_http_events_only(digest, tmp_path) -> None:
    """The README's failregex, as fail2ban would apply it (<HOST> is an address), against
    the real log: it bans HTTP(S) sources, never a TFTP source (which may be forged)."""
    proc, http, _ = digest
    source = "127.0.3.1"
    fetch(f"http://127.0.0.1:{http}/0015650009ff.cfg", source=source)  # no credentials: free
    fetch(f"http://127.0.0.1:{http}/{SPA504G}.xml", *digest_as(SPA_USER, "not-it"), source=source)
    tftp_get("curl", proc.tftp_port, "0015650009fe.cfg", tmp_path / "refused")
    readme = (ROOT / "README.md").read_text()
    rule = re.search(r"`failregex = (.+?)`", readme)
    assert rule is not None
    failregex = re.compile(rule.group(1).replace("<HOST>", r"(?P<host>[0-9a-fA-F.:]+)"))
    lines = proc.log().splitlines()
    banned = [m["host"] for line in lines if (m := failregex.search(line))]
    assert source in banned
    tftp_events = [line for line in lines if '"transport": "tftp"' in line]
    assert tftp_events and not any(failregex.search(line) for line in tftp_events)
    security = [line for line in lines if '"event": "security"' in line]
    assert len(banned) == len(security) - len(tftp_events)  # every HTTP(S) event matches


def get(port: int, path: str, source: str = "127.0.0.1") -> int:
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0)
    )
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_enumeration_is_rate_limited_per_source(tmp_path) -> None:
    proc, http, _ = server(
        tmp_path, "", replace={"bad_answer_rate = 0.1 ": "bad_answer_rate = 0.01 "}
    )
    with proc:
        answers = [get(http, f"/0015{i:08x}.cfg") for i in range(0x100000, 0x100000 + 1000)]
        assert answers[:20] == [404] * 20
        assert set(answers[20:]) == {429}  # hours at 0.01 token/s
        assert get(http, f"/{YEALINK_T46G}.cfg") == 429  # this source is refused everything
        started = time.monotonic()
        for _ in range(50):  # a phone elsewhere is served, and not slowly
            assert get(http, f"/{YEALINK_T46G}.cfg", source="127.0.0.2") == 200
        assert time.monotonic() - started < 10
        limited = [e for e in proc.events("security") if "rate limited" in e["reason"]]
        assert len(limited) == 1 and limited[0]["client"] == "127.0.0.1"


def test_slow_clients_are_cut_off(digest) -> None:
    """Slowloris: connections that never finish their request head are closed after
    header_timeout; a source holding too many is refused more; others are served."""
    _, http, _ = digest
    slow = []
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", http), timeout=10)
        s.sendall(b"GET /00156574b150.cfg HTTP/1.1\r\nHost: x\r\n")
        slow.append(s)
    extra = socket.create_connection(("127.0.0.1", http), timeout=5)
    with contextlib.suppress(ConnectionResetError):  # the 17th from this source: closed at once
        extra.sendall(b"GET / HTTP/1.1\r\n")
        assert extra.recv(100) == b""
    assert get(http, "/y000000000028.cfg", source="127.0.0.2") == 200
    started = time.monotonic()
    for s in slow:  # trickling a header line now and then keeps none of them alive
        assert closed_while_trickling(s, deadline=started + 8)
        s.close()


def closed_while_trickling(s: socket.socket, deadline: float) -> bool:
    s.settimeout(0.3)
    while time.monotonic() < deadline:
        try:
            s.sendall(b"X-Slow: 1\r\n")
            if s.recv(100) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_allow_lists(tmp_path) -> None:
    tftp = free_port(socket.SOCK_DGRAM)
    proc, port, _ = server(tmp_path, "", tftp_port=tftp)
    config = proc.config
    text = config.read_text()
    text = text.replace(
        f'listen = ["127.0.0.1:{port}"]', f'listen = ["127.0.0.1:{port}"]\nallow = ["127.0.0.2/32"]'
    )
    text = text.replace(
        f'listen = ["127.0.0.1:{tftp}"]', f'listen = ["127.0.0.1:{tftp}"]\nallow = ["127.0.0.2"]'
    )
    config.write_text(text)
    with proc:
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            get(port, f"/{YEALINK_T46G}.cfg")
        assert get(port, f"/{YEALINK_T46G}.cfg", source="127.0.0.2") == 200
        for source, answered in (("127.0.0.1", False), ("127.0.0.2", True)):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                s.settimeout(1.0)
                s.sendto(codec.rrq(f"{YEALINK_T46G}.cfg"), ("127.0.0.1", tftp))
                try:
                    packet = codec.decode(s.recvfrom(2048)[0])
                except TimeoutError:
                    packet = None
                assert isinstance(packet, codec.Data) if answered else packet is None, packet


# Every refusal, over HTTP and HTTPS, GET and HEAD: the status, an empty body, no secret --


@dataclasses.dataclass
class Response:
    status: int
    head: bytes  # every response head curl saw (a Digest exchange has two)
    body: bytes  # the last response's body


def fetch(url: str, *args: str, head: bool = False, source: str = "127.0.0.1") -> Response:
    """curl, as a phone (or an attacker) asks; every byte it received."""
    with tempfile.TemporaryDirectory() as tmp:
        heads, body = Path(tmp) / "head", Path(tmp) / "body"
        done = subprocess.run(
            [
                "curl",
                "-s",
                "--max-time",
                "10",
                "--interface",
                source,
                *(["-I"] if head else []),
                "-D",
                str(heads),
                "-o",
                str(body),
                "-w",
                "%{http_code}",
                *args,
                url,
            ],
            capture_output=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        received = body.read_bytes() if body.exists() else b""
        if head:  # curl -I writes the heads where the body would go
            received = received.removeprefix(heads.read_bytes())
        return Response(int(done.stdout), heads.read_bytes(), received)


def assert_refused(response: Response, status: int) -> None:
    assert response.status == status, response
    assert response.body == b""
    last_head = [block for block in response.head.split(b"\r\n\r\n") if block][-1]
    head = last_head.lower() + b"\r\n"
    assert b"content-length: 0\r\n" in head and b"server: xprov\r\n" in head, last_head
    if status == 429:
        assert head.startswith(b"http/1.1 429 too many requests\r\n")
        assert re.search(rb"\r\nretry-after: [1-9][0-9]*\r\n", head), last_head
    for secret in SECRETS:
        assert secret.encode() not in response.head + response.body, secret


def blocked_source(http: int, source: str) -> str:
    """Spend `source`'s whole budget on unknown MACs (with the shared user's credentials)."""
    for i in range(20):
        name = f"/00aa{int(source.split('.')[-1]):02x}{i:06x}.cfg"
        response = fetch(f"http://127.0.0.1:{http}{name}", *SHARED, source=source)
        assert response.status == 404
    return source


def digest_as(user: str, password: str) -> list[str]:
    """curl's arguments for a Digest login."""
    return ["--digest", "-u", f"{user}:{password}"]


SHARED = digest_as(SHARED_USER, SHARED_PASSWORD)
REFUSALS = {
    # case: (file, curl arguments, status)
    "no credentials": (f"{YEALINK_T46G}.cfg", [], 401),
    "wrong password": (f"{YEALINK_T46G}.cfg", digest_as(T46G_USER, "wrong"), 401),
    "another phone's credentials": (f"{YEALINK_T46G}.cfg", digest_as(SPA_USER, SPA_PASSWORD), 403),
    "unknown MAC": ("001565000001.cfg", SHARED, 404),
    "another vendor's name for the MAC": (f"{YEALINK_T46G}.xml", SHARED, 404),
    "render failure": (f"{YEALINK_T46G}.boot", digest_as(T46G_USER, T46G_PASSWORD), 500),
    "rate limited": (f"{YEALINK_T46G}.cfg", SHARED, 429),
    "method not allowed": (f"{YEALINK_T46G}.cfg", ["-X", "POST"], 405),
    "a body": (f"{YEALINK_T46G}.cfg", ["-X", "POST", "--data", "x=1"], 413),
}


@pytest.mark.parametrize(
    ("case", "scheme", "head"),
    [
        (case, scheme, head)
        for case in sorted(REFUSALS)
        for scheme in ("http", "https")
        for head in (False, True)
        if not (head and case in ("method not allowed", "a body"))  # HEAD is answered
    ],
)
def test_every_refusal_is_empty(digest, pki, case: str, scheme: str, head: bool) -> None:
    _, http, https = digest
    name, args, status = REFUSALS[case]
    source = "127.0.0.1"
    if case == "rate limited":
        source = blocked_source(http, f"127.0.1.{10 + 2 * (scheme == 'https') + head}")
    port = http if scheme == "http" else https
    tls = ["--cacert", str(pki.server_ca[0])] if scheme == "https" else []
    response = fetch(f"{scheme}://127.0.0.1:{port}/{name}", *tls, *args, head=head, source=source)
    assert_refused(response, status)
    if status == 401:
        assert b'www-authenticate: digest realm="xprov"' in response.head.lower()


@pytest.mark.parametrize("head", [False, True], ids=["GET", "HEAD"])
def test_basic_over_plain_http_is_refused_empty(digest, head: bool) -> None:
    _, http, _ = digest
    response = fetch(
        f"http://127.0.0.1:{http}/{YEALINK_T46G}.cfg",
        "--basic",
        "-u",
        f"{T46G_USER}:{T46G_PASSWORD}",
        head=head,
    )
    assert_refused(response, 401)


@pytest.mark.parametrize("head", [False, True], ids=["GET", "HEAD"])
def test_certificate_refusals_are_empty(mtls, pki, head: bool) -> None:
    proc, https = mtls
    other = fetch(
        f"https://127.0.0.1:{https}/{YEALINK_T31G}.cfg",
        "--cacert",
        str(pki.server_ca[0]),
        *with_cert(pki.t46g),
        head=head,
    )
    assert_refused(other, 403)
    plain = fetch(f"http://127.0.0.1:{proc.http_port}/{YEALINK_T46G}.cfg", head=head)
    assert_refused(plain, 403)  # bind_mac: per-device files only with a certificate
    shared = fetch(f"http://127.0.0.1:{proc.http_port}/y000000000028.cfg", head=head)
    assert shared.status == 200


def test_the_phone_with_its_credentials_is_served(digest, pki) -> None:
    """The positive controls of the matrix above: the same requests, done right."""
    _, http, https = digest
    tls = ["--cacert", str(pki.server_ca[0])]
    own = digest_as(T46G_USER, T46G_PASSWORD)
    for url, extra in (
        (f"http://127.0.0.1:{http}/{YEALINK_T46G}.cfg", own),
        (f"https://127.0.0.1:{https}/{YEALINK_T46G}.cfg", tls + own),
        (f"https://127.0.0.1:{https}/{YEALINK_T46G}.cfg", [*tls, "--basic", "-u", own[2]]),
    ):
        response = fetch(url, *extra)
        assert response.status == 200 and b"account.1.password = yk-1001-Secret" in response.body
        headed = fetch(url, *extra, head=True)
        assert headed.status == 200 and headed.body == b""
        assert f"content-length: {len(response.body)}".encode() in headed.head.lower()


# TFTP: per-device files refused (no credentials on TFTP), shared files the HTTP bytes --

DEVICE_FILES = [f"{YEALINK_T46G}.cfg", f"{YEALINK_T46G}.boot", f"{SPA504G}.xml", "001565000001.cfg"]
SHARED_FILES = ["y000000000028.cfg", "y000000000000.boot", "spa504G.cfg"]


# Each client's command line, and how it says "ERROR 2, Access violation" (tftp-hpa exits 0
# after printing it; curl's exit code 69 is CURLE_TFTP_PERM).
TFTP_CLIENTS = {
    "tftp-hpa": (
        lambda port, name, out: [
            *("tftp", "-4", "-m", "binary", "127.0.0.1", str(port), "-c", "get", name, str(out))
        ],
        lambda rc, text: "Error code 2: Access violation" in text,
    ),
    "atftp": (
        lambda port, name, out: [
            "atftp",
            "--get",
            "-r",
            name,
            "-l",
            str(out),
            "127.0.0.1",
            str(port),
        ],
        lambda rc, text: rc != 0 and "<Access violation>" in text,
    ),
    "curl": (
        lambda port, name, out: [
            *("curl", "-sS", "--max-time", "10", "-o", str(out), f"tftp://127.0.0.1:{port}/{name}")
        ],
        lambda rc, text: rc == 69,
    ),
}


def tftp_get(client: str, port: int, name: str, out: Path) -> tuple[int, str]:
    """`name` over TFTP with a real client into `out`: its exit code and what it printed."""
    command = TFTP_CLIENTS[client][0](port, name, out)
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("client", sorted(TFTP_CLIENTS))
def test_tftp_refuses_device_files_and_serves_shared_ones(digest, tmp_path, client) -> None:
    proc, http, _ = digest
    access_violation = TFTP_CLIENTS[client][1]
    fresh = f"00156500ff{sorted(TFTP_CLIENTS).index(client):02x}"  # never asked before
    for name in [*DEVICE_FILES, f"{fresh}.cfg"]:
        out = tmp_path / f"refused-{name}"
        rc, text = tftp_get(client, proc.tftp_port, name, out)
        assert access_violation(rc, text), (name, rc, text)
        received = out.read_bytes() if out.exists() else b""
        assert received == b"", name
    for name in SHARED_FILES:
        out = tmp_path / name
        rc, text = tftp_get(client, proc.tftp_port, name, out)
        assert rc == 0, text
        assert out.read_bytes() == fetch(f"http://127.0.0.1:{http}/{name}").body
    events = [e for e in proc.events("security") if e.get("mac") == fresh]
    assert [(e["reason"], e["transport"]) for e in events] == [
        ("per-device file over TFTP", "tftp")
    ]


# Offices behind one NAT address ------------------------------------------------------


def get_from(port: int, path: str, source: str, header: str | None = None):
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0)
    )
    try:
        headers = {"Connection": "close", **({"Authorization": header} if header else {})}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_nat_office_without_auth(tmp_path) -> None:
    """Five unprovisioned phones behind the office's address retry their files on every
    poll; the provisioned phone there is served throughout. A scan of 1,000 MACs from one
    address is still limited after the burst, and a phone elsewhere is served all along."""
    proc, http, _ = server(
        tmp_path, "", replace={"bad_answer_rate = 0.1 ": "bad_answer_rate = 0.01 "}
    )
    office, scanner, elsewhere = "127.0.2.1", "127.0.2.2", "127.0.2.3"
    with proc:
        for _ in range(10):  # ten polls
            for i in range(5):
                for suffix in (".boot", ".cfg"):
                    assert get_from(http, f"/0015650000{i:02x}{suffix}", office)[0] == 404
            assert get_from(http, f"/{YEALINK_T46G}.cfg", office)[0] == 200
        statuses = []
        for i in range(1000):
            statuses.append(get_from(http, f"/0015{i:08x}.cfg", scanner)[0])
            if i % 100 == 0:
                assert get_from(http, f"/{YEALINK_T46G}.cfg", elsewhere)[0] == 200
        assert statuses[:20] == [404] * 20 and set(statuses[20:]) == {429}
        assert get_from(http, f"/{YEALINK_T46G}.cfg", office)[0] == 200
        charged = [e for e in proc.events("security") if e["client"] == office]
        assert len(charged) == 5  # one per unknown phone, not one per request


def digest_header(challenge: str, path: str, user: str, password: str, nc: int = 1) -> str:
    params = parse_params(challenge)
    assert params is not None
    ha1 = hashlib.md5(f"{user}:xprov:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{path}".encode()).hexdigest()
    nonce = params["nonce"]
    response = hashlib.md5(f"{ha1}:{nonce}:{nc:08x}:feed:auth:{ha2}".encode()).hexdigest()
    return (
        f'Digest username="{user}", realm="xprov", nonce="{nonce}", uri="{path}", '
        f'response="{response}", qop=auth, nc={nc:08x}, cnonce="feed"'
    )


def test_nat_office_with_auth_a_blocked_source_still_logs_in(digest) -> None:
    _, http, _ = digest
    office = blocked_source(http, "127.0.2.10")
    path = f"/{YEALINK_T46G}.cfg"
    status, headers, body = get_from(http, path, office)
    assert (status, body) == (401, b"")  # still told how to log in
    header = digest_header(headers["WWW-Authenticate"], path, T46G_USER, T46G_PASSWORD)
    status, _, body = get_from(http, path, office, header)
    assert status == 200 and b"yk-1001-Secret" in body
    shared = digest_header(headers["WWW-Authenticate"], path, SHARED_USER, SHARED_PASSWORD, 2)
    assert get_from(http, path, office, shared)[:3:2] == (429, b"")  # the shared user: limited


def test_a_replayed_digest_answer_is_refused(digest) -> None:
    _, http, _ = digest
    path, source = f"/{YEALINK_T46G}.cfg", "127.0.2.20"
    _, headers, _ = get_from(http, path, source)
    captured = digest_header(headers["WWW-Authenticate"], path, T46G_USER, T46G_PASSWORD)
    assert get_from(http, path, source, captured)[0] == 200
    status, replay_headers, body = get_from(http, path, source, captured)
    assert (status, body) == (401, b"")
    assert replay_headers["WWW-Authenticate"].endswith("stale=true")
    following = digest_header(headers["WWW-Authenticate"], path, T46G_USER, T46G_PASSWORD, nc=2)
    status, _, body = get_from(http, path, source, following)
    assert status == 200 and b"yk-1001-Secret" in body
    fresh = digest_header(replay_headers["WWW-Authenticate"], path, T46G_USER, T46G_PASSWORD)
    assert get_from(http, path, source, fresh)[0] == 200


# Bootstrap: a factory phone on a trusted provisioning network, then HTTP with credentials


def tftp_from(source: str, port: int, name: str, tmp: Path) -> tuple[int, bytes]:
    """`name` over TFTP with curl bound to `source`: curl's exit code and the bytes."""
    out = tmp / f"from-{source}-{name}"
    command = [*TFTP_CLIENTS["curl"][0](port, name, out), "--interface", source]
    done = subprocess.run(command, capture_output=True, timeout=30)
    return done.returncode, out.read_bytes() if out.exists() else b""


def test_phones_bootstrap_on_a_trusted_network_then_fetch_with_credentials(tmp_path) -> None:
    """As the README describes it: a factory SPA and a factory Yealink on the trusted
    network get their own files over TFTP, which carry what they send over HTTP from then
    on; from elsewhere TFTP refuses the same files."""
    tftp = free_port(socket.SOCK_DGRAM)
    extra = f"""
[auth]
mode = "digest"
user = "{SHARED_USER}"
password = "{SHARED_PASSWORD}"
"""
    proc, http, _ = server(
        tmp_path,
        extra,
        tftp_port=tftp,
        replace={
            "max_transfers = 1000": 'max_transfers = 1000\nper_device_from = ["127.0.60.0/24"]'
        },
    )
    trusted, outside = "127.0.60.7", "127.0.61.7"
    with proc:
        # A factory SPA: Profile_Rule "/spa$PSN.cfg" over TFTP (DHCP option 66).
        rc, model = tftp_from(trusted, tftp, "spa504G.cfg", tmp_path)
        assert rc == 0
        rule = ET.fromstring(model).find("Profile_Rule_B")
        assert rule is not None and rule.text is not None
        bootstrap, _, steady = rule.text.partition(" | ")
        assert bootstrap == '("$P" eq "")? /$MA.xml'  # GPP_P is empty on a factory phone
        rc, own = tftp_from(trusted, tftp, f"{SPA504G}.xml", tmp_path)
        assert rc == 0
        keys = {element.tag: element.text for element in ET.fromstring(own)}
        user, password = keys["GPP_O"], keys["GPP_P"]
        assert (user, password) == (SPA_USER, SPA_PASSWORD)
        # From then on: the steady rule, its macros expanded as the phone does.
        url = steady.replace('[--uid "$O" --pwd "$P"]', "").replace("$MA", SPA504G)
        assert url == f"http://127.0.0.1:{http}/{SPA504G}.xml"
        again = fetch(url, *digest_as(user, password), source=outside)
        assert again.status == 200 and again.body == own
        # A factory Yealink: <mac>.boot and <mac>.cfg over TFTP, then HTTP.
        rc, boot = tftp_from(trusted, tftp, f"{YEALINK_T31G}.boot", tmp_path)
        included = re.findall(r'include:config "([^"]+)"', boot.decode())
        assert rc == 0 and included == ["y000000000123.cfg", f"{YEALINK_T31G}.cfg"]
        keys: dict[str, str] = {}
        for name in included:  # what the phone applies, in order
            rc, text = tftp_from(trusted, tftp, name, tmp_path)
            assert rc == 0
            keys.update(
                line.split(" = ", 1) for line in text.decode().splitlines() if " = " in line
            )
        cfg = tftp_from(trusted, tftp, f"{YEALINK_T31G}.cfg", tmp_path)[1]
        user = keys["static.auto_provision.server.username"]
        password = keys["static.auto_provision.server.password"]
        assert (user, password) == (SHARED_USER, SHARED_PASSWORD)  # it has no account of its own
        url = f"{keys['static.auto_provision.server.url']}{YEALINK_T31G}.cfg"
        again = fetch(url, *digest_as(user, password), source=outside)
        assert again.status == 200 and again.body == cfg
        # Outside the trusted network, TFTP refuses every per-device file.
        for name in (f"{SPA504G}.xml", f"{YEALINK_T31G}.cfg", f"{YEALINK_T31G}.boot"):
            assert tftp_from(outside, tftp, name, tmp_path) == (69, b"")


ADMIN_TOKEN = "dev-admin-token-change-me"  # the sample config's


def metric(admin: int, name: str) -> float:
    scraped = subprocess.run(
        ["curl", "-s", "--max-time", "5", "-H", f"Authorization: Bearer {ADMIN_TOKEN}",
         f"http://127.0.0.1:{admin}/metrics"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    (line,) = [x for x in scraped.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_a_name_flood_leaves_one_cache_entry_per_model(tmp_path) -> None:
    """Issue 13, item 11: 3,000 made-up `y<12 digits>.cfg` names (and their upper-case
    spellings) from one source. The render cache holds at most one entry per model, the
    made-up names are 404 with empty bodies, and a phone elsewhere keeps getting its model's
    file. Issue 14: a name no model has is not charged (a new model is not an attack), and
    its `unknown_model` info lines are bounded (BURST, then PER_SECOND): a flood cannot fill
    the disk."""
    admin = free_port()
    proc, http_port, _ = server(tmp_path, "", admin_port=admin)
    with proc:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        statuses: Counter[int] = Counter()
        for code in range(1500):
            for name in (f"/y{code:012d}.cfg", f"/Y{code:012d}.CFG"):
                connection.request("GET", name)
                response = connection.getresponse()
                body = response.read()
                statuses[response.status] += 1
                assert response.status == 200 or body == b""
        connection.close()
        elapsed = time.monotonic() - started
        known = len(yealink.CODE_MODELS)  # codes 0..1499 cover every code in the table
        assert statuses == {200: 2 * known, 404: 3000 - 2 * known}
        assert metric(admin, "xprov_render_cache_entries") <= len(yealink.MODEL_CODES)
        assert proc.events("security") == []
        lines = proc.events("unknown_model")
        assert BURST <= len(lines) <= BURST + PER_SECOND * elapsed + 1
        assert get(http_port, "/y000000000028.cfg", source="127.0.0.2") == 200
