"""Issue 14: every model of the tables gets, from the real server, every file it asks for at
boot, over HTTP (curl, with the model's User-Agent) and TFTP (tftp-hpa), the same bytes.

Yealink: `<mac>.boot`, then what it includes (its model's common file, then `<mac>.cfg`); a
phone without a boot file asks for its model's `y0000000000XX.cfg` itself. SPA: the file its
factory Profile_Rule names (`spa$PSN.cfg`), then the `$MA.xml` that file's Profile_Rule_B
names. A model outside the tables: a check-config warning, its own files served, its boot file
on the generic common file, and its model file 404 with an info line, never a charge."""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import XprovProcess, free_port, sample_config, xprov
from xprov.vendors.linksys_models import MODELS as SPA_MODELS
from xprov.vendors.yealink_models import MODELS as YEALINK_MODELS

YEALINK_MACS = {row.name: f"805ec0{n:06x}" for n, row in enumerate(YEALINK_MODELS)}
SPA_MACS = {row.name: f"0002fd{n:06x}" for n, row in enumerate(SPA_MODELS)}
NEW_YEALINK, NEW_SPA = ("T99X", "805ec0ffff01"), ("SPA999", "0002fdffff01")
PASSWORD = "model-table-Secret-1"


def phone(mac: str, vendor: str, model: str, n: int) -> str:
    line = f'{{ user = "{2000 + n}", password = "{PASSWORD}{n}" }}'
    return f'[[phones]]\nmac = "{mac}"\nvendor = "{vendor}"\nmodel = "{model}"\nlines = [{line}]\n'


def inventory() -> str:
    phones = [
        *(("yealink", row.name, YEALINK_MACS[row.name]) for row in YEALINK_MODELS),
        *(("linksys", row.name, SPA_MACS[row.name]) for row in SPA_MODELS),
        ("yealink", *NEW_YEALINK),
        ("linksys", *NEW_SPA),
    ]
    return "\n".join(phone(mac, vendor, model, n) for n, (vendor, model, mac) in enumerate(phones))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("models")
    http_port, tftp_port = free_port(), free_port(socket.SOCK_DGRAM)
    config = sample_config(tmp, http_port=http_port, tftp_port=tftp_port, inventory=inventory())
    with XprovProcess(config, http_port, tmp / "xprov.log") as proc:
        proc.tftp_port, proc.tmp = tftp_port, tmp
        yield proc


def over_http(port: int, names: list[str], user_agent: str) -> dict[str, tuple[int, bytes]]:
    """Each name fetched by one curl (one connection, as a phone's boot sequence) with the
    model's User-Agent: name -> (status, body)."""
    with_bodies = [x for name in names for x in (f"http://127.0.0.1:{port}/{name}", "-o", "-")]
    marker = "\n@@xprov-status %{http_code}@@\n"
    done = subprocess.run(
        ["curl", "-s", "--max-time", "10", "-A", user_agent, "-w", marker, *with_bodies],
        capture_output=True,
        timeout=30,
    )
    parts = re.split(rb"\n@@xprov-status (\d+)@@\n", done.stdout)
    bodies, statuses = parts[0::2], [int(s) for s in parts[1::2]]
    assert len(statuses) == len(names), done.stderr
    return {name: (statuses[i], bodies[i]) for i, name in enumerate(names)}


def over_tftp(port: int, names: list[str], out: Path) -> dict[str, bytes | None]:
    """Each name fetched by one tftp-hpa session: name -> its bytes, or None if refused."""
    out.mkdir(exist_ok=True)
    script = "binary\n" + "".join(f"get {name} {out / name}\n" for name in names) + "quit\n"
    subprocess.run(
        ["tftp", "-4", "127.0.0.1", str(port)], input=script.encode(), capture_output=True,
        timeout=60,
    )  # fmt: skip
    return {name: (out / name).read_bytes() if (out / name).exists() else None for name in names}


def includes(boot: bytes) -> list[str]:
    return re.findall(r'^include:config "([^"]+)"$', boot.decode(), re.MULTILINE)


@pytest.mark.parametrize("row", YEALINK_MODELS, ids=lambda row: row.name)
def test_every_yealink_model_gets_its_boot_sequence(server, row, tmp_path: Path) -> None:
    mac = YEALINK_MACS[row.name]
    ua = f"{row.form.value.format(model=row.name)} {row.family}.86.0.5 {mac}"
    own_common = [f"y{code:012d}.cfg" for code in row.codes]
    first = over_http(server.http_port, [f"{mac}.boot", *own_common], ua)
    status, boot = first[f"{mac}.boot"]
    assert status == 200
    # the boot file names the model's common file, then the phone's own
    assert includes(boot) == [own_common[0], f"{mac}.cfg"]
    answers = {**first, **over_http(server.http_port, [f"{mac}.cfg"], ua)}
    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(answers, 200)
    assert f"{PASSWORD}".encode() in answers[f"{mac}.cfg"][1]
    assert f"{PASSWORD}".encode() not in answers[own_common[0]][1]
    assert answers[own_common[0]][1].startswith(b"#!version:1.0.0.1\n")
    # TFTP: the same names, the same bytes (no User-Agent: the name says it all)
    fetched = over_tftp(server.tftp_port, list(answers), tmp_path / "tftp")
    assert fetched == {name: body for name, (_, body) in answers.items()}


