"""The drill's pure parts: simulated phones, which site a file points at, the figures."""

from __future__ import annotations

from pathlib import Path

from xprov.drill import report
from xprov.drill.phones import simulate, sites_in
from xprov.provisioning import Provisioner, Served


def test_simulated_phones_ask_what_real_ones_ask(provisioner: Provisioner) -> None:
    phones = list(provisioner.inputs.inventory.phones.values())
    sim = {p.mac: p for p in simulate(phones, tftp_share=0.0, poll=60)}
    t46g, spa = sim["00156574b150"], sim["0002fdff2103"]
    assert t46g.files == ("00156574b150.boot", "y000000000028.cfg", "00156574b150.cfg")
    assert t46g.user_agent == "Yealink SIP-T46G 28.83.0.50 00:15:65:74:b1:50"
    assert not t46g.reboots and spa.reboots
    assert spa.files == ("spa504G.cfg", "0002fdff2103.xml")
    assert spa.user_agent is not None and spa.user_agent.startswith("Cisco/SPA504G-7.6.2 (")
    for phone in sim.values():  # every file the drill asks for is served
        for name in phone.files:
            assert isinstance(provisioner.provide(name, phone.user_agent), Served), name
    assert sorted(p.phase for p in sim.values()) == [0.0, 15.0, 30.0, 45.0]
    tftp = simulate(phones, tftp_share=1.0, poll=60)
    assert {p.transport for p in tftp} == {"tftp"} and {p.user_agent for p in tftp} == {None}


def test_which_site_a_file_points_at(provisioner: Provisioner) -> None:
    config = provisioner.inputs.config
    yealink = provisioner.provide("00156574b150.cfg")
    spa = provisioner.provide("0002fdff2103.xml")
    assert isinstance(yealink, Served) and isinstance(spa, Served)
    assert sites_in("yealink", yealink.body, config) == {"sip": "chicago", "stun": "chicago"}
    assert sites_in("linksys", spa.body, config) == {"sip": "chicago", "stun": "chicago"}
    provisioner.active.switch({"sip": "virginia"})
    spa = provisioner.provide("0002fdff2103.xml")
    assert isinstance(spa, Served)
    assert sites_in("linksys", spa.body, config) == {"sip": "virginia", "stun": "chicago"}
    assert sites_in("linksys", b"<broken", config) == {"sip": None, "stun": None}


def test_milestones_and_curve() -> None:
    delays = [1.0, 2.0, 3.0, 4.0, None]
    assert report.milestones(delays, 5) == {"50%": 3.0, "95%": None, "100%": None}
    assert report.milestones([1.0, 2.0, 3.0, 4.0], 4) == {"50%": 2.0, "95%": 4.0, "100%": 4.0}
    assert report.curve([1.0, 2.0, 6.0], 4, 5.0, 10.0) == [(0.0, 0.0), (5.0, 0.5), (10.0, 0.75)]
    assert report.percentile([], 99) is None
    assert report.percentile([0.001, 0.002, 0.1], 50) == 0.002


def test_seed_design_model() -> None:
    phases = [60 * i / 100 for i in range(100)]
    worked = report.seed_design(phases, 60.0, 0.0, 150.0)
    assert all(150 + 30 <= w <= 150 + 60 + 60 for w in worked)
    seed = report.seed_comparison(1000)
    average = seed["average check (150 s)"]
    assert 200 <= average["50%"] <= 240 and average["100%"] <= 270  # type: ignore[operator]
    assert seed["worst check (300 s)"]["100%"] <= 420  # type: ignore[operator]


def test_describe_has_every_figure(tmp_path: Path) -> None:
    text = report.describe(
        {
            "phones": 2,
            "mix": "2 yealink/http",
            "poll_s": 60,
            "jitter_pct": 10,
            "seconds": 90,
            "requests": 6,
            "requests_per_s": 0.1,
            "errors": {},
            "latency_ms": {"p50": 1.0, "p99": 2.0, "max": 3},
            "events": [
                {
                    "what": "sip killed",
                    "detection_s": 2.3,
                    "convergence": {
                        "sip": {
                            "fetched": {"50%": 10.0, "95%": 50.0, "100%": 55.0},
                            "working": {"50%": 10.0, "95%": 50.0, "100%": None},
                        }
                    },
                    "seed": {"average check (150 s)": {"50%": 225.0}},
                }
            ],
        }
    )
    assert "sip killed:" in text and "after 50% 10.0 s, 95% 50.0 s, 100% 55.0 s" in text
    assert "100% never" in text and "seed design, average check (150 s)" in text
