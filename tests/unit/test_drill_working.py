"""When a simulated phone works again (issue 18), from records written by hand: by its file,
an SPA after its reboot, by its own second server, and what the push did. Pure."""

from __future__ import annotations

from xprov.drill import outcome
from xprov.drill.phones import SimPhone, SipServer, SipServers
from xprov.drill.run import Observation, Record, convergence
from xprov.drill.sipside import NotifySeen, SipEvent
from xprov.drill.working import figures

KILL, SWITCH = 1000.0, 1003.5
CHICAGO = SipServer("127.0.0.1", 5060, "chicago")
VIRGINIA = SipServer("127.0.0.2", 5070, "virginia")
BOTH = SipServers((CHICAGO, VIRGINIA), concurrent=True)


def seen(at: float, site: str, body: int, named: SipServers = BOTH, trigger: str = "poll"):
    return Observation(at, {"sip": site}, body, "", named, trigger)


def failover(started: float, dead_at: float, answered: float) -> list[SipEvent]:
    return [
        SipEvent(990.0, "answered", str(CHICAGO), "chicago", 990.0),
        SipEvent(dead_at, "timeout", str(CHICAGO), "chicago", started),
        SipEvent(answered, "answered", str(VIRGINIA), "virginia", started, moved=True),
    ]


def test_by_its_file_a_yealink_at_once_an_spa_after_its_reboot() -> None:
    files = [seen(970.0, "chicago", 1), seen(1030.0, "virginia", 2)]
    yealink = figures(files, [], KILL, SWITCH, ["sip"], "virginia", 0.0, False)
    assert yealink == (30.0, 26.5, None, None, 30.0, 30.0)
    spa = figures(files, [], KILL, SWITCH, ["sip"], "virginia", 40.0, False)
    assert (spa.fetched, spa.working, spa.incoming) == (30.0, 70.0, 70.0)
    never = figures(files[:1], [], KILL, SWITCH, ["sip"], "virginia", 40.0, False)
    assert never == (None, None, None, None, None, None)


def test_by_its_own_second_server_without_a_poll() -> None:
    srv = SipServers((CHICAGO, VIRGINIA))  # an SPA's SRV list: p=0 chicago, p=1 virginia
    unchanged = [seen(970.0, "chicago", 1, srv), seen(1030.0, "chicago", 1, srv)]
    sip = failover(1000.4, 1016.4, 1016.45)
    spa = figures(unchanged, sip, KILL, SWITCH, ["sip"], "virginia", 40.0, True)
    assert spa.fetched is None and spa.refetched == 26.5  # its file never names virginia first
    assert round(spa.failover, 2) == 16.45 and spa.wait == 16.05  # type: ignore[arg-type]
    assert spa.working == spa.failover  # the file did not change: no reboot
    assert spa.incoming == spa.working  # no concurrent registration in an SPA's file
    # the same events, the second server not used: only the file counts
    assert figures(unchanged, sip, KILL, SWITCH, ["sip"], "virginia", 40.0, False).working is None
    # STUN has no second server in either vendor's file (fact sheet 1.5, 2.2)
    assert figures(unchanged, sip, KILL, SWITCH, ["stun"], "virginia", 0.0, True).working is None


def test_the_first_route_wins_and_a_later_reboot_moves_working_to_its_end() -> None:
    files = [seen(970.0, "chicago", 1), seen(1030.0, "virginia", 2)]
    sip = failover(1000.4, 1032.4, 1032.45)
    yealink = figures(files, sip, KILL, SWITCH, ["sip"], "virginia", 0.0, True)
    assert yealink.working == 30.0 and round(yealink.failover, 2) == 32.45  # type: ignore[arg-type]
    assert yealink.incoming == 0.0  # concurrent: virginia held its registration all along
    sip = failover(1000.4, 1016.4, 1016.45)
    spa = figures(files, sip, KILL, SWITCH, ["sip"], "virginia", 40.0, True)
    assert spa.working == 70.0  # worked at 16.45 s, then rebooted on the changed file
    successive = SipServers((CHICAGO, VIRGINIA), concurrent=False)
    files = [seen(970.0, "chicago", 1, successive), seen(1030.0, "virginia", 2)]
    later = figures(files, sip, KILL, SWITCH, ["sip"], "virginia", 0.0, True)
    assert later.incoming == later.working and round(later.working, 2) == 16.45  # type: ignore[arg-type]