@pytest.mark.parametrize("row", SPA_MODELS, ids=lambda row: row.name)
def test_every_spa_model_gets_its_profile_then_its_own_file(server, row, tmp_path: Path) -> None:
    mac = SPA_MACS[row.name]
    ua = row.user_agent.format(MAC=mac.upper())
    answers = over_http(server.http_port, [*row.files, f"{mac}.xml"], ua)
    assert {name: status for name, (status, _) in answers.items()} == dict.fromkeys(answers, 200)
    for file in row.files:
        profile = answers[file][1].decode()
        assert "/$MA.xml</Profile_Rule_B>" in profile and profile.startswith("<flat-profile>")
        assert PASSWORD not in profile
    assert f'<Password_1_ ua="na">{PASSWORD}'.encode() in answers[f"{mac}.xml"][1]
    fetched = over_tftp(server.tftp_port, list(answers), tmp_path / "tftp")
    assert fetched == {name: body for name, (_, body) in answers.items()}


def test_the_reported_models_get_their_common_files(server) -> None:
    """Issue 14, items 1 and 2: a T31P, T30P and T33P boot file names its model's common
    file (a T31G's too); an SPA525G2's spa525G2.cfg is served over HTTP and TFTP."""
    for model, common in (
        ("T31P", "y000000000123.cfg"),
        ("T30P", "y000000000127.cfg"),
        ("T33P", "y000000000124.cfg"),
        ("T31G", "y000000000123.cfg"),
    ):
        mac = YEALINK_MACS[model]
        (status, boot) = over_http(server.http_port, [f"{mac}.boot"], "Yealink")[f"{mac}.boot"]
        assert (status, includes(boot)) == (200, [common, f"{mac}.cfg"])
    ua = f"Cisco/SPA525G2-7.6.2 ({SPA_MACS['SPA525G2'].upper()})(CBT1)"
    (status, body) = over_http(server.http_port, ["spa525G2.cfg"], ua)["spa525G2.cfg"]
    assert status == 200 and b"<flat-profile>" in body
    assert over_tftp(server.tftp_port, ["spa525G2.cfg"], server.tmp / "525") == {
        "spa525G2.cfg": body
    }


def test_an_unknown_model_is_a_warning_and_still_served(server) -> None:
    checked = xprov(server.config, "check-config")
    assert checked.returncode == 0, checked.stderr
    warnings = [line for line in checked.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2
    assert "yealink model 'T99X'" in warnings[1] and NEW_YEALINK[1] in warnings[1]
    assert "y000000000000.cfg" in warnings[1]
    assert "linksys model 'SPA999'" in warnings[0] and NEW_SPA[1] in warnings[0]
    (logged,) = server.events("unknown_models")
    assert logged["level"] == "warning" and len(logged["models"]) == 2
    mac = NEW_YEALINK[1]
    ua = f"Yealink SIP-T99X 199.86.0.5 {mac}"
    answers = over_http(server.http_port, [f"{mac}.boot", "y000000000000.cfg", f"{mac}.cfg"], ua)
    assert [status for status, _ in answers.values()] == [200, 200, 200]
    assert includes(answers[f"{mac}.boot"][1]) == ["y000000000000.cfg", f"{mac}.cfg"]
    spa = over_http(server.http_port, [f"{NEW_SPA[1]}.xml"], "Cisco/SPA999-7.6.2 (X)(Y)")
    assert spa[f"{NEW_SPA[1]}.xml"][0] == 200


def test_a_new_models_file_is_404_with_an_info_line_and_no_charge(server) -> None:
    """A model the table does not know asks for its model file on every poll: 404 with an
    empty body, an `unknown_model` info line, never a `security` event nor a charge (its
    source keeps every token: the office's real phones are never locked out by it)."""
    before_security = len(server.events("security"))
    ua = f"Yealink SIP-T99X 199.86.0.5 {NEW_YEALINK[1]}"
    for _ in range(30):  # more than the sample's bad_answer_burst (20)
        answers = over_http(server.http_port, ["y000000000199.cfg", "spa999.cfg"], ua)
        assert answers == {"y000000000199.cfg": (404, b""), "spa999.cfg": (404, b"")}
    lines = [e for e in server.events("unknown_model") if e["file"] == "y000000000199.cfg"]
    assert lines and {e["level"] for e in lines} == {"info"}
    assert len(server.events("security")) == before_security
    # the source was never charged: an unknown MAC still costs a token and is logged
    answer = over_http(server.http_port, ["805ec0fffff0.cfg"], ua)["805ec0fffff0.cfg"]
    assert answer == (404, b"")
    assert len(server.events("security")) == before_security + 1
