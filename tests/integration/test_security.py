"""Security against a running xprov: TLS and device certificates, Digest and Basic
authentication, MAC enumeration, slow and greedy clients, allow-lists."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import time

import pytest

from tests.certs import Pki
from tests.helpers import (
    ETC,
    SPA504G,
    YEALINK_T31G,
    YEALINK_T46G,
    XprovProcess,
    free_port,
    port_open,
    sample_config,
    wait_for,
)
from xprov.tftp import codec

T46G_USER, T46G_PASSWORD = "t46g", "http-T46G-Secret"
SPA_USER, SPA_PASSWORD = "spa504g", "http-SPA-Secret"


def inventory() -> str:
    text = (ETC / "inventory.toml").read_text()
    text = text.replace(
        'model = "T46G"\n',
        f'model = "T46G"\nhttp_user = "{T46G_USER}"\nhttp_password = "{T46G_PASSWORD}"\n',
    )
    return text.replace(
        'model = "SPA504G"\n',
        f'model = "SPA504G"\nhttp_user = "{SPA_USER}"\nhttp_password = "{SPA_PASSWORD}"\n',
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
    proc, _, https = server(tmp_path_factory.mktemp("mtls"), extra)
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


@pytest.fixture(scope="module")
def digest(tmp_path_factory, pki):
    """Digest on HTTP and HTTPS, Basic on HTTPS only, a small bad-answer budget."""
    extra = f"""
[https]
listen = ["127.0.0.1:HTTPS_PORT"]
certificate = "{pki.server[0]}"
private_key = "{pki.server[1]}"

[auth]
mode = "digest"
basic_over_tls = true
"""
    proc, http, https = server(
        tmp_path_factory.mktemp("digest"),
        extra,
        replace={
            "bad_answer_rate = 0.1 ": "bad_answer_rate = 0.01 ",
            "header_timeout = 10 ": "header_timeout = 1.0 ",
            "max_connections_per_source = 64": "max_connections_per_source = 16",
        },
    )
    with proc:
        wait_for(lambda: port_open(https), 10, "https")
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
