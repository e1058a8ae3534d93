"""The mutation score of the pure core, per module, held to issue 12's thresholds.

Run after `mutmut run` from the project root (`make mutation` does both):

    python -m tests.mutation.score

A mutant counts as killed when a test failed on it, or it timed out (an endless loop is
caught). A survivor is either listed in `equivalent.toml` (reviewed: it changes nothing
observable) or counts against the score. Score = killed / (mutants - equivalent).
Exit status 1 when a module is under its threshold, a module of `only_mutate` has no mutants
(a decorator or a dropped glob hid it), or an entry of `equivalent.toml` matches no surviving
mutant (the code changed: review it again). An entry stands for exactly one mutant (`count`
for several identical changes in one function), and only for one a test let through
("survived"): a mutant no test reaches is never equivalent.
"""

from __future__ import annotations

import ast
import configparser
import sys
import tomllib
from collections import Counter
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
    count: int = 1


def reviewed(text: str) -> list[Reviewed]:
    """The entries of equivalent.toml; ValueError names a malformed entry."""
    entries = []
    for entry in tomllib.loads(text).get("equivalent", []):
        function, change, reason = entry.get("function"), entry.get("change"), entry.get("reason")
        count = entry.get("count", 1)
        if not isinstance(function, str) or not function.startswith("xprov."):
            raise ValueError(f"equivalent mutant without a function: {entry}")
        if not isinstance(change, list) or not all(isinstance(c, str) for c in change):
            raise ValueError(f"equivalent mutant's change is not a list of lines: {entry}")
        if not isinstance(reason, str) or len(reason.split()) < 4:
            raise ValueError(f"equivalent mutant without a reason (a sentence): {entry}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"equivalent mutant with a bad count: {entry}")
        entries.append(Reviewed(Change(function, tuple(change)), reason, count))
    return entries


def _absorbed(
    mutants: Iterable[Mutant], equivalent: Iterable[Reviewed]
) -> tuple[set[str], Counter[Change]]:
    """Keys of the survivors the reviewed entries stand for, and what of the entries is left
    over (each entry stands for `count` survivors, no more)."""
    left: Counter[Change] = Counter()
    for entry in equivalent:
        left[entry.change] += entry.count
    keys = set()
    for mutant in mutants:
        if mutant.status == "survived" and left[mutant.change] > 0:
            left[mutant.change] -= 1
            keys.add(mutant.key)
    return keys, +left


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
    mutants = list(mutants)
    equivalent_keys, _ = _absorbed(mutants, equivalent)
    by_module: dict[str, list[Mutant]] = {}
    for mutant in mutants:
        by_module.setdefault(mutant.module, []).append(mutant)
    result = []
    for module, group in sorted(by_module.items()):
        killed = sum(m.status in KILLED for m in group)
        alive = [m for m in group if m.status not in KILLED]
        survivors = tuple(m for m in alive if m.key not in equivalent_keys)
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
    """Entries left without their surviving mutants: the line changed, or a test now fails
    on it. (An equivalent mutant that timed out on a loaded machine is not stale.)"""
    mutants = list(mutants)
    timed_out = Counter(m.change for m in mutants if m.status == "timeout")
    _, left = _absorbed(mutants, equivalent)
    return [e for e in equivalent if left[e.change] > timed_out[e.change]]


def expected_modules(setup_cfg: Path = Path("setup.cfg")) -> set[str]:
    """Modules named by `only_mutate` in setup.cfg that define a function (so have mutants)."""
    parser = configparser.ConfigParser()
    parser.read(setup_cfg)
    modules = set()
    for pattern in parser.get("mutmut", "only_mutate").split():
        for path in sorted(Path().glob(pattern)):
            tree = ast.parse(path.read_text())
            if any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in ast.walk(tree)):
                modules.add(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
    return modules


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


def entry_for(mutant: Mutant) -> str:
    """A survivor as an equivalent.toml entry, to paste once it is reviewed as equivalent."""
    lines = ", ".join(f'"{line}"' for line in mutant.change.lines).replace("\\", "\\\\")
    return (
        f'[[equivalent]]\nfunction = "{mutant.change.function}"\nchange = [{lines}]\n'
        'reason = "why no caller can tell the difference"'
    )


def report(table: list[ModuleScore], stale_entries: list[Reviewed], missing: set[str]) -> str:
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
            lines += ["if equivalent:", entry_for(mutant)]
    lines += [
        f"\nno mutants at all in {module} (a decorator? only_mutate?)" for module in sorted(missing)
    ]
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
    missing = expected_modules() - {row.module for row in table if row.mutants}
    print(report(table, stale_entries, missing))
    return 0 if all(row.passed for row in table) and not stale_entries and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
