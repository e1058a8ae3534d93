"""Real third-party peers on loopback, started by the tests from Debian packages:
Kamailio (SIP OPTIONS), coturn (STUN), MariaDB, and a TCP listener that never speaks.

Each peer runs in its own session (process group) under a private directory, so a test can
kill it (SIGKILL: the port closes, ICMP unreachable), pause it (SIGSTOP: no answer at all)
and resume or restart it. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

from tests.helpers import wait_for


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP (Kamailio listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port")


class Peer:
    """A foreground server process in its own process group."""

    name = "peer"
    netns: str | None = None  # run inside this network namespace (set before start)

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Peer:
        self.log = (self.dir / f"{self.name}.log").open("ab")
        command = self.command()
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        self.proc = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for(lambda: self.proc.poll() is not None or self.ready(), 30, f"{self.name} ready")
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.read_log()[-2000:]}")
        return self

    def read_log(self) -> str:
        return (self.dir / f"{self.name}.log").read_text(errors="replace")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group and wait until it is gone."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        self._reap()

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        # children of the group (Kamailio's workers) die with it; wait until none is left
        wait_for(lambda: not _group_alive(self.proc.pid), 10, f"{self.name} group gone")
        self.log.close()

    def __enter__(self) -> Peer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
children=2
tcp_children=1
auto_aliases=no
dns=no
rev_dns=no
disable_sctp=yes
server_header="Server: kamailio-test-{port}"
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
{tls_listen}
mpath="{modules}/"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
{tls_modules}
request_route {{
    if (is_method("OPTIONS")) {{
        append_to_reply("X-Peer-Port: {port}\\r\\n");
        sl_send_reply("{code}", "{reason}");
        exit;
    }}
    if (is_method("ACK")) {{ exit; }}
    sl_send_reply("405", "Method Not Allowed");
    exit;
}}
"""

