"""The descriptor budget: the reserve, the caps that fit the limit, and what the service and
`check-config` make of it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import ROOT, XPROV, MemoryReactor, sample_config
from xprov import config, descriptors
from xprov.build import build
from xprov.descriptors import Budget, Caps, Fit, Limit, plan
from xprov.service import Service

# The sample config: HTTP, TFTP and admin listeners; two sites with SIP, STUN and a database.
SAMPLE_RESERVE = 16 + 20 + 16 + 3 * 1 + 4 * 2 + 2 * 6 + 16  # the last: TFTP_CLOSING
PER_SOURCE = "max_connections_per_source = 64"


def test_the_reserve_adds_up_what_the_process_holds_besides_phones() -> None:
    assert descriptors.PROCESS + descriptors.RESOLVER + descriptors.ADMIN == 16 + 20 + 16
    assert descriptors.reserve(0, 0, 0) == 52
    assert descriptors.reserve(3, 0, 0) == 55  # one per listening socket
    assert descriptors.reserve(0, 4, 0) == 60  # two per SIP or STUN target
    assert descriptors.reserve(0, 0, 2) == 64  # six per database


def test_reserve_of_the_sample_config(config_path: Path) -> None:
    cfg = config.load(config_path)
    assert descriptors.reserve_of(cfg) == SAMPLE_RESERVE == 91
    assert descriptors.wanted_caps(cfg) == Caps(http=10_000, https=0, tftp=1000)


def test_https_has_a_cap_of_its_own(tmp_path: Path) -> None:
    path = sample_config(tmp_path)
    (tmp_path / "c.pem").write_text("read only when serving")
    (tmp_path / "k.pem").write_text("read only when serving")
    path.write_text(
        path.read_text()
        + '\n[https]\nlisten = ["127.0.0.1:8443", "127.0.0.2:8443"]\n'
        + 'certificate = "c.pem"\nprivate_key = "k.pem"\n'
    )
    cfg = config.load(path)
    assert descriptors.wanted_caps(cfg) == Caps(http=10_000, https=10_000, tftp=1000)
    assert descriptors.reserve_of(cfg) == SAMPLE_RESERVE + 2  # and two more listeners


def test_caps_that_fit_are_kept() -> None:
    wanted = Caps(http=500, https=0, tftp=100)
    assert plan(1024, 75, wanted) == Budget(1024, 75, wanted, wanted, Fit.FITS)
    assert plan(675, 75, wanted).fit is Fit.FITS  # exactly: limit - reserve == 600
    assert plan(675, 75, wanted).needed == 675


def test_caps_one_over_are_lowered() -> None:
    budget = plan(674, 75, Caps(http=500, https=0, tftp=100))
    assert budget.fit is Fit.LOWERED and budget.room == 599
    # 1 each, then 597 * 499 // 598 = 498 and 597 * 99 // 598 = 98
    assert budget.caps == Caps(http=499, https=0, tftp=99)


def test_systemd_default_limit_with_the_default_caps() -> None:
    """The issue's case: 1,024 descriptors, 10,000 connections and 1,000 transfers wanted."""
    budget = plan(1024, 75, Caps(http=10_000, https=0, tftp=1000))
    assert budget.fit is Fit.LOWERED
    # room 949: 1 each, then 947 * 9999 // 10998 = 860 and 947 * 999 // 10998 = 86
    assert budget.caps == Caps(http=861, https=0, tftp=87)
    assert budget.caps.total == 948 <= budget.room
    assert budget.fields() == {
        "limit": 1024,
        "reserve": 75,
        "phones": 949,
        "wanted": {"http": 10_000, "tftp": 1000},
        "caps": {"http": 861, "tftp": 87},
        "needed": 11_075,
    }


def test_https_and_http_each_get_a_share() -> None:
    budget = plan(1024, 76, Caps(http=10_000, https=10_000, tftp=1000))
    # room 948: 1 each, then 945 * 9999 // 20997 = 450 twice and 945 * 999 // 20997 = 44
    assert budget.caps == Caps(http=451, https=451, tftp=45)


