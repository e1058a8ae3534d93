"""An attacker who knows the README and the phones' MACs, and nothing else, goes after a
phone's SIP password over every listener (HTTP, HTTPS, TFTP, admin) with every path, method
and header shape we could think of. Nothing any of them receives holds a secret.

The server is set up as production would be: Digest with per-phone credentials and a
shared user, HTTPS beside HTTP, TFTP, the admin API. The bad-answer budget is made large,
so every request reaches the authentication logic instead of stopping at the rate limit
(which `test_security.py` covers)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import ssl
from collections import Counter

import pytest

from tests.certs import Pki
from tests.helpers import (
    SAMPLE_PASSWORDS,
    SPA504G,
    SPA942,
    USER_AGENTS,
    YEALINK_T31G,
    YEALINK_T46G,
    XprovProcess,
    free_port,
    inventory_with_accounts,
    port_open,
    sample_config,
    wait_for,
)
from xprov.mac import colon_mac
from xprov.tftp import codec

PHONES = {YEALINK_T46G: "cfg", YEALINK_T31G: "cfg", SPA504G: "xml", SPA942: "xml"}
CREDENTIALS = {YEALINK_T46G: ("t46g", "http-T46G-Secret"), SPA504G: ("spa504g", "http-SPA-Secret")}
SHARED = ("site", "attack-shared-Secret")
ADMIN_TOKEN = "dev-admin-token-change-me"
SECRETS = [
    *SAMPLE_PASSWORDS,
    *(password for _, password in CREDENTIALS.values()),
    SHARED[1],
    ADMIN_TOKEN,
    "provpass",
]


def inventory() -> str:
    return inventory_with_accounts(
        {"T46G": CREDENTIALS[YEALINK_T46G], "SPA504G": CREDENTIALS[SPA504G]}
    )


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack")
    pki = Pki(tmp / "pki")
    http, https, admin = free_port(), free_port(), free_port()
    tftp = free_port(socket.SOCK_DGRAM)
    config = sample_config(
        tmp,
        http_port=http,
        tftp_port=tftp,
        admin_port=admin,
        inventory=inventory(),
        replace={"bad_answer_burst = 20 ": "bad_answer_burst = 100000 "},
    )
    config.write_text(
        config.read_text()
        + f"""
