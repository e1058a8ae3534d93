"""`xprov witness` (issue 16): an observer in a third failure domain. It probes every
site's services like an instance and publishes its verdicts to the cluster, so that two
data centres that lose sight of each other are outvoted by what it sees; it serves no phone,
reads no inventory and renders no template."""

from __future__ import annotations

from typing import Any

from twisted.application import service

from xprov import config, logs
from xprov.build import site_order
from xprov.monitor.loop import Monitor, build_targets
from xprov.monitor.pool import probe_pool
from xprov.selection import ActiveSites
from xprov.services.cluster import Cluster

log = logs.get_logger("xprov.witness")


class Probing(service.Service):
    """The witness's monitor and its probe pool (no reload: a witness restarts)."""

    def __init__(self, cfg: config.Config, reactor: Any) -> None:
        self.pool = probe_pool(cfg)
        active = ActiveSites(cfg.sites, cfg.failover.primary)
        targets = build_targets(cfg, reactor, self.pool)
        self.monitor = Monitor(targets, active, site_order(cfg), cfg.monitor, reactor)

    def startService(self) -> None:
        super().startService()
        self.pool.start()
        self.monitor.start()

    def stopService(self) -> None:
        super().stopService()
        self.monitor.stop()
        self.pool.stop()


class Witness(service.MultiService):
    def __init__(self, cfg: config.Config, reactor: Any) -> None:
        """ValueError unless `[cluster] mode = "etcd"`: a witness alone decides nothing."""
        super().__init__()
        if cfg.cluster.mode != "etcd":
            raise ValueError('the witness needs [cluster] mode = "etcd" and its endpoints')
        self.probing = Probing(cfg, reactor)
        self.cluster = Cluster(cfg.cluster, lambda: self.probing.monitor, reactor, "witness")
        # the cluster first: no round may be judged by the standalone rule
        self.cluster.setServiceParent(self)
        self.probing.setServiceParent(self)
