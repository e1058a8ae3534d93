"""The active site of each service, its switches and the template variables it yields."""

from __future__ import annotations

import tomllib

import pytest

from tests.helpers import ETC
from xprov.config import SERVICES, Config, parse
from xprov.selection import ActiveSites, Selection, service_variables

SITES = ("chicago", "virginia")


def sample(stun: bool = True) -> Config:
    """etc/xprov.toml (sites chicago and virginia), with or without its STUN servers."""
    data = tomllib.loads((ETC / "xprov.toml").read_text())
    for site in data["sites"].values():
        if not stun:
            del site["stun"]
    return parse(data, ETC / "xprov.toml")


def recorder(active: ActiveSites) -> list[tuple[Selection, Selection]]:
    calls: list[tuple[Selection, Selection]] = []
    active.subscribe(lambda old, new: calls.append((old, new)))
    return calls


def test_starts_with_every_service_at_the_primary() -> None:
    active = ActiveSites(SITES, "virginia")
    assert active.current == Selection(1, dict.fromkeys(SERVICES, "virginia"))


def test_a_switch_notifies_every_subscriber_with_the_old_and_new_selection() -> None:
    active = ActiveSites(SITES, "chicago")
    first, second = recorder(active), recorder(active)
    old = active.current
    new = active.switch({"sip": "virginia", "db": "virginia"})
    assert new == Selection(2, {"sip": "virginia", "stun": "chicago", "db": "virginia"})
    assert first == second == [(old, new)]
    assert active.current is new


def test_a_switch_that_changes_nothing_keeps_the_generation_and_notifies_nobody() -> None:
    active = ActiveSites(SITES, "chicago")
    calls = recorder(active)
    assert active.switch({"sip": "chicago"}) is active.current
    assert active.current.generation == 1 and calls == []


def test_reconfigure_returns_services_at_a_removed_site_to_the_primary() -> None:
    active = ActiveSites(SITES, "chicago")
    old = active.switch({"sip": "virginia"})
    calls = recorder(active)
    new = active.reconfigure(["chicago", "texas"], "chicago")
    assert new == Selection(3, dict.fromkeys(SERVICES, "chicago"))
    assert calls == [(old, new)]
    assert active.switch({"stun": "texas"}).site_of("stun") == "texas"  # a new site is known
    with pytest.raises(ValueError, match="unknown site 'virginia'"):
        active.switch({"sip": "virginia"})


def test_reconfigure_keeps_services_whose_site_remains() -> None:
    active = ActiveSites(SITES, "chicago")
    calls = recorder(active)
    before = active.current
    assert active.reconfigure([*SITES, "texas"], "virginia") is before
    assert calls == []


def test_service_variables_are_those_of_each_services_active_site() -> None:
    config = sample()
    active = ActiveSites(config.sites, "chicago")
    active.switch({"stun": "virginia", "db": "virginia"})
    assert service_variables(config, active.current) == {
        "sip": {
            "host": "127.0.0.1",
            "port": 5060,
            "transport": "udp",
            "expires": 600,
            "tls_server_name": None,
            "tls_ca": None,
            "site": "chicago",
        },
        "stun": {"host": "127.0.0.2", "port": 3479, "site": "virginia"},
    }


def test_a_service_configured_at_no_site_yields_none() -> None:
    config = sample(stun=False)
    variables = service_variables(config, ActiveSites(config.sites, "chicago").current)
    assert variables["stun"] is None and variables["sip"]["site"] == "chicago"