def test_a_request_sent_to_a_new_files_first_server_is_no_failover() -> None:
    files = [seen(970.0, "chicago", 1), seen(1005.0, "virginia", 2)]
    sip = [
        SipEvent(990.0, "answered", str(CHICAGO), "chicago", 990.0),
        SipEvent(1005.01, "answered", str(VIRGINIA), "virginia", 1005.0),  # the new file's
    ]
    yealink = figures(files, sip, KILL, SWITCH, ["sip"], "virginia", 0.0, True)
    assert yealink.failover is None and yealink.wait is None and yealink.working == 5.0


def phone(i: int, vendor: str) -> SimPhone:
    return SimPhone(f"0015650000{i:02x}", vendor, "http", None, ("f",), 0.0, vendor == "linksys")


def test_the_figures_of_the_second_server_and_the_push() -> None:
    phones = [phone(1, "yealink"), phone(2, "linksys"), phone(3, "yealink")]
    record = Record(started=960.0, ended=1080.0, keepalive=1.0, notifies={})
    record.seen = {
        # polled after the switch: by its file at 6 s, no failover, no NOTIFY
        phones[2].mac: [seen(970.0, "chicago", 1), seen(1006.0, "virginia", 2)],
        phones[0].mac: [seen(970.0, "chicago", 1), seen(1008.0, "virginia", 2, trigger="push")],
        phones[1].mac: [
            seen(970.0, "chicago", 1, SipServers((CHICAGO, VIRGINIA))),
            seen(1012.0, "chicago", 1, SipServers((CHICAGO, VIRGINIA)), trigger="push"),
        ],
    }
    record.sip = {
        phones[0].mac: failover(1000.2, 1032.2, 1032.25),
        phones[1].mac: failover(1000.7, 1016.7, 1016.75),
    }
    assert record.notifies is not None
    record.notifies[phones[0].mac] = [NotifySeen(1007.9, "check-sync", 200)]
    record.notifies[phones[1].mac] = [
        NotifySeen(1011.0, "resync", 401),
        NotifySeen(1011.9, "resync", 200),
    ]
    sip = convergence(record, phones, KILL, ["sip"], "virginia", (30.0, 60.0), switched=SWITCH)
    assert sip["working"]["100%"] == 16.8  # the SPA by its second server; the Yealink at 8 s
    assert sip["fetched"]["100%"] is None and sip["phones_on_new_site"] == 2
    second = sip["second_server"]
    assert second["phones"] == 2 and second["keepalive_s"] == 1.0
    # of the two phones that failed over, not of all three
    assert second["failed_over"] == {"50%": 16.8, "95%": 32.2, "100%": 32.2}
    assert second["request_wait"]["100%"] == 32.0  # 32.05: Timer F, then virginia's answer
    assert second["incoming"] == {"50%": 0.0, "95%": 16.8, "100%": 16.8}  # Yealinks: concurrent
    assert sip["push"] == {
        "phones_notified": 2,
        "answers": {"200": 2, "401": 1},
        # of the two phones notified: the third's file left as it was is not pushed
        "fetched_on_notify": {"50%": 4.5, "95%": 8.5, "100%": 8.5},
    }
    assert sip["refetched"] == {"50%": 4.5, "95%": 8.5, "100%": 8.5}
    mark = {"at": KILL, "what": "sip killed", "services": ["sip"]}
    record.selections = [
        (960.0, 1, {"sip": "chicago"}),
        (SWITCH + 0.25, 2, {"sip": "virginia"}),  # the drill sees it at its next look
    ]
    record.switched_at = {2: SWITCH}  # when the server says it switched
    result = outcome.result(record, phones, [mark], outcome.Settings(60.0, 0.1, (30.0, 60.0)))
    (event,) = result["events"]
    assert event["detection_s"] == 3.75  # the switch as the drill saw it
    assert event["convergence"]["sip"]["push"] == sip["push"]  # from the server's switch
    text = outcome.report.describe(result)
    assert "own second server (a request every 1.0 s): 2 phones failed over" in text
    assert "push: 2 phones got a NOTIFY (answers 200 x2, 401 x1)" in text
    assert f"working: {outcome.WORKING}" in text
