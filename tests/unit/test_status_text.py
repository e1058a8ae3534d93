"""What `xprov status`, `reload`, `probe` and `check-config` print for people, from the
documents the server answers with (pure: no server, no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xprov import descriptors, status_text
from xprov.build import load
from xprov.monitor.state import Cause, ProbeResult

STATUS: dict[str, Any] = {
    "version": "1.2.0",
    "uptime_s": 3.4,
    "selection": {"generation": 2, "active": {"sip": "virginia", "stun": "chicago"}},
    "inventory": {"phones": 4, "source": "file inventory.toml", "generation": 3, "age_s": 1.5},
    "config": {"reloads": {"ok": 1, "failed": 1, "last": {"ok": False, "problems": ["a", "b"]}}},
    "monitor": {
        "switching_suspended": True,
        "services": {  # in SERVICES' order when printed, whatever the document's
            "stun": {"active": "chicago", "why": "primary up"},
            "sip": {
                "active": "virginia",
                "manual": "virginia",
                "why": "operator chose virginia",
                "holding": "virginia is down",
            },
        },
        "targets": {
            "sip@virginia": {"state": "down", "last": {"detail": "timeout", "latency_ms": 1000.0}},
            "sip@chicago": {"state": "unknown", "last": None},
        },
    },
    "convergence": {
        "fetched": 3,
        "regular_phones": 4,
        "generation": 2,
        "percent": 75.0,
        "pending": 1,
        "slowest_s": 12.5,
    },
}


def test_status_for_people_says_every_part() -> None:
    assert status_text.status_lines(STATUS) == [
        "xprov 1.2.0, up 3.4 s, selection generation 2",
        "inventory: 4 phones from file inventory.toml (generation 3, 1.5 s old)",
        "LAST RELOAD FAILED: a; b",
        "SWITCHING SUSPENDED: every target fails at once",
        "sip   active at virginia (manual: virginia): operator chose virginia",
        "      cannot switch: virginia is down",
        "stun  active at chicago: primary up",
        "  sip@chicago          unknown  - (- ms)",
        "  sip@virginia         down     timeout (1000.0 ms)",
        "convergence: 3 of 4 phones polling regularly fetched generation 2 "
        "(75.0%, 1 pending, slowest after 12.5 s)",
    ]


def test_status_for_people_leaves_out_what_is_not_there() -> None:
    quiet = {
        **STATUS,
        "config": {"reloads": {"last": {"ok": True}}},
        "inventory": None,
        "monitor": None,
        "convergence": {**STATUS["convergence"], "slowest_s": None},
    }
    assert status_text.status_lines(quiet) == [
        "xprov 1.2.0, up 3.4 s, selection generation 2",
        "convergence: 3 of 4 phones polling regularly fetched generation 2 (75.0%, 1 pending)",
    ]
    assert status_text.status_lines({}) == ["xprov None, up None s, selection generation None"]


def test_reload_and_refusal_lines() -> None:
    done = {"ok": True, "config_generation": 4, "phones": 12, "listen": ["http 127.0.0.1:80"]}
    assert status_text.reloaded_line(done) == (
        "reloaded: config generation 4, 12 phones, listening on ['http 127.0.0.1:80']"
    )
    assert status_text.reload_failed_lines({"ok": False, "problems": ["x: bad", "y: bad"]}) == [
        "reload failed, the server keeps its running configuration:",
        "  x: bad",
        "  y: bad",
    ]
    assert status_text.reload_failed_lines({"error": "busy"})[1:] == ["  busy"]
    assert status_text.refusal_line(409, {"error": "virginia is down"}) == (
        "refused (409): virginia is down"
    )


def test_descriptor_note_for_each_fit(config_path: Path) -> None:
    cfg = load(config_path).config
    notes = {}
    for hard in (10, 1000, 10**6):
        limit = descriptors.Limit(hard, hard)
        budget = descriptors.budget_of(cfg, hard)
        notes[budget.fit] = status_text.descriptor_note(limit, budget)
    assert set(notes) == set(descriptors.Fit)
    assert notes[descriptors.Fit.FITS] is None
    assert (notes[descriptors.Fit.SHORT] or "").startswith("serve would refuse to start here: ")
    lowered = notes[descriptors.Fit.LOWERED] or ""
    assert lowered.startswith("RLIMIT_NOFILE here is 1000 (hard): serve would lower the caps")
    assert lowered.endswith("(the packaged unit sets LimitNOFILE=65536)")


def test_check_config_lines(config_path: Path) -> None:
    inputs = load(config_path)
    lines = status_text.check_lines(inputs, descriptors.Limit(10**6, 10**6))
    assert lines[0] == (
        f"{config_path}: OK (4 phones, sites chicago, virginia, primary chicago, backup virginia)"
    )
    assert all(line.startswith(("note: ", "warning: ")) for line in lines[1:])
    starved = status_text.check_lines(inputs, descriptors.Limit(10, 10))
    assert starved[-1].startswith("note: serve would refuse to start here: ")


class Target:
    def __init__(self, name: str, description: str) -> None:
        self.name, self.description = name, description


def test_probe_rows_and_table() -> None:
    targets = [Target("sip@chicago", "sip udp 127.0.0.1:5060"), Target("db@chicago", "mysql")]
    results = [
        ProbeResult(True, 0.01234, "200 OK"),
        ProbeResult(False, 0.0, "out of file descriptors", Cause.LOCAL),
    ]
    rows = status_text.probe_rows(targets, results)
    assert rows == [
        {
            "target": "sip@chicago",
            "probe": "sip udp 127.0.0.1:5060",
            "ok": True,
            "cause": "target",
            "latency_ms": 12.3,
            "detail": "200 OK",
        },
        {
            "target": "db@chicago",
            "probe": "mysql",
            "ok": False,
            "cause": "local",
            "latency_ms": 0.0,
            "detail": "out of file descriptors",
        },
    ]
    assert status_text.probe_table(rows).splitlines() == [
        "TARGET       PROBE                   VERDICT   LATENCY  DETAIL",
        "sip@chicago  sip udp 127.0.0.1:5060  up        12.3 ms  200 OK",
        "db@chicago   mysql                   NOT MADE  0.0 ms   out of file descriptors",
    ]


def test_cluster_lines_say_when_there_is_no_agreement_and_what_waits_for_a_restart() -> None:
    """Issue 16: what the on-call reads first in cluster mode."""
    observers = {
        "chicago": {"role": "instance", "inventory": "aaaa", "targets": {}},
        "virginia": {"role": "instance", "inventory": "bbbb", "targets": {}},
        "witness": {"role": "witness", "inventory": None, "targets": {}},
    }
    cluster = {
        "mode": "etcd",
        "name": "chicago",
        "role": "instance",
        "agreement": "lost",
        "problem": "EtcdError: every endpoint failed",
        "observers": observers,
        "inventories_agree": False,
        "local_overrides": {"sip": "virginia"},
        "restart_pending": ["cluster.endpoints"],
    }
    lines = status_text.status_lines({"cluster": cluster})[1:]
    assert lines == [
        "RESTART PENDING for cluster.endpoints",
        "NO AGREEMENT (lost: EtcdError: every endpoint failed): the last decision stands",
        "observers: chicago (instance), virginia (instance), witness (witness)",
        "INVENTORIES DIFFER: {'chicago': 'aaaa', 'virginia': 'bbbb'}",
        "LOCAL OVERRIDE: sip at virginia on this instance only",
    ]
    ok = {**cluster, "agreement": "ok", "inventories_agree": True, "local_overrides": {}}
    assert status_text.status_lines({"cluster": {**ok, "restart_pending": []}})[1:3] == [
        "cluster: chicago (instance), agreement ok",
        "observers: chicago (instance), virginia (instance), witness (witness)",
    ]
    assert status_text.status_lines({"cluster": {"mode": "standalone"}})[1:] == []
    running = {"config": {"reload_in_progress": {"since": 1.0, "for_s": 42.0}}}
    assert status_text.status_lines(running)[1:] == ["RELOAD IN PROGRESS for 42.0 s"]
    done = {"ok": True, "config_generation": 4, "phones": 12, "listen": []}
    assert status_text.reloaded_line({**done, "restart_pending": ["cluster.name"]}).endswith(
        "; RESTART PENDING for cluster.name"
    )


def test_the_last_push_and_phones_gone_quiet_are_told() -> None:
    last = {
        "generation": 3,
        "contacts": 1000,
        "sent": 990,
        "ok": 950,
        "timeout": 30,
        "error": 5,
        "unauthorized": 3,
        "unreachable": 2,
        "pending": 10,
        "problem": None,
    }
    convergence = {
        "fetched": 7,
        "regular_phones": 10,
        "generation": 3,
        "percent": 87.5,
        "pending": 1,
        "silent": 2,
        "slowest_s": None,
    }
    lines = status_text.status_lines({"push": {"last": last}, "convergence": convergence})
    assert lines[1:] == [
        "convergence: 7 of 10 phones polling regularly fetched generation 3 "
        "(87.5%, 1 pending, 2 silent)",
        "push: NOTIFY sent to 988 of 1000 phones after generation 3 (950 ok, 30 timeout, 5 error, "
        "3 unauthorized, 2 unreachable, 10 pending)",
    ]
    failed = {"last": {**last, "problem": "location table `location` at chicago: timed out"}}
    assert status_text.status_lines({"push": failed})[1:] == [
        "push: not sent: location table `location` at chicago: timed out"
    ]
    assert status_text.status_lines({"push": {"last": None}})[1:] == []
