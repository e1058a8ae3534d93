"""The drill's phones with their own second server and a NOTIFY port (issue 18), against real
Kamailio, coturn and MariaDB at two sites and xprov: NOTIFYs written by hand reach each
phone's port (a Yealink fetches on check-sync, an SPA challenges and fetches on the
authenticated retry), and the phones' OPTIONS really go unanswered once the softswitch dies;
then the `redundancy` scenario's fast variant, xprov's own templates and push included."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import time
import tomllib

from tests.bench import drill_scenario
from tests.drill_world import World
from tests.helpers import XPROV, wait_for
from tests.inventory_db import synthetic
from xprov.drill import firmware

PHONES, POLL = 6, 30.0


def notify(port: int, user: str, event: str, branch: str, cseq: int, auth: str = "") -> bytes:
    return (
        f"NOTIFY sip:{user}@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{branch};rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:xprov@127.0.0.1>;tag=t1\r\n"
        f"To: <sip:{user}@127.0.0.1>\r\nCall-ID: {branch}@test\r\nCSeq: {cseq} NOTIFY\r\n"
        f"Event: {event}\r\nSubscription-State: terminated\r\n"
        + (f"Authorization: {auth}\r\n" if auth else "")
        + "Content-Length: 0\r\n\r\n"
    ).encode()


def exchange(sock: socket.socket, port: int, request: bytes) -> tuple[int, str]:
    """Send `request` to the phone's port; its answer's status and text (resent every
    0.5 s, for at most 5 s, as a UDP client transaction would)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        sock.sendto(request, ("127.0.0.1", port))
        try:
            data = sock.recv(65535).decode()
        except TimeoutError:
            continue
        return int(data.split(" ", 2)[1]), data
    raise AssertionError(f"no answer from port {port}")


def digest(user: str, password: str, uri: str, challenge: str) -> str:
    """An Authorization for `challenge` (RFC 2617 section 3.2.2, MD5, qop auth)."""
    realm = re.search(r'realm="([^"]*)"', challenge)[1]  # type: ignore[index]
    nonce = re.search(r'nonce="([^"]*)"', challenge)[1]  # type: ignore[index]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    response = md5(
        f"{md5(f'{user}:{realm}:{password}')}:{nonce}:00000001:feed:auth:{md5(f'NOTIFY:{uri}')}"
    )
    return (
        f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="feed"'
    )


