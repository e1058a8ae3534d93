"""Which inventory reads start and which results serve, when a database hangs (issue 13,
item 5: a db switch during a hung refresh must read the backup at once)."""

from __future__ import annotations

from xprov.inventory.reads import InventoryReads, Verdict


def test_a_switch_reads_the_new_site_beside_the_hung_read() -> None:
    reads = InventoryReads()
    hung = reads.begin("chicago")
    assert hung == 1
    assert reads.begin("chicago") is None  # the same database: its running read will do
    backup = reads.begin("virginia")  # the monitor switched db: read the backup now
    assert backup == 2
    assert reads.running == {"chicago": 1, "virginia": 2}
    assert reads.end("virginia", backup, active_site="virginia") is Verdict.APPLY
    reads.applying(backup)
    # The hung read returns at last: the site is no longer the active one.
    assert reads.end("chicago", hung, active_site="virginia") is Verdict.STALE_SITE
    assert reads.running == {}


def test_a_read_older_than_the_serving_one_is_dropped() -> None:
    """chicago hangs, db switches to virginia (read, applied), then back to chicago: the
    hung read, started before virginia's, must not replace the newer inventory."""
    reads = InventoryReads()
    hung = reads.begin("chicago")
    newer = reads.begin("virginia")
    assert hung is not None and newer is not None
    assert reads.end("virginia", newer, active_site="virginia") is Verdict.APPLY
    reads.applying(newer)
    assert reads.end("chicago", hung, active_site="chicago") is Verdict.SUPERSEDED
    fresh = reads.begin("chicago")
    assert fresh == 3
    assert reads.end("chicago", fresh, active_site="chicago") is Verdict.APPLY


def test_a_read_whose_result_was_not_applied_frees_its_site() -> None:
    reads = InventoryReads()
    first = reads.begin("chicago")
    assert first is not None
    assert reads.end("chicago", first, active_site="chicago") is Verdict.APPLY
    assert reads.applied == 0  # nothing serves from it until the service applies it
    assert reads.begin("chicago") == 2


def test_applied_never_goes_back() -> None:
    reads = InventoryReads()
    reads.applying(5)
    reads.applying(3)
    assert reads.applied == 5
    assert reads.end("chicago", 4, active_site="chicago") is Verdict.SUPERSEDED
    assert reads.end("chicago", 5, active_site="chicago") is Verdict.APPLY


def test_threads_are_bounded_by_the_sites() -> None:
    reads = InventoryReads()
    started = [reads.begin(site) for site in ["a", "b", "a", "b", "a"] * 100]
    assert [t for t in started if t is not None] == [1, 2]
    assert len(reads.running) == 2
