"""The mutation score of the pure core, per module, held to issue 12's thresholds.

Run after `mutmut run` from the project root (`make mutation` does both):

    python -m tests.mutation.score

A mutant counts as killed when a test failed on it, or it timed out (an endless loop is
caught). A survivor is either listed in `equivalent.toml` (reviewed: it changes nothing
observable) or counts against the score. Score = killed / (mutants - equivalent).
Exit status 1 when a module is under its threshold, or an entry of `equivalent.toml` matches
no surviving mutant (the code changed: review it again).
"""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).parent
EQUIVALENT = HERE / "equivalent.toml"
MUTANTS = Path("mutants")

# Killed share of non-equivalent mutants each module must reach (issue 12).
STRICT = 0.95
THRESHOLDS = {"xprov.guard": STRICT, "xprov.auth": STRICT, "xprov.ratelimit": STRICT}
DEFAULT_THRESHOLD = 0.90

FAILED_A_TEST = frozenset({"killed", "caught by type check"})
KILLED = FAILED_A_TEST | {"timeout"}


class Change(NamedTuple):
    """One mutant as a reviewer reads it: the function and the lines it changes.

    `lines` are the diff's removed ("-") and added ("+") lines, stripped of indentation:
    stable when unrelated code moves, different as soon as the mutated line changes."""

    function: str
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Mutant:
    key: str  # mutmut's name, e.g. "xprov.guard.xǁPolicyǁof__mutmut_3"
    status: str  # mutmut's status: "killed", "survived", "no tests", ...
    diff: str

    @property
    def module(self) -> str:
        return module_of(self.key)

    @property
    def change(self) -> Change:
        return Change(function_of(self.key), changed_lines(self.diff))


def module_of(key: str) -> str:
    """ "xprov.tftp.codec.x_decode__mutmut_2" -> "xprov.tftp.codec"."""
    return key.rsplit(".", 1)[0]


def function_of(key: str) -> str:
    """mutmut's mangled name -> the qualified name a reader knows:
    "xprov.guard.xǁGateǁanswer__mutmut_7" -> "xprov.guard.Gate.answer",
    "xprov.mac.x_normalize_mac__mutmut_1" -> "xprov.mac.normalize_mac"."""
    module, mangled = key.rsplit(".", 1)
    name = mangled.rsplit("__mutmut_", 1)[0]
    name = ".".join(name.split("ǁ")[1:]) if name.startswith("xǁ") else name.removeprefix("x_")
    return f"{module}.{name}"


def changed_lines(diff: str) -> tuple[str, ...]:
    """The "-" and "+" lines of a unified diff, without headers, indentation kept out."""
    return tuple(
        line[0] + line[1:].strip()
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    )


class Reviewed(NamedTuple):
    change: Change
    reason: str


def reviewed(text: str) -> list[Reviewed]:
    """The entries of equivalent.toml; ValueError names an entry without a reason."""
    entries = []
    for entry in tomllib.loads(text).get("equivalent", []):
        if not str(entry.get("reason", "")).strip():
            raise ValueError(f"equivalent mutant without a reason: {entry}")
        change = Change(entry["function"], tuple(entry["change"]))
        entries.append(Reviewed(change, entry["reason"]))
    return entries


class ModuleScore(NamedTuple):
    module: str
    mutants: int
    killed: int
    equivalent: int
    survivors: tuple[Mutant, ...]
    threshold: float

    @property
    def score(self) -> float:
        counted = self.mutants - self.equivalent
        return 1.0 if counted == 0 else self.killed / counted

    @property
    def passed(self) -> bool:
        return self.score >= self.threshold


def scores(mutants: Iterable[Mutant], equivalent: Iterable[Reviewed]) -> list[ModuleScore]:
    """Per module, sorted by name: killed, equivalent survivors and the other survivors."""
    known = {entry.change for entry in equivalent}
    by_module: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_module.setdefault(mutant.module, []).append(mutant)
    result = []
    for module, group in sorted(by_module.items()):
        killed = sum(m.status in KILLED for m in group)
        alive = [m for m in group if m.status not in KILLED]
        survivors = tuple(m for m in alive if m.change not in known)
        result.append(
            ModuleScore(
                module,
                len(group),
                killed,
                len(alive) - len(survivors),
                survivors,
                THRESHOLDS.get(module, DEFAULT_THRESHOLD),
            )
        )
    return result


def stale(mutants: Iterable[Mutant], equivalent: Iterable[Reviewed]) -> list[Reviewed]:
    """Entries that match no mutant a test let through: the line changed, or a test now
    fails on it. (An equivalent mutant that timed out on a loaded machine is not stale.)"""
    passed = {m.change for m in mutants if m.status not in FAILED_A_TEST}
    return [entry for entry in equivalent if entry.change not in passed]


def mutmut_results() -> Iterator[Mutant]:
    """Every mutant of the last `mutmut run`, read through mutmut's own files (mutants/)."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = meta.with_suffix("").relative_to(MUTANTS)
        data = SourceFileMutationData(path=source)
        data.load()
        for key, exit_code in sorted(data.exit_code_by_key.items()):
            status = status_by_exit_code[exit_code]
            diff = "" if status in FAILED_A_TEST else get_diff_for_mutant(key, path=source)
            yield Mutant(key, status, diff)


def report(table: list[ModuleScore], stale_entries: list[Reviewed]) -> str:
    lines = [f"{'module':<24} {'mutants':>7} {'killed':>6} {'equiv':>5} {'left':>4}  score  need"]
    for row in table:
        mark = "ok" if row.passed else "FAIL"
        lines.append(
            f"{row.module:<24} {row.mutants:>7} {row.killed:>6} {row.equivalent:>5} "
            f"{len(row.survivors):>4} {row.score:>6.1%} {row.threshold:>5.0%} {mark}"
        )
    for row in table:
        for mutant in row.survivors:
            lines += ["", f"survivor ({mutant.status}): {mutant.key}", mutant.diff]
    for entry in stale_entries:
        lines += ["", f"stale entry in {EQUIVALENT.name}: {entry.change}"]
    return "\n".join(lines)


def main() -> int:
    if not MUTANTS.is_dir():
        print("no mutants/: run `mutmut run` first (make mutation)", file=sys.stderr)
        return 2
    mutants = list(mutmut_results())
    equivalent = reviewed(EQUIVALENT.read_text())
    table = scores(mutants, equivalent)
    stale_entries = stale(mutants, equivalent)
    print(report(table, stale_entries))
    return 0 if all(row.passed for row in table) and not stale_entries else 1


if __name__ == "__main__":
    sys.exit(main())
