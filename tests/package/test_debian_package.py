"""The Debian package, end to end: build, inspect, lintian, install with apt, run the
installed binary as the systemd unit would (user xprov, CAP_NET_BIND_SERVICE), reload,
upgrade with an edited conffile, remove and purge.

It installs a package and creates a system user, so it runs only as root and only when asked:
in CI (CI=true) or with XPROV_PACKAGE_TEST=1.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, port_open, udp_port_free, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not (os.environ.get("CI") or os.environ.get("XPROV_PACKAGE_TEST")),
    reason="installs a Debian package: root, and CI=true or XPROV_PACKAGE_TEST=1",
)

UNIT = Path("/lib/systemd/system/xprov.service")
CONFIG = Path("/etc/xprov/xprov.toml")
INVENTORY = Path("/etc/xprov/inventory.toml")
PHONE = """
[[phones]]
mac = "00:15:65:74:b1:50"
vendor = "yealink"
model = "T46G"
lines = [ { number = 1, user = "1001", password = "pkg-1001-Secret", display_name = "Lobby" } ]
"""


def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def installed() -> bool:
    return run("dpkg-query", "-W", "-f=${Status}", "xprov", check=False).stdout == (
        "install ok installed"
    )


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> Path:
    if installed():
        run("apt-get", "purge", "-y", "-q", "xprov")
    run(str(ROOT / "packaging" / "build-deb.sh"), timeout=900)
    version = re.search(r'__version__ = "(.+)"', (ROOT / "xprov" / "__init__.py").read_text())[1]
    path = ROOT / "dist" / f"xprov_{version}-1_amd64.deb"
    assert path.is_file()
    yield path
    if installed():
        run("apt-get", "purge", "-y", "-q", "xprov", check=False)


def test_contents_and_metadata(deb: Path) -> None:
    info = run("dpkg-deb", "-I", str(deb)).stdout
    assert "Package: xprov" in info and "Architecture: amd64" in info
    assert re.search(r"Depends: .*python3\.11.*adduser", info)
    listing = run("dpkg-deb", "-c", str(deb)).stdout
    for path in (
        "./usr/bin/xprov",
        "./etc/xprov/xprov.toml",
        "./etc/xprov/inventory.toml",
        "./etc/xprov/templates/",
        "./lib/systemd/system/xprov.service",
        "./lib/systemd/system/xprov-witness.service",
        "./usr/share/xprov/vendor_templates/yealink/device.cfg",
        "./usr/share/man/man1/xprov.1.gz",
        "./usr/lib/xprov/venv/bin/python3 -> ../../../../bin/python3",
    ):
        assert path in listing, path
    assert ".pyc" not in listing and "__pycache__" not in listing
    extracted = Path(run("mktemp", "-d").stdout.strip())
    try:
        run("dpkg-deb", "-e", str(deb), str(extracted))
        assert (extracted / "conffiles").read_text().split() == [
            "/etc/xprov/inventory.toml",
            "/etc/xprov/xprov.toml",
        ]
    finally:
        shutil.rmtree(extracted)


def test_lintian_finds_no_errors(deb: Path) -> None:
    if not shutil.which("lintian"):
        run("apt-get", "install", "-y", "-q", "--no-install-recommends", "lintian")
    report = run("lintian", "--tag-display-limit", "0", str(deb), check=False)
    (deb.parent / "lintian.txt").write_text(report.stdout + report.stderr)
    errors = [line for line in report.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], report.stdout


def serve_as_the_unit_would(log: Path) -> tuple[subprocess.Popen, int, int, str]:
    """ExecStart as user xprov with the unit's capability and descriptor limit; unprivileged
    ports when the environment cannot grant it or ports 80/69 are taken."""
    text = CONFIG.read_text()
    privileged = not port_open(80) and udp_port_free(69, "0.0.0.0") and _can_grant_capability()
    http, tftp = (80, 69) if privileged else (free_port(), free_port(socket.SOCK_DGRAM))
    if not privileged:
        text = text.replace('listen = ["0.0.0.0:80"]', f'listen = ["0.0.0.0:{http}"]')
        text = text.replace('listen = ["0.0.0.0:69"]', f'listen = ["0.0.0.0:{tftp}"]')
        CONFIG.write_text(text)
    files = unit_descriptor_limit()
    command = ["prlimit", f"--nofile={files}:{files}"]
    command += ["setpriv", "--reuid=xprov", "--regid=xprov", "--init-groups", "--no-new-privs"]
    if privileged:
        command += ["--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service"]
    exec_start = _unit_value("ExecStart").split()
    proc = subprocess.Popen(
        [*command, "env", "PYTHONDONTWRITEBYTECODE=1", *exec_start],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for(lambda: port_open(http) or proc.poll() is not None, 30, "xprov listening")
    assert proc.poll() is None, log.read_text()
    return proc, http, tftp, "as xprov with CAP_NET_BIND_SERVICE" if privileged else "as xprov"


def unit_descriptor_limit() -> int:
    """The unit's LimitNOFILE, or as much of it as this environment grants (a container's
    hard limit may be lower, and no root raises it)."""
    return min(int(_unit_value("LimitNOFILE")), resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def _can_grant_capability() -> bool:
    return (
        run(
            "setpriv",
            "--inh-caps=+net_bind_service",
            "--ambient-caps=+net_bind_service",
            "true",
            check=False,
        ).returncode
        == 0
    )


def _unit_value(key: str) -> str:
    return next(
        line.split("=", 1)[1]
        for line in UNIT.read_text().splitlines()
        if line.startswith(f"{key}=")
    )


def fetch(http: int, name: str) -> bytes:
    return run("curl", "-sf", "--max-time", "5", f"http://127.0.0.1:{http}/{name}").stdout.encode()


def test_install_run_reload_upgrade_purge(deb: Path, tmp_path: Path) -> None:
    run("apt-get", "install", "-y", "-q", str(deb))
    assert installed()
    assert run("id", "-u", "xprov").stdout.strip()
    token = Path("/etc/xprov/admin.token")
    assert token.stat().st_mode & 0o777 == 0o640 and len(token.read_text().strip()) == 48
    for path in (CONFIG, INVENTORY):  # they may hold passwords
        assert path.stat().st_mode & 0o777 == 0o640, path
    assert "OK" in run("/usr/bin/xprov", "check-config", "-c", str(CONFIG)).stdout
    verify = run("systemd-analyze", "verify", str(UNIT), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    for key, value in (
        ("User", "xprov"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("LimitNOFILE", "65536"),  # phones' connections and transfers: 1,024 is too few
    ):
        assert _unit_value(key) == value, key
    witness = Path("/lib/systemd/system/xprov-witness.service")
    verify = run("systemd-analyze", "verify", str(witness), check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    state = run("systemctl", "is-enabled", "xprov-witness", check=False).stdout.strip()
    assert state == "disabled", state  # the witness host enables it, no other
    assert "ExecStart=/usr/bin/xprov witness -c /etc/xprov/xprov.toml" in witness.read_text()

    # The operator's edits: sites on this host's loopback (nothing else is ever probed
    # here), a URL, a phone.
    config = CONFIG.read_text()
    for public, local in (("192.0.2.", "127.0.0."), ("198.51.100.", "127.0.1.")):
        config = config.replace(f'host = "{public}', f'host = "{local}')
    config = config.replace("http://provisioning.example.net", "http://127.0.0.1")
    CONFIG.write_text(config)
    INVENTORY.write_text(INVENTORY.read_text() + PHONE)

    marker = tmp_path / "marker"
    marker.touch()
    proc, http, tftp, how = serve_as_the_unit_would(tmp_path / "xprov.log")
    try:
        body = fetch(http, "00156574b150.cfg")
        assert b"account.1.display_name = Lobby" in body
        assert b"account.1.sip_server.1.address = 127.0.0.10" in body
        over_tftp = run(
            "curl", "-sf", "--max-time", "10", f"tftp://127.0.0.1:{tftp}/00156574b150.cfg"
        ).stdout.encode()
        assert over_tftp == body
        INVENTORY.write_text(INVENTORY.read_text().replace("Lobby", "Front desk"))
        os.kill(proc.pid, signal.SIGHUP)  # ExecReload
        wait_for(lambda: b"Front desk" in fetch(http, "00156574b150.cfg"), 20, "reloaded")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = (tmp_path / "xprov.log").read_text()
    assert '"event": "reloaded"' in log and "pkg-1001-Secret" not in log, how
    budget = next(json.loads(line) for line in log.splitlines() if '"event": "descriptors"' in line)
    assert budget["limit"] == unit_descriptor_limit(), budget
    assert budget["caps"] == budget["wanted"] == {"http": 10_000, "tftp": 1000}, budget
    written = run(
        "find",
        "/usr/lib/xprov",
        "/usr/share/xprov",
        "/etc/xprov",
        "-newer",
        str(marker),
        "-not",
        "-path",
        "/etc/xprov/*.toml",
    ).stdout.split()
    assert written == [], written  # nothing written at run time but our own edits

    # An upgrade keeps the edited conffiles.
    newer = tmp_path / "xprov_upgrade.deb"
    tree = tmp_path / "tree"
    run("dpkg-deb", "-R", str(deb), str(tree))
    control = tree / "DEBIAN" / "control"
    control.write_text(
        re.sub(r"^Version: (.*)-1$", r"Version: \1-2", control.read_text(), flags=re.M)
    )
    run("dpkg-deb", "-b", str(tree), str(newer))
    run("apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confold", str(newer))
    assert "127.0.0.10" in CONFIG.read_text() and "Front desk" in INVENTORY.read_text()
    assert CONFIG.stat().st_mode & 0o777 == 0o640

    # Remove keeps the configuration; purge removes it and the user.
    run("apt-get", "remove", "-y", "-q", "xprov")
    assert CONFIG.exists() and not Path("/usr/bin/xprov").exists()
    run("apt-get", "purge", "-y", "-q", "xprov")
    assert not Path("/etc/xprov").exists()
    assert run("id", "xprov", check=False).returncode != 0
    assert run("getent", "group", "xprov", check=False).returncode != 0
    assert not Path("/usr/lib/xprov").exists()