[https]
listen = ["127.0.0.1:{https}"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"

[auth]
mode = "digest"
basic_over_tls = true
user = "{SHARED[0]}"
password = "{SHARED[1]}"
"""
    )
    with XprovProcess(config, http, tmp / "xprov.log") as proc:
        wait_for(lambda: port_open(https), 10, "https")
        proc.ports = {"http": http, "https": https, "admin": admin, "tftp": tftp}
        yield proc


def names(mac: str, extension: str) -> list[str]:
    """Every way we could think of to name one phone's files in a request target."""
    name = f"{mac}.{extension}"
    other = "xml" if extension == "cfg" else "cfg"
    encoded = "".join(f"%{byte:02X}" for byte in name.encode())
    return [
        f"/{name}",
        f"/{mac}.boot",
        f"/{mac}.{other}",  # another vendor's file name for the same MAC
        f"/{mac.upper()}.{extension.upper()}",
        f"/{colon_mac(mac)}.{extension}",
        f"/{colon_mac(mac).replace(':', '-')}.{extension}",
        f"/{mac}-local.cfg",
        f"/{encoded}",
        f"/%30{name[1:]}",
        f"/{name[:-4]}%2E{extension}",
        f"//{name}",
        f"/a/../{name}",
        f"/./{name}",
        f"/tftpboot/{name}",
        f"/{name}/",
        f"/{name}?mac={mac}",
        f"/{name};x",
        f"/{name}%00",
        f"/{name}%00.txt",
        f"http://127.0.0.1/{name}",
    ]


def header_sets(mac: str, path: str) -> list[dict[str, str]]:
    user = CREDENTIALS.get(mac, ("nobody", ""))[0]
    digest_guess = (
        f'Digest username="{user}", realm="xprov", nonce="bm9uY2U", uri="{path}", '
        f'response="{"0" * 32}", qop=auth, nc=00000001, cnonce="x"'
    )
    agent = USER_AGENTS.get(mac, "Yealink SIP-T46G 28.72.0.1 00:15:65:74:b1:50")
    return [
        {},
        {"User-Agent": agent},
        {"Authorization": "Basic " + base64.b64encode(f"{user}:".encode()).decode()},
        {"Authorization": f'Digest username="{user}"'},
        {"Authorization": digest_guess, "User-Agent": agent},
        {"Authorization": "Bearer " + ADMIN_TOKEN[:-1] + "x"},
        {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "10.0.0.1", "Range": "bytes=0-100"},
    ]


def exchange(port: int, payload: bytes, tls: bool, timeout: float = 5.0) -> bytes:
    """Send `payload` on a fresh connection; everything the server sends back."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        raw = context.wrap_socket(raw)
    with raw:
        raw.sendall(payload)
        received = b""
        try:
            while chunk := raw.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            pass
        return received


def request(
    method: str, path: str, headers: dict[str, str], version: str = "1.1", keep_alive: bool = False
) -> bytes:
    connection = "keep-alive" if keep_alive else "close"
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", f"Connection: {connection}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def leaked(data: bytes) -> list[str]:
    return [secret for secret in SECRETS if secret.encode() in data]


@pytest.mark.parametrize("listener", ["http", "https"])
def test_no_password_over_http_or_https(target, listener: str) -> None:
    """Every name shape, header set and method for every phone: one connection per name,
    its requests pipelined (a TLS handshake per request would cost a minute)."""
    port, tls = target.ports[listener], listener == "https"
    statuses: Counter[bytes] = Counter()
    for mac, extension in PHONES.items():
        for path in names(mac, extension):
            asked = [
                request(method, path, headers, keep_alive=True)
                for headers in header_sets(mac, path)
                for method in ("GET", "HEAD")
            ]
            answer = exchange(port, b"".join(asked) + request("HEAD", path, {}), tls)
            assert not leaked(answer), (path, leaked(answer))
            answered = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
            assert b"200" not in answered, path
            # Every request is answered, unless the server refused the name as malformed.
            assert len(answered) == len(asked) + 1 or answered == [b"400"], (path, answered)
            statuses.update(answered)
    assert statuses[b"401"] > 0 and set(statuses) <= {b"400", b"401", b"403", b"404"}


@pytest.mark.parametrize("listener", ["http", "https"])
def test_no_password_with_odd_methods_versions_and_pipelining(target, listener: str) -> None:
    port, tls = target.ports[listener], listener == "https"
    for mac, extension in PHONES.items():
        path = f"/{mac}.{extension}"
        payloads = [
            request(method, path, {})
            for method in ("get", "POST", "PUT", "OPTIONS", "TRACE", "PROPFIND", "CONNECT")
        ]
        payloads += [request("GET", path, {}, version) for version in ("1.0", "0.9", "2.0")]
        payloads.append(f"GET {path}\r\n\r\n".encode())  # HTTP/0.9 style
        pipelined = request("GET", "/y000000000028.cfg", {}).replace(b"close", b"keep-alive")
        payloads.append(pipelined + request("GET", path, {}) + request("HEAD", path, {}))
        payloads.append(
            request("POST", path, {"Content-Length": "5", "X-HTTP-Method-Override": "GET"})
            + b"hello"
        )
        for payload in payloads:
            answer = exchange(port, payload, tls)
            assert not leaked(answer), (payload, leaked(answer))
        # A head over the size limits is cut off (over TLS the server waits for the
        # client's close_notify until the head deadline: read for a moment only).
        oversized = request("GET", path, {"Authorization": "Digest " + "a" * 5000})
        assert not leaked(exchange(port, oversized, tls, timeout=0.5))


def tftp_ask(port: int, packet: bytes) -> list[bytes]:
    """Send one datagram from a fresh port; every datagram that comes back within a moment
    (an OACK or DATA is acknowledged, so a whole file would arrive)."""
    received = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        s.sendto(packet, ("127.0.0.1", port))
        for _ in range(200):  # bounded: a phone file is a few blocks
            try:
                data, sender = s.recvfrom(70000)
            except TimeoutError:
                break
            received.append(data)
            decoded = codec.decode(data)
            if isinstance(decoded, codec.Data):
                s.sendto(codec.ack(decoded.block), sender)
                if len(decoded.payload) < 512:
                    break
            elif isinstance(decoded, codec.Oack):
                s.sendto(codec.ack(0), sender)
            else:
                break
    return received


def test_no_password_over_tftp(target) -> None:
    port = target.ports["tftp"]
    for mac, extension in PHONES.items():
        for path in names(mac, extension):
            name = path.lstrip("/")
            packets = [
                codec.rrq(name),
                codec.rrq(name, {"blksize": "1468", "tsize": "0"}),
                codec.rrq(name).replace(b"octet", b"netascii"),
                codec.rrq(name).replace(b"octet", b"OCTET"),
                codec.rrq("/" + name),
                codec.rrq(name).replace(b"\x00\x01", b"\x00\x02", 1),  # a write request
            ]
            for packet in packets:
                received = tftp_ask(port, packet)
                assert [type(codec.decode(d)) for d in received] == [codec.Error], packet
                answers = b"".join(received)
                assert not leaked(answers), (packet, leaked(answers))
                assert b"account.1" not in answers and b"Password_1_" not in answers


def test_no_password_from_the_admin_listener(target) -> None:
    port = target.ports["admin"]
    forged = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer " + ADMIN_TOKEN[:-1]},
        {"Authorization": "Bearer " + ADMIN_TOKEN + "x"},
        {"Authorization": "bearer " + ADMIN_TOKEN.upper()},
        {"Authorization": "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()},
    ]
    paths = ["/status", "/metrics", "/healthz", f"/{YEALINK_T46G}.cfg", "/", "/status?x=1"]
    for path in paths:
        for headers in forged:
            for method in ("GET", "HEAD", "POST"):
                answer = exchange(port, request(method, path, headers), tls=False)
                assert not leaked(answer), (method, path, headers, leaked(answer))
                assert b"\r\nServer: xprov\r\n" in answer, answer[:200]  # not Twisted's version
                if path == "/" and method != "POST":  # the status page: no data in it
                    assert answer[9:12] == b"200" and b"text/html" in answer, answer[:200]
                elif path != "/healthz" or method == "POST":
                    assert answer[9:12] in (b"401", b"403", b"404", b"405"), (method, path)
    # Even the operator's own view holds no secret.
    authorized = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in ("/status", "/metrics"):
        answer = exchange(port, request("GET", path, authorized), tls=False)
        assert answer[9:12] == b"200" and not leaked(answer)


def test_the_server_logged_no_secret(target) -> None:
    log = target.log()
    assert not leaked(log.encode())
    assert target.proc.poll() is None  # and it is still serving


def digest_answer(challenge: str, path: str, user: str, password: str, **extra: str) -> str:
    nonce = re.search(r'nonce="([^"]+)"', challenge)
    assert nonce is not None
    ha1 = hashlib.md5(f"{user}:xprov:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"GET:{path}".encode()).hexdigest()
    fields = {"nc": "00000001", "cnonce": "c0ffee", "qop": "auth", "algorithm": "MD5", **extra}
    response = hashlib.md5(
        f"{ha1}:{nonce[1]}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode()
    ).hexdigest()
    return (
        f'Digest username="{user}", realm="xprov", nonce="{nonce[1]}", uri="{path}", '
        f'response="{response}", qop={fields["qop"]}, nc={fields["nc"]}, '
        f'cnonce="{fields["cnonce"]}", algorithm={fields["algorithm"]}'
    )


def get(port: int, path: str, source: str, authorization: str | None = None):
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=5, source_address=(source, 0)
    )
    try:
        headers = {"Authorization": authorization} if authorization else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("WWW-Authenticate") or "", response.read()
    finally:
        connection.close()


def test_a_sniffed_answer_gets_the_attacker_nothing(target) -> None:
    """An attacker who captured a phone's Digest exchange on the wire: replayed from its own
    address, replayed from the phone's, bent to another file, or relabelled."""
    port = target.ports["http"]
    path, phone, attacker = f"/{YEALINK_T46G}.cfg", "127.0.5.1", "127.0.5.2"
    user, password = CREDENTIALS[YEALINK_T46G]
    _, challenge, _ = get(port, path, phone)
    captured = digest_answer(challenge, path, user, password)
    status, _, body = get(port, path, phone, captured)
    assert status == 200 and b"yk-1001-Secret" in body  # the phone itself
    attempts = [
        (attacker, captured),  # another address: a foreign nonce
        (phone, captured),  # the phone's own address: a replay
        (phone, captured.replace("nc=00000001", "nc=00000002")),  # a count bumped by hand
        (phone, digest_answer(challenge, path, user, password, algorithm="MD5-sess")),
        (phone, digest_answer(challenge, path, user, password, nc="00000000")),
    ]
    for source, header in attempts:
        status, _, body = get(port, path, source, header)
        assert (status, body) == (401, b""), header
    other = f"/{SPA504G}.xml"  # the same answer sent for another phone's file
    status, _, body = get(port, other, phone, captured.replace(path, other))
    assert (status, body) == (401, b"")
