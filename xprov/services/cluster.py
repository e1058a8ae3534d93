"""The agreement as a service (issue 16): in `[cluster] mode = "etcd"`, this process's
observer in the cluster (`cluster.node.Node`); standalone, nothing.

`[cluster]` is read at start only: a reload that changes it applies every other key and
reports the cluster's keys as waiting for a restart (`restart_pending` in status), since
moving an observer to other endpoints or another name mid-flight would make it two."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from twisted.application import service

from xprov import config, logs
from xprov.cluster.etcd import Etcd
from xprov.cluster.node import Node

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from xprov.monitor.loop import Monitor

log = logs.get_logger("xprov.service")


def etcd_client(settings: config.ClusterConfig, reactor: Any) -> Etcd:
    return Etcd(
        reactor,
        settings.endpoints,
        settings.timeout,
        ca=settings.ca,
        certificate=settings.certificate,
        private_key=settings.private_key,
        user=settings.user,
        password=settings.password or None,
    )


class Cluster(service.Service):
    """Owns `[cluster]` (restart only). `role`: "instance" or "witness"; `inventory`: the
    content hash of the inventory served; `on_node` hears of the node (the admin API)."""

    def __init__(
        self,
        settings: config.ClusterConfig,
        monitor: Callable[[], Monitor | None],
        reactor: IReactorTime,
        role: str,
        inventory: Callable[[], str | None] = lambda: None,
        on_node: Callable[[Node | None], None] = lambda node: None,
    ) -> None:
        self.settings, self.monitor, self.reactor = settings, monitor, reactor
        self.role, self.inventory, self.on_node = role, inventory, on_node
        self.node: Node | None = None
        self.restart_pending: list[str] = []

    def startService(self) -> None:
        super().startService()
        monitor = self.monitor()
        if self.settings.mode != "etcd" or monitor is None:
            return
        etcd = etcd_client(self.settings, self.reactor)
        self.node = Node(etcd, self.settings, monitor, self.reactor, self.role, self.inventory)
        self.on_node(self.node)
        self.node.start()
        log.info(
            "cluster_started",
            observer=self.settings.name,
            role=self.role,
            endpoints=list(self.settings.endpoints),
        )

    def stopService(self) -> Any:
        super().stopService()
        node, self.node = self.node, None
        self.on_node(None)
        return node.stop() if node is not None else None

    def reconfigure(self, cfg: config.Config) -> list[str]:
        """The `[cluster]` keys this reload changed: they wait for a restart (logged)."""
        changed = [
            f"cluster.{f.name}"
            for f in fields(cfg.cluster)
            if getattr(cfg.cluster, f.name) != getattr(self.settings, f.name)
        ]
        if changed != self.restart_pending and changed:
            log.warning(
                "restart_needed",
                keys=changed,
                effect="the running cluster settings stay until xprov restarts",
            )
        self.restart_pending = changed
        return changed

    def status(self) -> dict[str, Any]:
        if self.node is None:
            return {"mode": self.settings.mode, "restart_pending": self.restart_pending}
        return {**self.node.status(), "restart_pending": self.restart_pending}