def test_phones_answer_a_notify_and_fetch_at_once(tmp_path) -> None:
    world = World(tmp_path, PHONES).start()
    lines = {
        p["lines"][0]["user"]: (p["vendor"], p["lines"][0]["password"]) for p in synthetic(PHONES)
    }
    contacts, events = tmp_path / "contacts.toml", tmp_path / "events.jsonl"
    drill = subprocess.Popen(
        [
            *XPROV,
            "drill",
            "-c",
            str(world.config),
            *("--poll", str(POLL), "--duration", "60", "--events", str(events)),
            *("--json", "--tftp-share", "0", "--push", str(contacts), "--second-server"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: (world.status().get("convergence") or {}).get("regular_phones", 0) >= PHONES,
            POLL + 30,
            "every phone polled",
        )
        killed = world.kill(["sip"])
        events.write_text(json.dumps({"at": killed, "what": "sip killed", "services": ["sip"]}))
        wait_for(lambda: world.events("switch"), 30, "the switch")
        answers: list[int] = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.5)
            for n, contact in enumerate(tomllib.loads(contacts.read_text())["contacts"]):
                user, uri = contact["user"], contact["uri"]
                port = int(uri.rsplit(":", 1)[1])
                assert uri == f"sip:{user}@127.0.0.1:{port}"
                vendor, password = lines[user]
                event = "check-sync;reboot=false" if vendor == "yealink" else "resync"
                code, text = exchange(sock, port, notify(port, user, event, f"a{n}", 1))
                answers.append(code)
                if vendor == "linksys":  # challenged with the line's credentials
                    assert code == 401 and f"Call-ID: a{n}@test" in text
                    (challenge,) = re.findall(r"WWW-Authenticate: (.*)\r\n", text)
                    auth = digest(user, password, f"sip:{user}@127.0.0.1:{port}", challenge)
                    code, text = exchange(sock, port, notify(port, user, event, f"b{n}", 2, auth))
                    answers.append(code)
                assert code == 200 and "CSeq: " in text and ";tag=" in text.split("To: ")[1]
            # not its vendor's event: refused, nothing fetched
            yealink = next(
                c
                for c in tomllib.loads(contacts.read_text())["contacts"]
                if lines[c["user"]][0] == "yealink"
            )
            port = int(yealink["uri"].rsplit(":", 1)[1])
            assert exchange(sock, port, notify(port, yealink["user"], "resync", "c", 1))[0] == 489
        out, err = drill.communicate(timeout=180)
    finally:
        if drill.poll() is None:
            drill.kill()
            drill.wait(10)
        world.stop()
    assert drill.returncode == 0, err
    result = json.loads(out)
    (event,) = result["events"]
    sip = event["convergence"]["sip"]
    push = sip["push"]
    spas = sum(1 for vendor, _ in lines.values() if vendor == "linksys")
    assert push["phones_notified"] == PHONES
    assert push["answers"] == {"200": PHONES, "401": spas, "489": 1}
    # each phone fetched on its NOTIFY, before its next poll (POLL s apart)
    assert push["fetched_on_notify"]["100%"] is not None
    assert push["fetched_on_notify"]["100%"] < POLL / 2
    # one SIP server in today's files: the phones' requests to the dead one find no other
    second = sip["second_server"]
    assert second["phones"] == 0 and second["failed_over"]["50%"] is None
    assert result["errors"] == {}


def test_the_four_variants_in_the_order_that_must_hold(tmp_path) -> None:
    """The `redundancy` scenario's fast variant: 20 phones every 5 s under each of four
    xprov (neither remedy, the phones' second server, the push, both) against one pair of
    Kamailios, chicago's killed once under all four. Orderings whose margin is a timer or
    a reboot (at least 30 s), not a race."""
    phones, poll = 20, 5.0
    spas = sum(1 for p in synthetic(phones) if p["vendor"] == "linksys")
    results = drill_scenario.redundancy_together(phones, poll, tmp_path, keepalive=1.0)
    sip = {variant: drill_scenario.sip_figures(result) for variant, result in results.items()}
    working = {variant: figures["working"]["100%"] for variant, figures in sip.items()}
    assert None not in working.values(), working
    for result in results.values():
        assert result["errors"] == {} and result["phones"] == phones
    # with push, every phone fetched on its NOTIFY, within a poll period of the switch; an
    # SPA only after it answered 401 and got the authenticated retry
    push = sip["push"]["push"]
    assert push["phones_notified"] == phones
    assert push["answers"] == {"200": phones, "401": spas}
    # with the second server too, a SIP switch changes no SPA file: only Yealinks are pushed
    both = sip["both"]["push"]
    assert both["phones_notified"] == phones - spas
    assert both["answers"] == {"200": phones - spas}
    for variant in ("push", "both"):
        push = sip[variant]["push"]
        assert push["fetched_on_notify"]["100%"] is not None, variant
        assert push["fetched_on_notify"]["100%"] < poll, variant
    assert "push" not in sip["neither"] and "push" not in sip["second server"]
    # with the second server, an SPA's file never names the backup first (its SRV list
    # keeps its order: no reboot), yet it works: by its own fallback, one Timer F (16 s)
    # after a request of its own, before and without any file naming the backup
    for variant in ("second server", "both"):
        second = sip[variant]["second_server"]
        assert sip[variant]["phones_on_new_site"] == phones - spas, variant
        assert second["phones"] >= spas, variant
        assert second["request_wait"]["50%"] >= firmware.SPA.timer_f, variant
    assert sip["neither"]["phones_on_new_site"] == phones
    # the SPAs' reboot (at least 30 s after a changed file) is what the second server saves
    assert working["second server"] < working["neither"]
    assert working["both"] < working["push"]
