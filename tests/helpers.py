"""Test helpers: sample configs in a temporary directory, free ports, bounded waits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.testing import MemoryReactorClock

ROOT = Path(__file__).resolve().parent.parent
ETC = ROOT / "etc"
TEMPLATES = ROOT / "vendor_templates"
XPROV = [sys.executable, "-m", "xprov.cli"]

# Sample phones of etc/inventory.toml, with the files each asks for.
YEALINK_T46G = "00156574b150"
YEALINK_T31G = "805ec0d57d72"
SPA504G = "0002fdff2103"
SPA942 = "000e08aabbcc"
SAMPLE_PASSWORDS = [
    "yk-1001-Secret",
    "yk-1002-Secret",
    "yk-1003-Secret",
    "spa&<2001>\"'Secret",
    "spa-2002-Secret",
    "spa-2003-Secret",
    "provpass",
]
USER_AGENTS = {
    YEALINK_T46G: "Yealink SIP-T46G 28.72.0.1 00:15:65:74:b1:50",
    YEALINK_T31G: "Yealink SIP-T31G 124.85.257.55 80:5e:c0:d5:7d:72",
    SPA504G: "Cisco/SPA504G-7.4.4 (0002FDFF2103)(CBT141400UK)",
    SPA942: "Linksys/SPA-942-6.1.5(a) (88019FA42805)",
}
FILES = {
    YEALINK_T46G: [
        f"{YEALINK_T46G}.boot",
        "y000000000000.boot",
        "y000000000028.cfg",
        f"{YEALINK_T46G}.cfg",
    ],
    YEALINK_T31G: [f"{YEALINK_T31G}.boot", "y000000000123.cfg", f"{YEALINK_T31G}.cfg"],
    SPA504G: ["spa504G.cfg", f"{SPA504G}.xml"],
    SPA942: ["spa942.cfg", f"{SPA942}.xml"],
}


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def sample_config(
    tmp: Path,
    replace: dict[str, str] | None = None,
    http_port: int = 8080,
    templates: Path = TEMPLATES,
    inventory: str | None = None,
    tftp_port: int | None = None,
    admin_port: int | None = None,
) -> Path:
    """etc/xprov.toml copied into `tmp`, with its paths made absolute and `replace` applied.
    TFTP and the admin API listen on the ports given, or on free ones."""
    text = (ETC / "xprov.toml").read_text()
    tftp_port = tftp_port or free_port(socket.SOCK_DGRAM)
    text = text.replace('listen = ["127.0.0.1:6969"]', f'listen = ["127.0.0.1:{tftp_port}"]')
    admin_port = admin_port or free_port()
    text = text.replace('listen = ["127.0.0.1:8081"]', f'listen = ["127.0.0.1:{admin_port}"]')
    text = text.replace('dirs = ["../vendor_templates"]', f'dirs = ["{templates}"]')
    text = text.replace('listen = ["127.0.0.1:8080"]', f'listen = ["127.0.0.1:{http_port}"]')
    text = text.replace('url = "http://127.0.0.1:8080"', f'url = "http://127.0.0.1:{http_port}"')
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    (tmp / "inventory.toml").write_text(
        inventory if inventory is not None else (ETC / "inventory.toml").read_text()
    )
    path = tmp / "xprov.toml"
    path.write_text(text)
    return path


def inventory_with_accounts(accounts: dict[str, tuple[str, str]]) -> str:
    """etc/inventory.toml with HTTP credentials for the sample phones of these models:
    {"T46G": (user, password), ...}."""
    text = (ETC / "inventory.toml").read_text()
    for model, (user, password) in accounts.items():
        line = f'model = "{model}"\n'
        assert line in text, model
        text = text.replace(line, f'{line}http_user = "{user}"\nhttp_password = "{password}"\n')
    return text


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def site_config(
    tmp: Path,
    sites: dict[str, dict[str, dict[str, Any]]],
    monitor: dict[str, Any] | None = None,
    http_port: int | None = None,
    admin_port: int | None = None,
    primary: str = "chicago",
    backup: str = "virginia",
    tftp_port: int | None = None,
) -> Path:
    """The sample config with its [failover], [monitor] and [sites] replaced."""
    path = sample_config(
        tmp, http_port=http_port or free_port(), admin_port=admin_port, tftp_port=tftp_port
    )
    text = path.read_text()
    text = text[: text.index("[failover]")] + text[text.index("[vars]") :]
    tables = [f'[failover]\nprimary = "{primary}"\nbackup = "{backup}"\n']
    tables.append(
        "[monitor]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in (monitor or {}).items())
    )
    for site, services in sites.items():
        for service, values in services.items():
            body = "".join(f"{k} = {toml_value(v)}\n" for k, v in values.items())
            tables.append(f"[sites.{site}.{service}]\n{body}")
    path.write_text(text + "\n" + "\n".join(tables))
    return path


def copy_templates(tmp: Path) -> Path:
    target = tmp / "templates"
    shutil.copytree(TEMPLATES, target)
    return target


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def udp_port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing holds UDP `port` on `host` (we could bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def xprov(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """`xprov ARGS -c CONFIG` as an operator runs it; its exit code and text output."""
    return subprocess.run(
        [*XPROV, *args, "-c", str(config)], capture_output=True, text=True, timeout=timeout
    )


def curl_get(port: int, name: str, max_time: float = 5.0) -> bytes:
    """`name` over HTTP from loopback `port` with curl, as a phone asks; raises unless 2xx."""
    return subprocess.run(
        ["curl", "-sf", "--max-time", str(max_time), f"http://127.0.0.1:{port}/{name}"],
        capture_output=True,
        check=True,
        timeout=10,
    ).stdout


class XprovProcess:
    """`xprov serve` as a real process; stopped with SIGTERM (then SIGKILL) on exit.
    `prefix`: a command that runs it, e.g. `prlimit --nofile=256:256`."""

    def __init__(
        self,
        config: Path,
        http_port: int,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        self.config, self.http_port, self.log_path = config, http_port, log_path
        self.env = env or {}  # added to this process's environment
        self.prefix = list(prefix)  # a command the server runs under (prlimit ...)
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> XprovProcess:
        self.log_file = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [*self.prefix, *XPROV, "serve", "-c", str(self.config)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
        )
        wait_for(
            lambda: port_open(self.http_port) or self.proc.poll() is not None, 15, "xprov to listen"
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"xprov exited: {self.log()}")
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The JSON log events so far; only those called `name` if given."""
        events = [json.loads(line) for line in self.log().splitlines()]
        return events if name is None else [e for e in events if e.get("event") == name]

    def status(self) -> dict[str, Any]:
        """The running server's `xprov status --json`."""
        done = xprov(self.config, "status", "--json", timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def stop(self, timeout: float = 5.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log_file.close()


class MemoryReactor(MemoryReactorClock):
    """Twisted's memory reactor, with UDP ports that are never opened (TFTP listeners): a
    whole Service runs on it without a socket."""

    def listenUDP(self, port: int, protocol, interface: str = "", maxPacketSize: int = 8192):
        return MemoryReactorClock().listenTCP(port, protocol, interface=interface)
