"""The drill's fast variant (phones polling every 5 s) against two real sites: the whole
primary site dies; every simulated phone follows, with no error served."""

from __future__ import annotations

import json
import subprocess

from tests.drill_world import World
from tests.helpers import XPROV, wait_for, xprov

PHONES, POLL = 60, 5.0


def test_whole_primary_site_down(tmp_path) -> None:
    world = World(tmp_path, PHONES).start()
    try:
        events = tmp_path / "events.jsonl"
        drill = subprocess.Popen(
            [
                *XPROV,
                "drill",
                "-c",
                str(world.config),
                "--poll",
                str(POLL),
                "--duration",
                "35",
                "--events",
                str(events),
                "--json",
                "--tftp-share",
                "0.3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(
            lambda: (world.status().get("convergence") or {}).get("regular_phones", 0) >= PHONES,
            30,
            "every phone polled",
        )
        killed = world.kill(["sip", "stun", "db"])
        events.write_text(
            json.dumps({"at": killed, "what": "site killed", "services": ["sip", "stun", "db"]})
            + "\n"
        )
        out, err = drill.communicate(timeout=120)
        assert drill.returncode == 0, err
        result = json.loads(out)
        assert result["phones"] == PHONES and result["errors"] == {}
        assert "tftp" in result["mix"] and "linksys" in result["mix"]
        (event,) = result["events"]
        for service in ("sip", "stun"):
            figures = event["convergence"][service]
            assert figures["phones_on_new_site"] == PHONES, service
            assert None not in figures["fetched"].values()
        assert event["seed"]["average check (150 s)"]["100%"] is not None
        switched = {e["service"]: e["after"] for e in world.events("switch")}
        assert switched == {"sip": "virginia", "stun": "virginia", "db": "virginia"}
        text = xprov(world.config, "status", timeout=60).stdout
        assert f"{PHONES} of {PHONES} phones polling regularly fetched generation" in text
    finally:
        world.stop()