def test_every_kind_keeps_one_descriptor() -> None:
    assert plan(78, 75, Caps(http=10_000, https=10_000, tftp=1)).caps == Caps(1, 1, 1)
    assert plan(80, 75, Caps(http=10_000, https=0, tftp=2)).caps == Caps(3, 0, 1)


def test_too_few_for_one_per_kind_refuses_to_start() -> None:
    budget = plan(76, 75, Caps(http=10_000, https=0, tftp=1000))
    assert budget.fit is Fit.SHORT and budget.caps == Caps(0, 0, 0)
    assert budget.problem() == (
        "RLIMIT_NOFILE is 76: after the reserve of 75 descriptors (monitor, inventory, "
        "listeners, logs) phones would get 1, fewer than one per kind of listener (2); "
        "raise it (LimitNOFILE=, ulimit -n) to at least 11075"
    )
    assert "phones would get 0," in plan(40, 75, Caps(10, 0, 0)).problem()
    assert plan(77, 75, Caps(http=10_000, https=0, tftp=1000)).caps == Caps(1, 0, 1)


@pytest.mark.fuzz
@given(
    limit=st.integers(0, 100_000),
    reserve=st.integers(0, 1000),
    caps=st.tuples(st.integers(0, 20_000), st.integers(0, 20_000), st.integers(0, 20_000)),
)
def test_caps_never_exceed_the_room_nor_what_was_asked(limit, reserve, caps) -> None:
    wanted = Caps(*caps)
    budget = plan(limit, reserve, wanted)
    pairs = list(zip(caps, (budget.caps.http, budget.caps.https, budget.caps.tftp), strict=True))
    if budget.fit is Fit.SHORT:
        assert budget.room < wanted.kinds and budget.caps.total == 0
        return
    assert budget.caps.total <= budget.room
    assert all(cap <= asked for asked, cap in pairs)
    assert all(cap >= 1 for asked, cap in pairs if asked)
    assert all(cap == 0 for asked, cap in pairs if not asked)
    assert (budget.fit is Fit.FITS) == (budget.caps == wanted) == (wanted.total <= budget.room)


