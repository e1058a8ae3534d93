"""The mutation score's arithmetic: what counts as killed, how a reviewed equivalent is
matched, and when CI fails (tests/mutation/score.py)."""

from __future__ import annotations

import pytest

from tests.mutation.score import (
    EQUIVALENT,
    Change,
    Mutant,
    Reviewed,
    changed_lines,
    entry_for,
    expected_modules,
    function_of,
    reviewed,
    scores,
    stale,
)

DIFF = """--- xprov/guard.py
+++ xprov/guard.py
@@ -3,7 +3,7 @@
     return cls(
-        basic_over_tls=auth.basic_over_tls,
+        basic_over_tls=None,
         shared=None,"""
CHANGE = Change(
    "xprov.guard.Policy.of",
    ("-basic_over_tls=auth.basic_over_tls,", "+basic_over_tls=None,"),
)


@pytest.mark.parametrize(
    ("key", "function"),
    [
        ("xprov.guard.xǁPolicyǁof__mutmut_3", "xprov.guard.Policy.of"),
        ("xprov.mac.x_normalize_mac__mutmut_12", "xprov.mac.normalize_mac"),
        ("xprov.auth.x__basic_pair__mutmut_1", "xprov.auth._basic_pair"),
        (
            "xprov.tftp.session.xǁReadTransferǁ__init____mutmut_2",
            "xprov.tftp.session.ReadTransfer.__init__",
        ),
    ],
)
def test_a_mutant_is_named_by_the_function_a_reader_knows(key: str, function: str) -> None:
    assert function_of(key) == function


def test_a_change_is_its_removed_and_added_lines_without_indentation() -> None:
    assert changed_lines(DIFF) == CHANGE.lines
    assert Mutant("xprov.guard.xǁPolicyǁof__mutmut_3", "survived", DIFF).change == CHANGE


def mutants(killed: int, survived: int, module: str = "xprov.guard") -> list[Mutant]:
    return [Mutant(f"{module}.x_f__mutmut_{n}", "killed", "") for n in range(killed)] + [
        Mutant(f"{module}.x_f__mutmut_{killed + n}", "survived", f"-a\n+b{n}")
        for n in range(survived)
    ]


def test_timeouts_count_as_killed_and_no_tests_as_survived() -> None:
    group = [
        Mutant("xprov.mac.x_f__mutmut_1", "timeout", ""),
        Mutant("xprov.mac.x_f__mutmut_2", "no tests", "-a\n+b"),
    ]
    (row,) = scores(group, [])
    assert (row.killed, len(row.survivors), row.score) == (1, 1, 0.5)


@pytest.mark.parametrize(
    ("module", "killed", "survived", "passed"),
    [
        ("xprov.guard", 95, 5, True),
        ("xprov.guard", 94, 6, False),
        ("xprov.auth", 94, 6, False),
        ("xprov.ratelimit", 94, 6, False),
        ("xprov.selection", 90, 10, True),
        ("xprov.selection", 89, 11, False),
    ],
)
def test_the_gate_and_digest_need_95_percent_and_the_rest_90(
    module: str, killed: int, survived: int, passed: bool
) -> None:
    (row,) = scores(mutants(killed, survived, module), [])
    assert row.passed is passed


def test_a_reviewed_equivalent_leaves_the_denominator() -> None:
    group = mutants(9, 2, "xprov.mac")
    equivalent = [Reviewed(group[-1].change, "same value either way")]
    (row,) = scores(group, equivalent)
    assert (row.killed, row.equivalent, row.survivors, row.score) == (9, 1, (group[-2],), 0.9)


def test_an_entry_that_no_longer_matches_a_survivor_is_stale() -> None:
    group = mutants(1, 1, "xprov.mac")
    kept = Reviewed(group[1].change, "reviewed")
    gone = Reviewed(Change("xprov.mac.f", ("-a", "+c")), "the line changed")
    killed_now = Reviewed(Change("xprov.mac.f", ()), "a test kills it now")
    assert stale(group, [kept, gone, killed_now]) == [gone, killed_now]


def test_an_equivalent_that_timed_out_is_not_stale() -> None:
    timed_out = Mutant("xprov.mac.x_f__mutmut_1", "timeout", "-a\n+b")
    entry = Reviewed(timed_out.change, "same value either way")
    assert stale([timed_out], [entry]) == []
    assert scores([timed_out], [entry])[0].score == 1.0


def test_an_entry_needs_a_reason() -> None:
    with pytest.raises(ValueError, match="without a reason"):
        reviewed('[[equivalent]]\nfunction = "xprov.mac.f"\nchange = ["-a", "+b"]\nreason = " "\n')


def test_the_reviewed_file_parses() -> None:
    entries = reviewed(EQUIVALENT.read_text())
    assert len({entry.change for entry in entries}) == len(entries)


@pytest.mark.parametrize(
    "entry",
    [
        'change = ["-a", "+b"]\nreason = "the same value either way"',
        'function = "xprov.mac.f"\nchange = "-a"\nreason = "the same value either way"',
        'function = "xprov.mac.f"\nchange = ["-a", "+b"]\nreason = "."',
        'function = "xprov.mac.f"\nchange = ["-a", "+b"]\nreason = true',
        'function = "xprov.mac.f"\nchange = ["-a"]\nreason = "same value either way"\ncount = 0',
    ],
)
def test_a_malformed_entry_is_an_error(entry: str) -> None:
    with pytest.raises(ValueError, match="equivalent mutant"):
        reviewed("[[equivalent]]\n" + entry + "\n")


def test_one_entry_stands_for_one_mutant_even_when_two_make_the_same_change() -> None:
    twins = [
        Mutant(f"xprov.mac.x_f__mutmut_{n}", "survived", "-return False\n+return True")
        for n in (1, 2)
    ]
    entry = Reviewed(twins[0].change, "the same value either way")
    (row,) = scores(twins, [entry])
    assert (row.equivalent, row.survivors) == (1, (twins[1],))
    (row,) = scores(twins, [entry._replace(count=2)])
    assert (row.equivalent, row.survivors) == (2, ())


def test_a_mutant_no_test_reaches_is_never_equivalent() -> None:
    unreached = Mutant("xprov.mac.x_f__mutmut_1", "no tests", "-a\n+b")
    entry = Reviewed(unreached.change, "the same value either way")
    (row,) = scores([unreached], [entry])
    assert (row.equivalent, row.survivors) == (0, (unreached,))
    assert stale([unreached], [entry]) == [entry]


def test_every_core_module_is_expected_to_have_mutants() -> None:
    modules = expected_modules()
    assert {"xprov.guard", "xprov.auth", "xprov.vendors", "xprov.tftp.session"} <= modules
    assert "xprov.tftp" not in modules  # its __init__ defines no function


def test_a_survivor_is_printed_as_an_entry_ready_to_review() -> None:
    mutant = Mutant("xprov.guard.xǁPolicyǁof__mutmut_3", "survived", DIFF)
    (entry,) = reviewed(entry_for(mutant).replace("why no caller", "why no caller at all"))
    assert entry.change == CHANGE
