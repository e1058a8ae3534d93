"""Issue 16: the observers' majority and the decision key, without etcd (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from xprov.cluster.agreement import (
    Choice,
    Verdict,
    agree,
    manual_choice,
    next_choice,
    publishable,
    quorum,
    read_verdicts,
)
from xprov.monitor.state import Health, Policy, TargetState

UP, DOWN, UNKNOWN = Health.UP, Health.DOWN, Health.UNKNOWN
ORDER = ["chicago", "virginia"]
POLICY = Policy("manual", 300.0)


def seen(**targets: Health) -> dict[str, Verdict]:
    """An observer's verdicts: sip_chicago=DOWN -> {"sip@chicago": DOWN}."""
    return {
        name.replace("_", "@"): Verdict(health, 100.0, f"{name} {health.value}")
        for name, health in targets.items()
    }


def test_quorum_is_a_strict_majority() -> None:
    assert [quorum(n) for n in range(1, 6)] == [1, 2, 2, 3, 3]


def test_a_lone_observer_is_no_majority_unless_allowed() -> None:
    verdicts = {"virginia": seen(sip_chicago=DOWN, sip_virginia=UP)}
    assert agree("sip@chicago", verdicts).health is UNKNOWN
    assert agree("sip@chicago", verdicts, minimum=1).health is DOWN


def test_a_partition_between_the_data_centres_switches_nothing() -> None:
    """Each instance sees the other site down; the witness sees both up: 1 vote of 3."""
    verdicts = {
        "chicago": seen(sip_chicago=UP, sip_virginia=DOWN),
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
        "witness": seen(sip_chicago=UP, sip_virginia=UP),
    }
    assert agree("sip@chicago", verdicts).health is UP
    assert agree("sip@virginia", verdicts).health is UP
    choice, decision = next_choice("sip", None, ORDER, verdicts, POLICY, 200.0, "virginia")
    assert (choice, decision) == (None, None)


def test_a_lost_site_is_decided_by_the_survivors() -> None:
    """Chicago's instance is gone (its lease expired): 2 live observers, both agree."""
    verdicts = {
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
        "witness": seen(sip_chicago=DOWN, sip_virginia=UP),
    }
    choice, decision = next_choice("sip", None, ORDER, verdicts, POLICY, 200.0, "witness")
    assert choice is not None and decision is not None
    assert (choice.site, choice.epoch, choice.by, choice.manual) == (
        "virginia",
        1,
        "witness",
        False,
    )
    assert choice.reason.startswith("sip at chicago down (2 of 2 observers")


def test_a_stale_vote_of_the_lost_site_is_outvoted() -> None:
    """Its lease not yet expired, the lost instance's last verdict still says UP."""
    verdicts = {
        "chicago": seen(sip_chicago=UP, sip_virginia=UP),
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
        "witness": seen(sip_chicago=DOWN, sip_virginia=UP),
    }
    choice, _ = next_choice("sip", None, ORDER, verdicts, POLICY, 200.0, "virginia")
    assert choice is not None and choice.site == "virginia"


def test_one_observer_of_two_is_no_majority() -> None:
    verdicts = {
        "chicago": seen(sip_chicago=UP, sip_virginia=UP),
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
    }
    view = agree("sip@chicago", verdicts)
    assert view.health is UNKNOWN and view.reason == (
        "no majority of 2 observers (0 unknown, 1 up, 1 down; 2 needed)"
    )
    assert next_choice("sip", None, ORDER, verdicts, POLICY, 200.0, "virginia")[0] is None


def test_no_switch_to_a_site_the_majority_does_not_see_up() -> None:
    verdicts = {
        "chicago": seen(sip_chicago=DOWN, sip_virginia=DOWN),
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
        "witness": seen(sip_chicago=DOWN, sip_virginia=DOWN),
    }
    choice, decision = next_choice("sip", None, ORDER, verdicts, POLICY, 200.0, "virginia")
    assert choice is None and decision is not None and decision.to is None
    assert "no other site is up" in decision.reason


