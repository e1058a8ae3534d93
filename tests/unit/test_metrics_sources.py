"""The collector reads its sources at every scrape and knows nothing of the service: a
reload that replaces an object behind a source is what the next scrape shows."""

from __future__ import annotations

import ast
from pathlib import Path

from xprov import metrics
from xprov.guard import Gate, Policy
from xprov.observe import Observer
from xprov.provisioning import Provisioner


def scrape(collector: metrics.XprovCollector) -> dict[str, float]:
    """Every sample without labels, by name."""
    return {
        sample.name: sample.value
        for family in collector.collect()
        for sample in family.samples
        if not sample.labels
    }


def charged(collector: metrics.XprovCollector) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in collector.collect()
        for sample in family.samples
        if sample.name == "xprov_bad_answers_total"
    }


def test_each_scrape_reads_the_sources_anew(provisioner: Provisioner) -> None:
    observer = Observer(lambda: 0.0)
    held = {"gate": Gate(provisioner, Policy.of(provisioner.inputs.config)), "lag": 0.25}
    loaded_at = provisioner.inputs.inventory.loaded_at
    sources = metrics.Sources(
        observer=lambda: observer,
        gate=lambda: held["gate"],
        provisioner=lambda: provisioner,
        tftp=lambda: None,
        monitor=lambda: None,
        active=lambda: provisioner.active,
        convergence=lambda: observer.convergence.report(1, 0.0, 60.0),
        lag=lambda: held["lag"],
        now=lambda: loaded_at + 42.0,
    )
    collector = metrics.XprovCollector(sources)  # one collector, as the registry keeps
    first = scrape(collector)
    assert first["xprov_inventory_age_seconds"] == 42.0
    assert first["xprov_reactor_lag_seconds"] == 0.25
    assert first["xprov_inventory_phones"] == 4.0
    assert "xprov_tftp_active_transfers" not in first  # no TFTP listener: no TFTP family
    held["gate"].charged["unknown device"] += 3
    held["lag"] = 0.5
    assert scrape(collector)["xprov_reactor_lag_seconds"] == 0.5
    assert charged(collector) == {"unknown device": 3.0}
    held["gate"] = Gate(provisioner, Policy.of(provisioner.inputs.config))  # as a reload may
    assert charged(collector) == {}


def test_metrics_does_not_import_the_service() -> None:
    source = Path(metrics.__file__).read_text()
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "xprov.service" not in imported and "xprov" in {m.split(".")[0] for m in imported}
