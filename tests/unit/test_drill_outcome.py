"""The drill's result from a record of what the phones saw (pure: a record built by hand,
no server, no clock)."""

from __future__ import annotations

import json
from pathlib import Path

from xprov.drill import outcome, report
from xprov.drill.phones import SimPhone
from xprov.drill.run import Observation, Record

CHICAGO = {"sip": "chicago", "stun": "chicago", "db": "chicago"}


def phone(i: int, vendor: str = "yealink", transport: str = "http") -> SimPhone:
    return SimPhone(f"0015657400{i:02x}", vendor, transport, None, ("f",), 10.0 * i, False)


def record(phones: list[SimPhone]) -> Record:
    """Started at 1000; the server moved sip and db to virginia at 1021; each phone polls
    every 10 s from its phase and gets virginia from 1025 on."""
    rec = Record(started=1000.0, ended=1060.0, requests=4, latencies=[0.001, 0.002, 0.1])
    rec.errors.update({"tftp TimeoutError": 1})
    rec.selections = [
        (1000.0, 1, CHICAGO),
        (1021.0, 2, {**CHICAGO, "sip": "virginia", "db": "virginia"}),
    ]
    for p in phones:
        rec.seen[p.mac] = [
            Observation(at, {"sip": "virginia" if at >= 1025 else "chicago"}, 0)
            for at in (1000.0 + p.phase + 10 * k for k in range(6))
        ]
    return rec


def test_an_event_from_the_events_file() -> None:
    phones = [phone(0), phone(1, "linksys", "tftp")]  # phases 0 and 10 s
    mark = {"at": 1020.0, "what": "sip killed", "services": ["db", "sip", "stun"]}
    settings = outcome.Settings(poll=10.0, jitter=0.1, reboot=(30.0, 60.0))
    result = outcome.result(record(phones), phones, [mark], settings)
    assert list(result) == [
        *("requests", "requests_per_s", "errors", "latency_ms"),  # JSON keeps this order
        *("phones", "poll_s", "jitter_pct", "seconds", "mix", "working_means", "events"),
    ]
    assert result["working_means"] == outcome.WORKING
    assert result["requests"] == 4 and result["requests_per_s"] == 0.1
    assert result["errors"] == {"tftp TimeoutError": 1}
    assert (result["phones"], result["poll_s"], result["jitter_pct"]) == (2, 10.0, 10)
    assert result["seconds"] == 60.0 and result["mix"] == "1 linksys/tftp, 1 yealink/http"
    (event,) = result["events"]
    assert event["what"] == "sip killed" and event["at"] == 1020.0
    assert event["detection_s"] == 1.0  # db, the first service named, moved at 1021
    assert list(event["convergence"]) == ["sip"]  # db is xprov's own; stun never moved
    sip = event["convergence"]["sip"]
    # phone 0 polls at 1030 (10 s after), phone 1 at 1030 too (phase 10: 1010, 1020, 1030)
    assert sip["fetched"] == {"50%": 10.0, "95%": 10.0, "100%": 10.0}
    assert sip["phones_on_new_site"] == 2
    assert sip["working"] == sip["fetched"]  # neither phone reboots
    assert sip["refetched"] == {"50%": 9.0, "95%": 9.0, "100%": 9.0}  # from the switch, 1021
    assert "second_server" not in sip and "push" not in sip  # neither was on
    assert event["seed"] == report.seed_comparison(2)


def test_without_events_each_switch_seen_is_one() -> None:
    phones = [phone(0)]
    result = outcome.result(record(phones), phones, [], outcome.Settings(10.0, 0.0, (1, 2)))
    (event,) = result["events"]
    assert event["what"] == "switch to generation 2" and event["at"] == 1021.0
    assert event["detection_s"] == 0.0 and list(event["convergence"]) == ["sip"]
    assert event["convergence"]["sip"]["fetched"]["100%"] == 9.0  # fetched at 1030


def test_a_switch_just_before_the_mark_is_its_consequence() -> None:
    """The mark is written after the kill: a switch up to MARK_SLACK_S before it counts."""
    phones = [phone(0)]
    settings = outcome.Settings(10.0, 0.0, (1.0, 2.0))
    just = {"at": 1021.0 + outcome.MARK_SLACK_S / 2, "what": "late", "services": ["sip"]}
    (event,) = outcome.result(record(phones), phones, [just], settings)["events"]
    assert event["detection_s"] == -outcome.MARK_SLACK_S / 2 and list(event["convergence"])
    long = {**just, "at": 1021.0 + outcome.MARK_SLACK_S + 0.5}
    (event,) = outcome.result(record(phones), phones, [long], settings)["events"]
    assert event["detection_s"] is None and event["convergence"] == {}


def test_events_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert outcome.read_events(str(path)) == [] and outcome.read_events(None) == []
    marks = [{"at": 1.5, "what": "sip killed", "services": ["sip"]}, {"at": 2, "what": "x"}]
    path.write_text("\n".join(json.dumps(m) for m in marks) + "\n\n")
    assert outcome.read_events(str(path)) == marks
