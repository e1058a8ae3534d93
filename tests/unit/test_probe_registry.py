"""The probe registry: one table from which the services, the template-visible services,
the never-auto-failback policy, the config's site tables, the monitor's targets and its
pool derive. Adding a probe type is one new module plus one row: this module is that new
module (an NTP-like `ntp` type), and each test adds its one row."""

from __future__ import annotations

import copy
import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock

from xprov import config
from xprov.monitor import registry
from xprov.monitor.loop import Monitor, build_targets
from xprov.monitor.pool import probe_pool
from xprov.monitor.probe import run_probe
from xprov.monitor.registry import Probe, ProbeContext, ServiceType
from xprov.monitor.state import Policy, ProbeResult
from xprov.selection import ActiveSites, service_variables

# ---- the new probe type's module: its config dataclass, its reader, its probe -----------


@dataclasses.dataclass(frozen=True)
class NtpService:
    host: str
    port: int


def read_ntp(t: Any, base: Path) -> NtpService:
    return NtpService(host=t.text("host"), port=t.port("port", 123))


ANSWERS: dict[str, bool] = {}  # "host:port" -> does it answer (set by the tests)


class NtpProbe:
    settings = None

    def __init__(self, context: ProbeContext) -> None:
        self.reactor = context.reactor

    def describe(self, target: NtpService) -> str:
        return f"ntp udp {target.host}:{target.port}"

    def probe(self, target: NtpService, deadline: float) -> Deferred[ProbeResult]:
        def attempt(done: Deferred[Any]) -> Any:
            up = ANSWERS[f"{target.host}:{target.port}"]
            done.callback((True, "stratum 2") if up else (False, "timeout"))
            return lambda: None

        return run_probe(attempt, deadline, self.reactor)

    def close(self) -> None:
        pass


# ---- its one row ----------------------------------------------------------------------

NTP = ServiceType(
    "ntp",
    f"{__name__}:NtpProbe",
    f"{__name__}:read_ntp",
    required=False,
    templates=True,
    auto_failback=False,
    threads=3,
)
NTP_AT = {"chicago": {"host": "127.0.0.1", "port": 1123}, "virginia": {"host": "127.0.0.2"}}


@pytest.fixture
def with_ntp(monkeypatch) -> None:
    monkeypatch.setattr(registry, "SERVICE_TYPES", (*registry.SERVICE_TYPES, NTP))
    ANSWERS.clear()
    ANSWERS.update({"127.0.0.1:1123": True, "127.0.0.2:123": True})


@pytest.fixture
def valid(config_path: Path) -> dict:
    with config_path.open("rb") as f:
        return tomllib.load(f)


def with_sites(data: dict, tables: dict[str, dict]) -> dict:
    data = copy.deepcopy(data)
    for site, table in tables.items():
        data["sites"][site]["ntp"] = table
    return data


def problems(data: dict, path: Path) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(data, path)
    return info.value.problems


def test_the_table_gives_todays_services_and_policies() -> None:
    assert registry.services() == config.SERVICES == ("sip", "stun", "db")
    assert registry.template_services() == ("sip", "stun")
    assert Policy("auto", 30).never_auto_failback == registry.never_auto_failback() == {"db"}


def test_each_registered_probe_implements_the_protocol(config_path: Path) -> None:
    cfg = config.load(config_path)
    context = ProbeContext(MemoryReactorClock(), None, cfg.monitor)
    probes = {row.name: row.probe(context) for row in registry.SERVICE_TYPES}
    assert all(isinstance(p, Probe) for p in probes.values())
    chicago = cfg.sites["chicago"]
    described = {name: p.describe(chicago.service(name)) for name, p in probes.items()}
    assert described == {
        "sip": "sip udp 127.0.0.1:5060",
        "stun": "stun udp 127.0.0.1:3478",
        "db": "mysql 127.0.0.1:3307/provisioning",
    }


