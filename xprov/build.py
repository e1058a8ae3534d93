"""Build everything a config names, off the reactor: the config, its templates (compiled,
every shared file rendered for every model and site), the inventory, and the secrets for
the log redactor. Blocking; touches no shared state: a reload builds to the side with it,
`check-config` and `render` use it as is."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xprov import config, logs
from xprov.guard import credential_problems
from xprov.inventory import Inventory, InventoryError, mysql_source
from xprov.inventory.file_source import load_file
from xprov.monitor.errors import error_detail
from xprov.problems import Problems
from xprov.provisioning import Inputs, shared_file_problems
from xprov.render import TemplateProblems, Templates
from xprov.vendors import all_templates

_generations = itertools.count(1)


def next_generation() -> int:
    """A number no earlier build or inventory read of this process has (their stamp)."""
    return next(_generations)


class BuildError(Problems):
    """The config, templates or inventory are not usable; `problems` says why."""


@dataclass(frozen=True)
class Built:
    """Everything a reload swaps in, built off the reactor."""

    inputs: Inputs
    secrets: dict[int, frozenset[str]]  # prepared for the log redactor
    report: mysql_source.LoadReport | None = None

    def serving_from(self, at: float) -> Built:
        """This build as it is swapped in, its inventory stamped `loaded_at = at` (s, the
        process's clock, read on the reactor: never on the builder thread)."""
        inventory = self.inputs.inventory.serving_from(at)
        return replace(self, inputs=replace(self.inputs, inventory=inventory))


def site_order(cfg: config.Config) -> list[str]:
    order = [cfg.failover.primary, cfg.failover.backup]
    return order + sorted(set(cfg.sites) - set(order))


def load_inventory(
    cfg: config.Config, generation: int, sites: list[str], previous: Inventory | None = None
) -> tuple[Inventory, mysql_source.LoadReport | None]:
    """The inventory from the file, or from the first of `sites` whose database answers
    (blocking; its content hash computed here, off the reactor). InventoryError lists what
    failed."""
    inventory, report = _read_inventory(cfg, generation, sites, previous)
    assert inventory.content_hash
    return inventory, report


def _read_inventory(
    cfg: config.Config, generation: int, sites: list[str], previous: Inventory | None
) -> tuple[Inventory, mysql_source.LoadReport | None]:
    if cfg.inventory.source == "file":
        assert cfg.inventory.path is not None
        return load_file(cfg.inventory.path, generation), None
    problems = []
    for name in sites:
        db = cfg.sites[name].db
        assert db is not None
        source = f"mysql:{name} {db.host}:{db.port}/{db.database}"
        try:
            return mysql_source.load(db, cfg.inventory.timeout, generation, source, previous)
        except Exception as exc:  # PyMySQL raises assorted errors; none may escape
            problems.append(f"inventory from {name} ({db.host}:{db.port}): {error_detail(exc)}")
    raise InventoryError(problems)


def build(
    path: str | Path, sites: list[str] | None = None, previous: Inventory | None = None
) -> Built:
    """Read the config file and build everything it names (blocking; no shared state is
    touched). BuildError lists every problem. `sites`: where to read a MySQL inventory,
    in order (default: the primary, then the others)."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        raise BuildError(exc.problems) from None
    generation = next_generation()
    problems: list[str] = []
    templates = inventory = report = None
    try:
        templates = Templates(cfg.templates.dirs, all_templates(), generation)
    except TemplateProblems as exc:
        problems += exc.problems
    first = [s for s in (sites or []) if s in cfg.sites]
    order = first + [s for s in site_order(cfg) if s not in first]
    try:
        inventory, report = load_inventory(cfg, generation, order, previous)
    except InventoryError as exc:
        problems += exc.problems
    if inventory is not None:
        problems += credential_problems(cfg, inventory)
    if problems or templates is None or inventory is None:
        raise BuildError(problems)
    inputs = Inputs(cfg, generation, templates, inventory)
    problems = shared_file_problems(inputs)
    if problems:
        raise BuildError(problems)
    secrets = redaction(cfg, inventory)
    return Built(inputs, secrets, report)


def redaction(cfg: config.Config, inventory: Inventory) -> dict[int, frozenset[str]]:
    """Every secret of a config and an inventory, prepared for the log redactor (slow for
    100,000 phones: done off the reactor)."""
    return logs.Redactor.prepare(itertools.chain(cfg.secrets(), inventory.secrets()))


def load(path: str | Path) -> Inputs:
    """Everything a config file names, built now (blocking)."""
    return build(path).inputs


def report_fields(report: mysql_source.LoadReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    return {
        "skipped": report.skipped,
        "kept_previous": report.kept_previous,
        "problems": report.problems,
        "load_s": round(report.seconds, 3),
    }
