"""`xprov serve` as a real process, fetched with curl as the phones would."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import (
    FILES,
    SAMPLE_PASSWORDS,
    SPA504G,
    USER_AGENTS,
    XPROV,
    YEALINK_T46G,
    XprovProcess,
    copy_templates,
    free_port,
    sample_config,
)
from xprov import cli


def curl(url: str, *args: str) -> tuple[int, dict[str, str], bytes]:
    """GET with curl; returns (status, lower-cased headers, body)."""
    dump = [] if "-I" in args else ["-D", "-"]
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "5", *dump, *args, url],
        capture_output=True,
        check=True,
        timeout=10,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    with XprovProcess(sample_config(tmp, http_port=port), port, tmp / "xprov.log") as proc:
        yield proc, f"http://127.0.0.1:{port}"


def expected(config: Path, mac: str, name: str) -> bytes:
    """What `xprov render` prints for the same file: the bytes a phone must get."""
    done = subprocess.run(
        [*XPROV, "render", "-c", str(config), mac, name, "--user-agent", USER_AGENTS[mac]],
        capture_output=True,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("mac", sorted(FILES))
def test_every_sample_phone_gets_its_files(server, mac: str) -> None:
    proc, base = server
    for name in FILES[mac]:
        status, headers, body = curl(f"{base}/{name}", "-A", USER_AGENTS[mac])
        assert status == 200, name
        assert headers["content-length"] == str(len(body))
        assert body == expected(proc.config, mac, name), name


def test_yealink_device_file_over_http(server) -> None:
    _, base = server
    status, headers, body = curl(f"{base}/{YEALINK_T46G}.cfg", "-A", USER_AGENTS[YEALINK_T46G])
    assert status == 200
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert b"account.1.sip_server.1.address = 127.0.0.1\n" in body
    assert b"account.1.password = yk-1001-Secret\n" in body


def test_spa_files_over_http(server) -> None:
    _, base = server
    status, headers, body = curl(f"{base}/spa504G.cfg", "-A", USER_AGENTS[SPA504G])
    assert status == 200 and headers["content-type"] == "text/xml; charset=utf-8"
    assert f'<Profile_Rule_B ua="na">{base}/$MA.xml</Profile_Rule_B>'.encode() in body
    status, _, body = curl(f"{base}/{SPA504G}.xml", "-A", USER_AGENTS[SPA504G])
    assert status == 200
    assert b"spa&amp;&lt;2001&gt;&#34;&#39;Secret" in body


def test_head(server) -> None:
    _, base = server
    _, _, body = curl(f"{base}/{YEALINK_T46G}.cfg")
    status, headers, head_body = curl(f"{base}/{YEALINK_T46G}.cfg", "-I")
    assert status == 200 and head_body == b""
    assert headers["content-length"] == str(len(body))


@pytest.mark.parametrize(
    "path",
    ["/ffffffffffff.cfg", f"/{YEALINK_T46G}-local.cfg", f"/{SPA504G}.cfg", "/index.html", "/"],
)
def test_not_found(server, path: str) -> None:
    _, base = server
    status, _, body = curl(base + path, "-A", USER_AGENTS[YEALINK_T46G])
    assert (status, body) == (404, b"")


# The Yealink's per-device file with the first character of its MAC percent-encoded.
ENCODED_DEVICE = f"/%{ord(YEALINK_T46G[0]):02X}{YEALINK_T46G[1:]}.cfg"


def test_a_percent_encoded_unreserved_character_is_the_character(server) -> None:
    """RFC 3986 section 6.2.2.2: the same URL, the same file (curl --path-as-is sends the
    path unchanged)."""
    _, base = server
    agent = USER_AGENTS[YEALINK_T46G]
    status, _, plain = curl(f"{base}/{YEALINK_T46G}.cfg", "-A", agent)
    assert status == 200 and b"account.1.password = yk-1001-Secret\n" in plain
    assert curl(base + ENCODED_DEVICE, "--path-as-is", "-A", agent)[::2] == (200, plain)
    # The query is not the path (twisted.web splits it off): ignored, escapes and all.
    with_query = curl(f"{base}{ENCODED_DEVICE}?x=%2F%00", "--path-as-is", "-A", agent)
    assert with_query[::2] == (200, plain)
    status, _, common = curl(f"{base}/y000000000028.cfg", "-A", agent)
    assert status == 200 and b"yk-1001-Secret" not in common  # the common file
    encoded_common = curl(f"{base}/y000000000028%2Ecfg", "--path-as-is", "-A", agent)
    assert encoded_common[::2] == (200, common)


@pytest.mark.parametrize(
    "path",
    [
        f"/dir%2F{YEALINK_T46G}.cfg",
        f"/{YEALINK_T46G}%00.cfg",
        f"/dir%5C{YEALINK_T46G}.cfg",
        f"/%2530{YEALINK_T46G[1:]}.cfg",  # "%30" once decoded: never decoded twice
    ],
)
def test_an_escaped_separator_nul_or_escape_names_no_file(server, path: str) -> None:
    _, base = server
    status, headers, body = curl(base + path, "--path-as-is", "-A", USER_AGENTS[YEALINK_T46G])
    assert (status, headers["content-length"], body) == (404, "0", b"")
    answer = "\n".join(headers.values()).encode() + body
    for password in SAMPLE_PASSWORDS:
        assert password.encode() not in answer


def test_healthz(server) -> None:
    _, base = server
    assert curl(f"{base}/healthz")[0] == 200


def test_other_methods_are_refused(server) -> None:
    """405; and a body is refused (413) from the head, before the method is looked at."""
    _, base = server
    assert curl(f"{base}/{YEALINK_T46G}.cfg", "-X", "POST")[0] == 405
    assert curl(f"{base}/{YEALINK_T46G}.cfg", "-X", "PUT")[0] == 405
    assert curl(f"{base}/{YEALINK_T46G}.cfg", "-X", "BREW")[0] == 405
    assert curl(f"{base}/{YEALINK_T46G}.cfg", "-X", "POST", "--data", "x")[0] == 413
    assert curl(f"{base}/{YEALINK_T46G}.cfg", "-X", "PUT", "--data", "x")[0] == 413


def test_logs_are_json_lines_without_secrets(server) -> None:
    proc, base = server
    curl(f"{base}/ffffffffffff.cfg")
    events = proc.events()
    assert any(e["event"] == "started" for e in events)
    assert any(
        e["event"] == "security"
        and e["mac"] == "ffffffffffff"
        and e["reason"] == "unknown device"
        and e["client"] == "127.0.0.1"
        for e in events
    )
    for password in SAMPLE_PASSWORDS:
        assert password not in proc.log()


def test_render_error_is_500_and_logged(tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    (templates / "yealink" / "device.cfg").write_text(
        "#!version:1.0.0.1\naccount.1.password = {{ lines[0].password }}\n"
        "account.1.x = {{ sip.no_such_key }}\n"
    )
    port = free_port()
    config = sample_config(tmp_path, http_port=port, templates=templates)
    with XprovProcess(config, port, tmp_path / "log") as proc:
        status, _, body = curl(f"http://127.0.0.1:{port}/{YEALINK_T46G}.cfg")
        assert (status, body) == (500, b"")
        assert curl(f"http://127.0.0.1:{port}/{SPA504G}.xml")[0] == 200
        proc.stop()
    failed = [json.loads(line) for line in proc.log().splitlines() if "render_failed" in line]
    assert failed[0]["template"] == "yealink/device.cfg" and failed[0]["line"] == 3
    assert "no_such_key" in failed[0]["reason"]
    assert "yk-1001-Secret" not in proc.log()


def test_sigterm_stops_within_two_seconds(tmp_path: Path) -> None:
    port = free_port()
    with XprovProcess(sample_config(tmp_path, http_port=port), port, tmp_path / "log") as proc:
        assert curl(f"http://127.0.0.1:{port}/healthz")[0] == 200
        started = time.monotonic()
        assert proc.stop(timeout=2.0) == 0
        assert time.monotonic() - started < 2.0
    assert '"stopped"' in proc.log()


def test_invalid_config_never_starts(tmp_path: Path) -> None:
    config = sample_config(tmp_path, {"port = 5060": "port = 0"})
    done = subprocess.run([*XPROV, "serve", "-c", str(config)], capture_output=True, timeout=20)
    assert done.returncode == 1
    assert b"sites.chicago.sip.port: 0 is out of range" in done.stderr


def test_busy_port_fails_cleanly(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = sample_config(tmp_path, http_port=port)
        done = subprocess.run([*XPROV, "serve", "-c", str(config)], capture_output=True, timeout=20)
    assert done.returncode == 1
    assert b"cannot_start" in done.stdout


def test_render_cli_unknown_device(capsys, config_path: Path) -> None:
    assert cli.main(["render", "-c", str(config_path), "ff:ff:ff:ff:ff:ff"]) == 1
    assert "unknown device" in capsys.readouterr().err
    assert cli.main(["render", "-c", str(config_path), "zz"]) == 2
