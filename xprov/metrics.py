"""Prometheus metrics, computed when scraped from the counters the service keeps anyway:
nothing on the request path beyond a counter increment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from xprov.guard import Gate
    from xprov.monitor.loop import Monitor
    from xprov.observe import Observer
    from xprov.provisioning import Provisioner
    from xprov.push.pusher import Pusher
    from xprov.selection import ActiveSites
    from xprov.servers.tftp import TftpServer


@dataclass(frozen=True)
class Sources:
    """What the collector reads, asked again at every scrape: a reload replaces the objects
    behind these callables, so the collector never keeps one."""

    observer: Callable[[], Observer]  # request and refusal counters
    gate: Callable[[], Gate]  # bad answers charged, the limiter's sources, digest nonces
    provisioner: Callable[[], Provisioner]  # renders, cache; inputs: inventory, config
    tftp: Callable[[], TftpServer | None]  # None: no TFTP listener
    monitor: Callable[[], Monitor | None]  # probe states, switches; None: no monitor
    active: Callable[[], ActiveSites]  # the selection
    convergence: Callable[[], dict[str, Any]]  # `Convergence.report` of the selection
    lag: Callable[[], float]  # the event loop's longest lateness in the last minute, s
    now: Callable[[], float]  # the process's one clock (s), for the inventory's age
    cluster: Callable[[], dict[str, Any]] = dict  # `Cluster.status()`; {}: standalone
    push: Callable[[], Pusher | None] = lambda: None  # NOTIFYs after a switch


class XprovCollector:
    def __init__(self, sources: Sources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._requests()
        yield from self._security()
        yield from self._render()
        yield from self._tftp()
        yield from self._monitor()
        yield from self._selection()
        yield from self._inventory()
        yield from self._cluster()
        yield from self._push()

    def _requests(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "xprov_requests",
            "Phone requests answered",
            labels=["transport", "vendor", "kind", "status"],
        )
        for labels, count in sorted(self.sources.observer().requests.items()):
            family.add_metric(list(labels), count)
        yield family

    def _security(self) -> Iterator[Metric]:
        charged = CounterMetricFamily(
            "xprov_bad_answers",
            "Unknown devices and failed logins charged to their source",
            labels=["reason"],
        )
        gate = self.sources.gate()
        for reason, count in sorted(gate.charged.items()):
            charged.add_metric([reason], count)
        yield charged
        refusals = CounterMetricFamily(
            "xprov_refusals",
            "Requests for per-device files refused by the gate",
            labels=["status", "reason"],
        )
        for (status, reason), count in sorted(self.sources.observer().refusals.items()):
            refusals.add_metric([str(status), reason], count)
        yield refusals
        yield GaugeMetricFamily(
            "xprov_bad_answer_sources",
            "Sources with a recent bad answer (the limiter's memory)",
            value=len(gate.sources),
        )
        yield GaugeMetricFamily(
            "xprov_digest_nonces",
            "Digest nonces whose count is tracked against replays",
            value=len(gate.digest.counts),
        )

    def _render(self) -> Iterator[Metric]:
        provisioner = self.sources.provisioner()
        yield CounterMetricFamily(
            "xprov_renders", "Files rendered from a template", value=provisioner.renders
        )
        yield CounterMetricFamily(
            "xprov_render_cache_hits", "Files served from the cache", value=provisioner.cache.hits
        )
        yield CounterMetricFamily(
            "xprov_render_cache_misses",
            "Cache lookups that rendered",
            value=provisioner.cache.misses,
        )
        yield GaugeMetricFamily(
            "xprov_render_cache_entries", "Files in the render cache", value=len(provisioner.cache)
        )

    def _tftp(self) -> Iterator[Metric]:
        tftp = self.sources.tftp()
        if tftp is None:
            return
        stats = tftp.stats
        transfers = CounterMetricFamily(
            "xprov_tftp_transfers", "TFTP transfers ended", labels=["result"]
        )
        transfers.add_metric(["ok"], stats.ok)
        transfers.add_metric(["failed"], stats.failed)
        yield transfers
        yield CounterMetricFamily(
            "xprov_tftp_retransmits", "TFTP packets sent again", value=stats.retransmits
        )
        yield CounterMetricFamily(
            "xprov_tftp_sent_bytes", "TFTP DATA payload bytes sent", value=stats.bytes
        )
        yield GaugeMetricFamily(
            "xprov_tftp_active_transfers", "TFTP transfers running", value=tftp.active
        )
        yield CounterMetricFamily(
            "xprov_tftp_evicted",
            "TFTP transfers whose client never answered, ended to make room for a request",
            value=stats.evicted,
        )
        rejected = CounterMetricFamily(
            "xprov_tftp_rejected", "TFTP requests answered with an ERROR", labels=["reason"]
        )
        for reason, count in sorted(stats.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected

    def _monitor(self) -> Iterator[Metric]:
        monitor = self.sources.monitor()
        if monitor is None:
            return
        up = GaugeMetricFamily(
            "xprov_probe_up",
            "1 if the target is up, 0 if down or unknown",
            labels=["service", "site"],
        )
        latency = GaugeMetricFamily(
            "xprov_probe_latency_seconds", "Latency of the last probe", labels=["service", "site"]
        )
        results = CounterMetricFamily(
            "xprov_probe_results", "Probe results", labels=["service", "site", "result"]
        )
        for target in monitor.targets:
            state = monitor.states[target.name]
            labels = [target.service, target.site]
            up.add_metric(labels, 1.0 if state.health.value == "up" else 0.0)
            if state.last is not None:
                latency.add_metric(labels, state.last.latency)
            results.add_metric([*labels, "ok"], state.total_ok)
            results.add_metric([*labels, "failed"], state.total_failed)
        yield up
        yield latency
        yield results
        switches = CounterMetricFamily("xprov_switches", "Site switches", labels=["service", "by"])
        for (service, by), count in sorted(monitor.switches.items()):
            switches.add_metric([service, by], count)
        yield switches

    def _selection(self) -> Iterator[Metric]:
        sites = self.sources.active()
        selection = sites.current
        active = GaugeMetricFamily(
            "xprov_active_site", "1 for the site active for a service", labels=["service", "site"]
        )
        for name in selection.active:
            for site in sorted(sites.sites):
                active.add_metric([name, site], 1.0 if selection.site_of(name) == site else 0.0)
        yield active
        yield GaugeMetricFamily(
            "xprov_selection_generation",
            "Generation of the active sites",
            value=selection.generation,
        )
        report = self.sources.convergence()
        yield GaugeMetricFamily(
            "xprov_convergence_ratio",
            "Share of regularly polling phones that fetched the current selection",
            value=report["percent"] / 100,
        )
        yield GaugeMetricFamily(
            "xprov_convergence_pending_phones",
            "Regularly polling phones not yet on the current selection",
            value=report["pending"],
        )

    def _inventory(self) -> Iterator[Metric]:
        inputs = self.sources.provisioner().inputs
        yield GaugeMetricFamily(
            "xprov_inventory_phones", "Phones in the inventory", value=len(inputs.inventory)
        )
        yield GaugeMetricFamily(
            "xprov_inventory_age_seconds",
            "Age of the inventory snapshot",
            value=self.sources.now() - inputs.inventory.loaded_at,
        )
        yield GaugeMetricFamily(
            "xprov_inventory_generation", "Inventory generation", value=inputs.inventory.generation
        )
        yield GaugeMetricFamily(
            "xprov_config_generation", "Config generation", value=inputs.config_generation
        )
        yield GaugeMetricFamily(
            "xprov_reactor_lag_seconds",
            "Longest lateness of the event loop in the last minute",
            value=self.sources.lag(),
        )

    def _cluster(self) -> Iterator[Metric]:
        cluster = self.sources.cluster()
        if cluster.get("mode") != "etcd":
            return
        yield GaugeMetricFamily(
            "xprov_cluster_agreement",
            "1 while etcd answers (decisions are agreed); 0: the last decision stands",
            value=1.0 if cluster.get("agreement") == "ok" else 0.0,
        )
        yield GaugeMetricFamily(
            "xprov_cluster_observers",
            "Live observers seen in etcd",
            value=len(cluster["observers"]),
        )
        yield GaugeMetricFamily(
            "xprov_cluster_inventories_agree",
            "1 when every live instance serves an inventory with the same content hash",
            value=1.0 if cluster.get("inventories_agree") else 0.0,
        )

    def _push(self) -> Iterator[Metric]:
        pusher = self.sources.push()
        if pusher is None:
            return
        results = CounterMetricFamily(
            "xprov_push", "NOTIFYs sent after a switch, by result", labels=["outcome"]
        )
        for outcome, count in pusher.totals.items():
            results.add_metric([outcome], count)
        yield results
        skipped = CounterMetricFamily(
            "xprov_push_skipped",
            "Registrations a push left out (unknown: no phone of the inventory; invalid)",
            labels=["reason"],
        )
        for reason, count in pusher.skipped.items():
            skipped.add_metric([reason], count)
        yield skipped
        yield GaugeMetricFamily(
            "xprov_push_pending",
            "NOTIFYs of a push not sent yet, or sent and not answered yet",
            value=pusher.pending,
        )


def registry(sources: Sources) -> CollectorRegistry:
    """A registry of one collector reading `sources` when scraped."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(XprovCollector(sources))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