def limits_in(soft: int, hard: int) -> str:
    """What `raise_soft_limit` does in a process started with these limits."""
    script = (
        "from xprov.descriptors import raise_soft_limit, current_limit; "
        "print(raise_soft_limit(), current_limit())"
    )
    return subprocess.run(
        ["prlimit", f"--nofile={soft}:{hard}", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=ROOT,
    ).stdout.strip()


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    assert limits_in(100, 300) == (
        "Limit(soft=300, hard=300, raised_from=100) Limit(soft=300, hard=300, raised_from=None)"
    )
    assert limits_in(300, 300) == (
        "Limit(soft=300, hard=300, raised_from=None) Limit(soft=300, hard=300, raised_from=None)"
    )


def service(path: Path, limit: Limit) -> Service:
    return Service(build(path), MemoryReactor(), limit)


def test_the_service_lowers_its_caps_and_says_so(config_path: Path, log_events) -> None:
    svc = service(config_path, Limit(256, 256, raised_from=200))
    # room 165: 1 each, then 163 * 9999 // 10998 = 148 and 163 * 999 // 10998 = 14
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (149, 15)
    svc.listeners.announce(svc.listeners.budget)
    [event] = [e for e in log_events() if e["event"] == "descriptor_caps_lowered"]
    assert event["level"] == "warning"
    assert {k: event[k] for k in ("limit", "raised_from", "reserve", "phones", "needed")} == {
        "limit": 256,
        "raised_from": 200,
        "reserve": 91,
        "phones": 165,
        "needed": 11_091,
    }
    assert event["wanted"] == {"http": 10_000, "tftp": 1000}
    assert event["caps"] == {"http": 149, "tftp": 15}
    assert "at least 11091" in event["fix"]
    status = svc.listeners.descriptors()
    assert status["held"] == {"http": 0, "tftp": 0} and status["caps"] == event["caps"]


def test_caps_that_fit_are_announced_quietly(config_path: Path, log_events) -> None:
    svc = service(config_path, Limit(65536, 65536))
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (10_000, 1000)
    svc.listeners.announce(svc.listeners.budget)
    events = [e for e in log_events() if e["event"].startswith("descriptor")]
    assert [(e["event"], e["level"], e["caps"]) for e in events] == [
        ("descriptors", "info", {"http": 10_000, "tftp": 1000})
    ]


def test_a_limit_too_low_refuses_to_start(config_path: Path) -> None:
    svc = service(config_path, Limit(64, 64))
    with pytest.raises(descriptors.Shortage, match="RLIMIT_NOFILE is 64"):
        svc.startService()
    assert svc.listeners.ports == {}  # nothing was bound


def test_a_reload_applies_the_budget_to_the_new_caps(tmp_path: Path) -> None:
    path = sample_config(tmp_path)
    svc = service(path, Limit(256, 256))
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (149, 15)
    text = path.read_text().replace("max_transfers = 1000", "max_transfers = 10")
    path.write_text(text.replace(PER_SOURCE, PER_SOURCE + "\nmax_connections = 100"))
    summary = svc.reloader._swap(build(path))
    assert summary["ok"] is True, summary
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (
        100,
        10,
    )  # 110 fit in 165
    assert svc.listeners.budget.fit is Fit.FITS and svc.listeners.descriptors()["caps"] == {
        "http": 100,
        "tftp": 10,
    }


def test_a_reload_that_cannot_fit_keeps_the_running_caps(tmp_path: Path) -> None:
    path = sample_config(tmp_path, admin_port=8081)
    svc = service(path, Limit(96, 96))  # room 5: 1 each, then 3 * 9999 // 10998 = 2 and 0
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (3, 1)
    more = ", ".join(f'"127.0.0.{n}:8081"' for n in range(1, 6))  # four more listeners
    path.write_text(path.read_text().replace('listen = ["127.0.0.1:8081"]', f"listen = [{more}]"))
    summary = svc.reloader._swap(build(path))
    assert summary["ok"] is False
    assert summary["problems"] == [
        "RLIMIT_NOFILE is 96: after the reserve of 95 descriptors (monitor, "
        "inventory, listeners, logs) phones would get 1, fewer than one per kind of listener "
        "(2); raise it (LimitNOFILE=, ulimit -n) to at least 11095"
    ]
    assert (svc.listeners.web.max_connections, svc.tftp.server.max_transfers) == (3, 1)
    assert svc.listeners.budget.reserve == SAMPLE_RESERVE


def check_config_under(soft: int, path: Path) -> str:
    done = subprocess.run(
        ["prlimit", f"--nofile={soft}:{soft}", *XPROV, "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_check_config_tells_what_serve_would_do_under_this_limit(config_path: Path) -> None:
    assert "RLIMIT_NOFILE" not in check_config_under(20_000, config_path)
    assert (
        "note: RLIMIT_NOFILE here is 256 (hard): serve would lower the caps to http 149, "
        "tftp 15 to keep 91 descriptors for the monitor and the rest; raise it to at least "
        "11091 (the packaged unit sets LimitNOFILE=65536)"
    ) in check_config_under(256, config_path)
    assert "note: serve would refuse to start here: RLIMIT_NOFILE is 64" in check_config_under(
        64, config_path
    )


def test_https_refusals_close_the_connection() -> None:
    """Twisted's TLS wrapper wraps the None of a refused connection and keeps the connection
    open (a descriptor beyond the cap); ours passes the refusal on, so Twisted closes it."""
    from twisted.internet import ssl
    from twisted.internet.address import IPv4Address
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from twisted.web.resource import Resource

    from xprov.servers import http

    site = http.site(Resource(), max_connections=1)
    address = IPv4Address("TCP", "127.0.0.9", 40000)
    bounded = http.BoundedTLSFactory(ssl.CertificateOptions(), False, site)
    assert bounded.buildProtocol(address) is not None
    assert len(site.channels) == 1
    assert bounded.buildProtocol(address) is None  # at the cap: closed at once
    twisted_own = TLSMemoryBIOFactory(ssl.CertificateOptions(), False, site)
    assert twisted_own.buildProtocol(address).wrappedProtocol is None  # what it did