def test_a_blind_observer_abstains() -> None:
    state = TargetState("sip@chicago", 3, 2, health=DOWN, since=50.0)
    assert Verdict.of(state, blind=True).health is UNKNOWN
    assert Verdict.of(state, blind=False) == Verdict(DOWN, 50.0, "")


def test_an_operators_choice_holds_against_the_rule_and_epochs_grow() -> None:
    verdicts = {
        "virginia": seen(sip_chicago=DOWN, sip_virginia=UP),
        "witness": seen(sip_chicago=DOWN, sip_virginia=UP),
    }
    current = Choice("chicago", 7, "operator chose chicago", "operator via witness", True, 1.0)
    assert next_choice("sip", current, ORDER, verdicts, POLICY, 200.0, "virginia")[0] is None
    moved = manual_choice("sip", "virginia", current, ORDER, verdicts, False, "op", 300.0)
    assert (moved.site, moved.epoch, moved.manual) == ("virginia", 8, True)
    back = manual_choice("sip", "chicago", moved, ORDER, verdicts, True, "op", 301.0, failback=True)
    assert (back.epoch, back.manual, back.reason) == (9, False, "operator failed back to chicago")


def test_a_manual_choice_of_a_site_the_majority_does_not_see_up_is_refused() -> None:
    verdicts = {"virginia": seen(sip_virginia=DOWN), "witness": seen(sip_virginia=UP)}
    with pytest.raises(ValueError, match=r"sip at virginia is unknown \(no majority"):
        manual_choice("sip", "virginia", None, ORDER, verdicts, False, "op", 1.0)
    with pytest.raises(ValueError, match="has no site 'dallas'"):
        manual_choice("sip", "dallas", None, ORDER, verdicts, True, "op", 1.0)


def test_automatic_failback_waits_for_the_majoritys_hold_down() -> None:
    """Healthy since the moment the second of three observers saw it up."""
    policy = Policy("auto", 300.0)
    verdicts = {
        name: {"sip@chicago": Verdict(UP, since, ""), "sip@virginia": Verdict(UP, 0.0, "")}
        for name, since in (("a", 100.0), ("b", 200.0), ("c", 900.0))
    }
    current = Choice("virginia", 3, "switched", "a", False, 0.0)
    assert next_choice("sip", current, ORDER, verdicts, policy, 499.0, "a")[0] is None
    choice = next_choice("sip", current, ORDER, verdicts, policy, 500.0, "a")[0]
    assert choice is not None and (choice.site, choice.epoch) == ("chicago", 4)


def test_choices_and_verdicts_round_trip_and_garbage_is_refused() -> None:
    choice = Choice("virginia", 2, "why", "me", False, 12.5)
    assert Choice.decode(choice.encode()) == choice
    assert choice.encode() == Choice.decode(choice.encode()).encode()  # byte-stable
    for data in (b"", b"{}", b"[1]", b'{"site": "x"}', b"\xff"):
        with pytest.raises(ValueError, match="not a decision"):
            Choice.decode(data)
    verdicts = seen(sip_chicago=DOWN)
    assert read_verdicts(publishable(verdicts)) == verdicts
    for data in ({"x": 1}, {"x": {"health": "sideways", "since": 1, "reason": ""}}):
        with pytest.raises(ValueError, match="not an observer"):
            read_verdicts(data)


def test_the_inventorys_content_hash_names_its_phones_not_their_order_or_generation() -> None:
    """Two instances serving the same phones show the same hash (issue 16)."""
    from xprov.inventory.file_source import load_file
    from xprov.inventory.snapshot import Inventory, Phone

    phones = list(
        load_file(Path(__file__).parents[2] / "etc" / "inventory.toml", 1).phones.values()
    )
    first = Inventory.of(phones, 1, "file:a")
    again = Inventory.of(reversed(phones), 7, "mysql:virginia")
    assert first.content_hash == again.content_hash and len(first.content_hash) == 16
    changed = [phones[0]._replace(model="T48G"), *phones[1:]]
    assert Inventory.of(changed, 1, "file:a").content_hash != first.content_hash
    assert first.serving_from(5.0).content_hash == first.content_hash
    assert isinstance(phones[0], Phone)
