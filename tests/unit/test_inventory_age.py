"""Issue 15: the inventory's age is read on the process's one clock (the reactor's
`seconds()`), stamped on the reactor as a snapshot is swapped in: at start, on a reload and
on a refresh. The service runs on a memory reactor, whose clock is far from the wall
clock's: an age taken from `time.time()` would be decades off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import maybeDeferred

from tests.helpers import MemoryReactor, inventory_with_accounts, sample_config
from xprov.build import build
from xprov.descriptors import Limit
from xprov.service import Service
from xprov.services import refresher

START = 1_000_000.0  # s on the memory reactor's clock when the service is built


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return sample_config(tmp_path)


@pytest.fixture
def reactor() -> MemoryReactor:
    reactor = MemoryReactor()
    reactor.advance(START)
    return reactor


def inventory(svc: Service) -> dict[str, Any]:
    """The status document's inventory, and the age the metrics report beside it."""
    status = svc.status()["inventory"]
    del status["content_hash"]  # tests/unit/test_cluster_node.py
    status["metric_age"] = svc.registry.get_sample_value("xprov_inventory_age_seconds")
    return status


def test_the_age_at_start_follows_the_service_clock(path: Path, reactor: MemoryReactor) -> None:
    svc = Service(build(path), reactor, Limit(65536, 65536))
    snapshot = svc.core.inputs.inventory
    assert inventory(svc) == {
        "source": snapshot.source,
        "phones": len(snapshot),
        "generation": snapshot.generation,
        "loaded_at": START,
        "age_s": 0.0,
        "metric_age": 0.0,
    }
    reactor.advance(90.5)
    assert inventory(svc)["loaded_at"] == START
    assert inventory(svc)["age_s"] == 90.5
    assert inventory(svc)["metric_age"] == 90.5


def test_a_reload_stamps_its_inventory_on_the_service_clock(
    path: Path, reactor: MemoryReactor
) -> None:
    svc = Service(build(path), reactor, Limit(65536, 65536))
    reactor.advance(600)
    assert svc.reloader._swap(build(path))["ok"] is True  # built off the clock, swapped on it
    reloaded = inventory(svc)
    assert (reloaded["loaded_at"], reloaded["age_s"], reloaded["metric_age"]) == (
        START + 600,
        0.0,
        0.0,
    )
    assert svc.status()["config"]["loaded_at"] == START + 600  # the config's stamp: one clock
    reactor.advance(12)
    assert (inventory(svc)["age_s"], inventory(svc)["metric_age"]) == (12.0, 12.0)


def test_a_refresh_stamps_its_inventory_on_the_service_clock(
    path: Path, reactor: MemoryReactor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read runs where it is called (the memory reactor runs no thread); the stamp is
    the swap's."""
    monkeypatch.setattr(
        refresher, "deferToThreadPool", lambda _reactor, _pool, work: maybeDeferred(work)
    )
    svc = Service(build(path), reactor, Limit(65536, 65536))
    before = inventory(svc)["generation"]
    reactor.advance(3600)
    applied: list[bool] = []
    svc.refresher.refresh().addCallback(applied.append)
    assert applied == [True]
    refreshed = inventory(svc)
    assert refreshed["generation"] > before
    assert (refreshed["loaded_at"], refreshed["age_s"]) == (START + 3600, 0.0)
    reactor.advance(5)
    assert (inventory(svc)["age_s"], inventory(svc)["metric_age"]) == (5.0, 5.0)


def test_a_stamp_shares_the_snapshot_it_stamps(tmp_path: Path) -> None:
    """Stamped on the reactor, so it copies nothing: the records, and the accounts the build
    made already (100,000 phones' worth), are the very same objects."""
    path = sample_config(
        tmp_path, inventory=inventory_with_accounts({"T46G": ("alice", "s3cret-pw")})
    )
    built = build(path).inputs.inventory
    accounts = built.accounts
    stamped = built.serving_from(START)
    assert (stamped.loaded_at, built.loaded_at) == (START, 0.0)
    assert stamped.records is built.records
    assert stamped.accounts is accounts and set(accounts) == {"alice"}
