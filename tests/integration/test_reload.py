"""Reload under load: phones keep fetching over HTTP and TFTP while the server reloads a
good config, a broken config, a broken template and a changed listener port."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import urllib.request
from pathlib import Path

import pytest
import tftpy

from tests.helpers import (
    SPA942,
    YEALINK_T46G,
    XprovProcess,
    copy_templates,
    free_port,
    sample_config,
    wait_for,
    xprov,
)

COMMON = "y000000000028.cfg"


class Load:
    """Phones polling as fast as they can, over HTTP and TFTP, until stopped (bounded)."""

    def __init__(self, http_port: int, tftp_port: int, tmp: Path) -> None:
        self.http_port, self.tftp_port, self.tmp = http_port, tftp_port, tmp
        self.http = True
        self.ok = {"http": 0, "tftp": 0}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._http, daemon=True),
            threading.Thread(target=self._tftp, daemon=True),
        ]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        wait_for(lambda: min(self.ok.values()) > 5, 20, "load running")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)

    def _http(self) -> None:
        for _ in range(100_000):
            if self.stop.is_set():
                return
            if not self.http:
                self.stop.wait(0.01)
                continue
            url = f"http://127.0.0.1:{self.http_port}/{YEALINK_T46G}.cfg"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200 and response.read().startswith(b"#!version")
                self.ok["http"] += 1
            except Exception as exc:  # every failure is a finding
                self.failures.append(f"http: {exc!r}")

    def _tftp(self) -> None:
        out = self.tmp / "tftp.out"
        for _ in range(100_000):
            if self.stop.is_set():
                return
            try:
                tftpy.TftpClient("127.0.0.1", self.tftp_port, {"blksize": 512}).download(
                    f"{SPA942}.xml", str(out), timeout=2
                )
                assert out.read_bytes().startswith(b"<flat-profile>")
                self.ok["tftp"] += 1
            except Exception as exc:
                self.failures.append(f"tftp: {exc!r}")


def http_get(port: int, name: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=5) as response:
        return response.read()


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def server(tmp_path):
    http, tftp = free_port(), free_port(socket.SOCK_DGRAM)
    templates = copy_templates(tmp_path)
    config = sample_config(tmp_path, http_port=http, tftp_port=tftp, templates=templates)
    with XprovProcess(config, http, tmp_path / "xprov.log") as proc:
        yield proc, config, templates, http, tftp


def test_reloads_under_load(server, tmp_path) -> None:
    proc, config, templates, http, tftp = server
    original = config.read_text()
    with Load(http, tftp, tmp_path) as load:
        # 1. A good config: a changed variable reaches the files.
        config.write_text(
            original.replace('ntp_server = "pool.ntp.org"', 'ntp_server = "ntp.example.net"')
        )
        os.kill(proc.proc.pid, signal.SIGHUP)
        wait_for(lambda: b"ntp.example.net" in http_get(http, COMMON), 20, "good reload")
        before = hashlib.sha256(http_get(http, COMMON)).hexdigest()

        # 2. A broken config: logged, and the old one keeps serving.
        config.write_text(original.replace("[http]", "[http"))
        os.kill(proc.proc.pid, signal.SIGHUP)
        wait_for(lambda: proc.events("reload_failed"), 20, "reload_failed")
        assert "not valid TOML" in proc.events("reload_failed")[0]["problems"][0]
        assert hashlib.sha256(http_get(http, COMMON)).hexdigest() == before

        # 3. A broken template, through `xprov reload`: refused, still serving.
        config.write_text(original)
        good_template = (templates / "yealink" / "common.cfg").read_text()
        (templates / "yealink" / "common.cfg").write_text(good_template + "{% if %}\n")
        done = xprov(config, "reload", timeout=60)
        assert done.returncode == 1
        assert "template yealink/common.cfg:" in done.stderr
        assert hashlib.sha256(http_get(http, COMMON)).hexdigest() == before
        (templates / "yealink" / "common.cfg").write_text(good_template)

        # 4. A changed listener port: the new one serves, the old one closes.
        new_port = free_port()
        load.http = False
        config.write_text(
            original.replace(f'listen = ["127.0.0.1:{http}"]', f'listen = ["127.0.0.1:{new_port}"]')
        )
        done = xprov(config, "reload", timeout=60)
        assert done.returncode == 0, done.stderr
        assert b"pool.ntp.org" in http_get(new_port, COMMON)  # the original config again
        wait_for(lambda: refused(http), 10, "old port closed")
        load.http_port, load.http = new_port, True
        served = load.ok["http"]
        wait_for(lambda: load.ok["http"] > served + 5, 20, "load on the new port")
    assert load.failures == []
    assert load.ok["http"] > 20 and load.ok["tftp"] > 20
    reloaded = proc.events("reloaded")
    assert len(reloaded) == 2 and len(proc.events("reload_failed")) == 2


def test_a_reload_keeps_probe_state_and_the_selection(server) -> None:
    proc, config, *_ = server
    done = xprov(config, "failover", "stun", "--to", "virginia", "--force")
    assert done.returncode == 0, done.stderr

    wait_for(
        lambda: proc.status()["monitor"]["targets"]["sip@chicago"]["state"] == "down",
        15,
        "probe state known",
    )
    rounds_before = proc.status()["monitor"]["targets"]["sip@chicago"]["consecutive_failures"]
    os.kill(proc.proc.pid, signal.SIGHUP)
    wait_for(lambda: proc.events("reloaded"), 20, "reloaded")
    after = proc.status()
    assert after["selection"]["active"]["stun"] == "virginia"
    assert after["monitor"]["services"]["stun"]["manual"] == "virginia"
    sip = after["monitor"]["targets"]["sip@chicago"]
    assert sip["state"] == "down" and sip["consecutive_failures"] >= rounds_before