def test_a_target_is_new_only_when_what_its_probe_depends_on_changes(config_path: Path) -> None:
    """A reload keeps a target (and its state) whose probe did not change."""
    cfg = config.load(config_path)
    before = build_targets(cfg, Clock(), None)
    assert build_targets(cfg, Clock(), None) == before
    codes = dataclasses.replace(cfg.monitor, sip_down_codes=frozenset({503}))
    after = build_targets(dataclasses.replace(cfg, monitor=codes), Clock(), None)
    changed = {a.name for a, b in zip(after, before, strict=True) if a != b}
    assert changed == {"sip@chicago", "sip@virginia"}


def test_a_new_type_is_read_from_every_sites_config(with_ntp, valid, config_path) -> None:
    cfg = config.parse(with_sites(valid, NTP_AT), config_path)
    assert cfg.sites["chicago"].service("ntp") == NtpService("127.0.0.1", 1123)
    assert cfg.sites["virginia"].service("ntp") == NtpService("127.0.0.2", 123)
    assert cfg.sites["chicago"].sip.port == 5060  # the others as before
    assert config.parse(valid, config_path).sites["chicago"].service("ntp") is None
    one_site = with_sites(valid, {"chicago": NTP_AT["chicago"]})
    assert problems(one_site, config_path) == [
        "sites: ntp is set for chicago but missing for virginia (every site needs the same "
        "services)"
    ]
    bad = with_sites(valid, {**NTP_AT, "virginia": {"host": "127.0.0.2", "port": 0, "x": 1}})
    assert problems(bad, config_path) == [
        "sites.virginia.ntp.port: 0 is out of range 1..65535",
        "sites.virginia.ntp.x: unknown key",
    ]


def test_templates_see_a_new_type_marked_for_them(
    with_ntp, valid, config_path, monkeypatch
) -> None:
    cfg = config.parse(with_sites(valid, NTP_AT), config_path)
    active = ActiveSites(cfg.sites, "chicago")
    variables = service_variables(cfg, active.switch({"ntp": "virginia"}))
    assert variables["ntp"] == {"host": "127.0.0.2", "port": 123, "site": "virginia"}
    assert variables["sip"]["site"] == "chicago" and "db" not in variables
    hidden = dataclasses.replace(NTP, templates=False)
    monkeypatch.setattr(registry, "SERVICE_TYPES", (*registry.SERVICE_TYPES[:-1], hidden))
    assert "ntp" not in service_variables(cfg, active.current)


def test_the_monitor_probes_switches_and_holds_a_new_type(with_ntp, valid, config_path) -> None:
    """Its targets and pool threads come from the row; it fails over like any service and,
    its row saying so, never fails back on its own, even with failback = "auto"."""
    cfg = config.parse(with_sites(valid, NTP_AT), config_path)
    assert probe_pool(cfg).max == 4 * 2 + 3 * 2  # db's threads and ntp's, at two sites
    clock = Clock()
    targets = build_targets(cfg, clock, None)
    assert [t.name for t in targets][-2:] == ["ntp@chicago", "ntp@virginia"]
    assert targets[-1].description == "ntp udp 127.0.0.2:123"
    ntp = [t for t in targets if t.service == "ntp"]
    active = ActiveSites(cfg.sites, "chicago")
    auto = dataclasses.replace(cfg.monitor, failback="auto", hold_down=0.0)
    monitor = Monitor(ntp, active, ["chicago", "virginia"], auto, clock)
    monitor.start()
    clock.advance(3)
    ANSWERS["127.0.0.1:1123"] = False
    for _ in range(cfg.monitor.fall + 1):
        clock.advance(cfg.monitor.interval)
    assert active.current.site_of("ntp") == "virginia"
    assert monitor.status()["targets"]["ntp@chicago"]["state"] == "down"
    ANSWERS["127.0.0.1:1123"] = True
    for _ in range(cfg.monitor.rise + 5):
        clock.advance(cfg.monitor.interval)
    assert monitor.status()["targets"]["ntp@chicago"]["state"] == "up"
    assert active.current.site_of("ntp") == "virginia"  # by hand only
    monitor.failback("ntp")
    assert active.current.site_of("ntp") == "chicago"
    monitor.stop()