TLS_CFG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = {key}
certificate = {cert}
"""


def kamailio_modules() -> str:
    found = glob.glob("/usr/lib/*/kamailio/modules/sl.so") + glob.glob(
        "/usr/lib/kamailio/modules/sl.so"
    )
    if not found:
        raise RuntimeError("kamailio is not installed (apt-get install kamailio)")
    return os.path.dirname(found[0])


class Kamailio(Peer):
    """A softswitch that answers every OPTIONS with `code` (200 by default), UDP and TCP,
    and over TLS on `tls_port` when given a certificate."""

    name = "kamailio"

    def __init__(
        self,
        directory: Path,
        port: int,
        host: str = "127.0.0.1",
        code: int = 200,
        reason: str = "OK",
        tls_port: int | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        super().__init__(directory)
        self.host, self.port, self.code, self.reason = host, port, code, reason
        self.tls_port, self.cert = tls_port, cert

    def command(self) -> list[str]:
        tls_listen = tls_modules = ""
        if self.tls_port and self.cert:
            (self.dir / "tls.cfg").write_text(TLS_CFG.format(cert=self.cert[0], key=self.cert[1]))
            tls_listen = f"enable_tls=yes\nlisten=tls:{self.host}:{self.tls_port}"
            tls_modules = (
                f'loadmodule "tls.so"\nmodparam("tls", "config", "{self.dir / "tls.cfg"}")'
            )
        config = self.dir / "kamailio.cfg"
        config.write_text(
            KAMAILIO_CFG.format(
                host=self.host,
                port=self.port,
                code=self.code,
                reason=self.reason,
                modules=kamailio_modules(),
                tls_listen=tls_listen,
                tls_modules=tls_modules,
            )
        )
        # -DD: stay in the foreground (workers are forked into our process group); -E: stderr
        return [
            "kamailio",
            "-DD",
            "-E",
            "-f",
            str(config),
            "-Y",
            str(self.dir),
            "-w",
            str(self.dir),
            "-m",
            "32",
            "-M",
            "4",
            "-a",
            "no",
        ]

    def ready(self) -> bool:
        return options_answered(self.host, self.port)


def options_answered(host: str, port: int) -> bool:
    request = (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {host}:9;branch="
        f"z9hG4bKready{time.monotonic_ns()};rport\r\nMax-Forwards: 70\r\nFrom: <sip:t@{host}>"
        f";tag=1\r\nTo: <sip:{host}>\r\nCall-ID: ready{time.monotonic_ns()}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.connect((host, port))
            s.send(request)
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


class Coturn(Peer):
    """coturn as a STUN-only server (no auth, no TLS, no relay use)."""

    name = "turnserver"

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(directory)
        self.host, self.port = host, port

    def command(self) -> list[str]:
        return [
            "turnserver",
            "-n",
            "--stun-only",
            "--no-auth",
            f"--listening-ip={self.host}",
            f"--relay-ip={self.host}",
            f"--listening-port={self.port}",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--no-rfc5780",
            "--relay-threads=1",
            f"--userdb={self.dir / 'turndb'}",
            f"--pidfile={self.dir / 'turnserver.pid'}",
            "--log-file=stdout",
            "--simple-log",
        ]

    def ready(self) -> bool:
        return stun_answered(self.host, self.port)


def stun_answered(host: str, port: int) -> bool:
    transaction = os.urandom(12)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.connect((host, port))
            s.send(struct.pack("!HHI", 1, 0, 0x2112A442) + transaction)
            return s.recv(2048)[8:20] == transaction
        except OSError:
            return False


class MariaDB(Peer):
    """A throw-away mariadbd with database `provisioning` and user `prov`/`provpass`."""

    name = "mariadbd"
    USER, PASSWORD, DATABASE = "prov", "provpass", "provisioning"

    def __init__(self, directory: Path, port: int, host: str = "127.0.0.1") -> None:
        super().__init__(directory)
        self.host, self.port = host, port
        self.socket = self.dir / "mysql.sock"

    def options(self) -> list[str]:
        return [
            "--no-defaults",
            f"--datadir={self.dir / 'data'}",
            "--user=root",
            "--innodb-log-file-size=8M",
            "--innodb-buffer-pool-size=32M",
            "--performance-schema=OFF",
            "--skip-name-resolve",
        ]

    def command(self) -> list[str]:
        if not (self.dir / "data" / "mysql").is_dir():
            subprocess.run(
                [
                    "mariadb-install-db",
                    *self.options(),
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        return [
            "mariadbd",
            *self.options(),
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket}",
            f"--pid-file={self.dir / 'mariadbd.pid'}",
        ]

    def ready(self) -> bool:
        return (
            subprocess.run(
                [
                    "mariadb-admin",
                    "--no-defaults",
                    f"--socket={self.socket}",
                    "-uroot",
                    "--connect-timeout=1",
                    "ping",
                ],
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )

    def start(self) -> MariaDB:
        super().start()
        self.sql(
            f"CREATE DATABASE IF NOT EXISTS `{self.DATABASE}`;"
            + "".join(
                f"CREATE USER IF NOT EXISTS '{self.USER}'@'{h}' IDENTIFIED BY "
                f"'{self.PASSWORD}'; GRANT ALL ON `{self.DATABASE}`.* TO "
                f"'{self.USER}'@'{h}';"
                for h in ("127.0.0.1", "localhost", "%")
            )
        )
        return self

    def sql(self, statements: str) -> str:
        done = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.socket}",
                "-uroot",
                "-N",
                "-B",
                "-e",
                statements,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout


class SilentListener:
    """A TCP port that accepts connections (through the kernel's backlog) and never
    speaks: a hung database, as far as a client can tell."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.host, self.port = host, self.sock.getsockname()[1]

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class Namespace:
    """A network namespace of our own, joined to this one by a veth pair: the root side is
    `.1` of 10.231.<n>.0/24, the namespace holds `addresses` (.2, .3, ...). Everything sent
    between the two crosses nftables in the namespace, where packets can be dropped."""

    def __init__(self, name: str, subnet: int, count: int = 2) -> None:
        self.name, self.subnet = name, subnet
        self.local = f"10.231.{subnet}.1"
        self.addresses = [f"10.231.{subnet}.{2 + i}" for i in range(count)]
        self.veth = f"xpv{subnet}"

    def __enter__(self) -> Namespace:
        self.close()
        ns = ["ip", "netns", "exec", self.name]
        for command in (
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "xpin"],
            ["ip", "link", "set", "xpin", "netns", self.name],
            ["ip", "addr", "add", f"{self.local}/24", "dev", self.veth],
            ["ip", "link", "set", self.veth, "up"],
            [*ns, "ip", "link", "set", "lo", "up"],
            *[[*ns, "ip", "addr", "add", f"{a}/24", "dev", "xpin"] for a in self.addresses],
            [*ns, "ip", "link", "set", "xpin", "up"],
        ):
            subprocess.run(command, check=True, capture_output=True, timeout=30)
        return self

    def drop(self, percent: int) -> None:
        """Drop `percent` % of the packets that arrive from the root namespace."""
        rules = (
            "table inet xprov_loss {\n chain input {\n"
            "  type filter hook input priority 0;\n"
            f"  ip saddr {self.local} numgen random mod 100 < {percent} counter drop\n }}\n}}\n"
        )
        subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "-f", "-"],
            input=rules,
            text=True,
            check=True,
            capture_output=True,
            timeout=30,
        )

    def dropped(self) -> int:
        out = subprocess.run(
            ["ip", "netns", "exec", self.name, "nft", "list", "table", "inet", "xprov_loss"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        found = [int(x) for x in re.findall(r"counter packets (\d+)", out)]
        return sum(found)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.close()


# SIPp's message log (-trace_msg): a line of dashes and a time stamp, then what happened
_SIPP_ENTRY = re.compile(
    r"^-{40,} .*\n(UDP message (?:received|sent)) [\[(]\d+\]? ?bytes\)? ?:\n\n", re.M
)


class Sipp(Peer):
    """SIPp (Debian sip-tester) as a UAS on loopback UDP, playing one scenario file of
    tests/data/sipp/ for `calls` incoming calls (a NOTIFY exchange each), then exiting: 0
    when every call went as the scenario says (its regexp checks and digest checks
    included), another code otherwise. Its control and RTP-echo sockets, which it always
    opens, are on loopback ports of our choosing too. `keys` fill the scenario's
    [keywords] (-key)."""

    name = "sipp"
    SCENARIOS = Path(__file__).parent / "data" / "sipp"

    def __init__(
        self,
        directory: Path,
        scenario: str,
        port: int,
        host: str = "127.0.0.1",
        calls: int = 1,
        keys: dict[str, str] | None = None,
    ) -> None:
        super().__init__(directory)
        self.scenario, self.port, self.host, self.calls = scenario, port, host, calls
        self.keys = keys or {}

    def command(self) -> list[str]:
        keys = [arg for key, value in self.keys.items() for arg in ("-key", key, value)]
        return [
            "sipp",
            "-sf",
            str(self.SCENARIOS / self.scenario),
            "-t",
            "u1",
            "-i",
            self.host,
            "-p",
            str(self.port),
            "-ci",
            self.host,
            "-cp",
            str(free_udp_tcp_port(self.host)),
            "-mi",
            self.host,
            "-mp",
            str(free_udp_tcp_port(self.host)),
            "-m",
            str(self.calls),
            "-nostdin",
            *keys,
            "-trace_msg",
            "-message_file",
            str(self.dir / "messages.log"),
            "-trace_logs",
            "-log_file",
            str(self.dir / "actions.log"),
            "-trace_err",
            "-error_file",
            str(self.dir / "errors.log"),
        ]

    def ready(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind((self.host, self.port))
            except OSError:
                return True  # SIPp holds its port
        return False

    def wait(self, timeout: float = 30.0) -> int:
        """SIPp's exit code once it has played its calls (bounded by `timeout`)."""
        assert self.proc is not None
        wait_for(lambda: self.proc.poll() is not None, timeout, "sipp to finish its calls")
        self._reap()
        return self.proc.returncode

    def _text(self, name: str) -> str:
        path = self.dir / name
        # bytes decoded as they are: the messages' CRLFs stay (read_text would make them LF)
        return path.read_bytes().decode(errors="replace") if path.exists() else ""

    def messages(self, direction: str = "received") -> list[str]:
        """The SIP messages SIPp received (or "sent"), in order, as they came."""
        text = self._text("messages.log")
        parts = _SIPP_ENTRY.split(text)[1:]  # [kind, message, kind, message, ...]
        # each message as it came, then a newline of the log's own
        return [
            message.removesuffix("\n")
            for kind, message in zip(parts[::2], parts[1::2], strict=True)
            if kind == f"UDP message {direction}"
        ]

    def actions(self) -> str:
        """What the scenario's <log> actions wrote."""
        return self._text("actions.log")

    def errors(self) -> str:
        return self._text("errors.log")
