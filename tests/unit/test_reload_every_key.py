"""Issue 15: every config key takes effect at a reload, one row per key.

A row names a key, the value a reload brings, and what its owner does with it on the running
service (a rendered file, a listener, a bound, the monitor's settings). The test runs a whole
`Service` on a memory reactor: no socket, no thread. `test_every_key_has_a_row` reads a config
that sets every table and fails when a key is read that no row covers, so a new key cannot
forget its reload (docs/architecture.md, "Config keys")."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import certs
from tests.helpers import TEMPLATES, MemoryReactor, sample_config, toml_value
from xprov import config, logs
from xprov.build import build
from xprov.config import table as config_table
from xprov.descriptors import Limit
from xprov.guard import Asker, Transport
from xprov.inventory import mysql_source
from xprov.inventory.file_source import load_file
from xprov.provisioning import Served
from xprov.service import Service
from xprov.services import push as push_service

DELETE = object()  # a row's change that removes the key


@dataclass(frozen=True)
class Row:
    key: str  # the key path the meta-test matches; a site's keys as "sites.*.<service>.<key>"
    changes: Mapping[str, Any]  # key path -> its new value (DELETE: removed)
    seen: Callable[[Service], Any]  # what the running owner does with the key
    expect: Any  # `seen` after the reload
    base: Mapping[str, Any] = field(default_factory=dict)  # before and after

    def __str__(self) -> str:
        return self.key


# -- the running service, observed -------------------------------------------------------


def fetch(svc: Service, name: str) -> str:
    answer = svc.core.gate.answer(Asker(Transport.HTTP, "127.0.0.1", f"/{name}"), 0.0)
    assert isinstance(answer, Served), answer
    return answer.body.decode()


def spa_device(svc: Service) -> str:
    return fetch(svc, "0002fdff2103.xml")


def spa_model(svc: Service) -> str:
    return fetch(svc, "spa504G.cfg")


def yealink_common(svc: Service) -> str:
    return fetch(svc, "y000000000028.cfg")


def has(text: str) -> Callable[[Service], bool]:
    return lambda svc: text in spa_device(svc)


def listening(kind: str) -> Callable[[Service], list[str]]:
    return lambda svc: svc.listeners.listening().get(kind, [])


def https_settings(svc: Service) -> config.HttpsConfig:
    """The [https] whose TLS options the HTTPS ports hand new connections."""
    assert any(kind == "https" for kind, _ in svc.listeners.ports)
    settings = svc.listeners.secure_tls.settings
    assert settings is not None
    return settings


def target(name: str, attribute: str) -> Callable[[Service], Any]:
    """What the monitor's target `name` ("db@chicago") probes."""

    def seen(svc: Service) -> Any:
        assert svc.monitoring.monitor is not None
        (found,) = (t for t in svc.monitoring.monitor.targets if t.name == name)
        service, _timeout, _settings = found.spec
        return getattr(service, attribute)

    return seen


def monitor(attribute: str) -> Callable[[Service], Any]:
    def seen(svc: Service) -> Any:
        assert svc.monitoring.monitor is not None
        return getattr(svc.monitoring.monitor.settings, attribute)

    return seen


def networks(values: Any) -> list[str]:
    return [str(n) for n in values]


def tftp(svc: Service) -> Any:
    assert svc.tftp.server is not None
    return svc.tftp.server


OPEN_SOCKETS: list[FakeSocket] = []


class FakeSocket:
    """A NOTIFY socket (xprov.push.transaction.NotifySender) that only knows its bind and
    whether it is open (in OPEN_SOCKETS)."""

    def __init__(self, reactor: Any, bind: str) -> None:
        self.bind = bind
        OPEN_SOCKETS.append(self)

    def close(self) -> None:
        OPEN_SOCKETS.remove(self)


def push_source(attribute: str) -> Callable[[Service], Any]:
    """What the next push reads its contacts from (`Push.contact_source`)."""
    return lambda svc: getattr(svc.push.contact_source(), attribute)


def push_sockets(svc: Service) -> list[str]:
    """The binds of the NOTIFY sockets open now (one: a new bind closed the old socket)."""
    return [socket.bind for socket in OPEN_SOCKETS]


# -- the configs ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> certs.Pki:
    return certs.Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def files(tmp_path: Path, pki: certs.Pki) -> dict[str, Any]:
    """Files the full config and the rows point at."""
    (tmp_path / "token").write_text("a-token-from-a-file-0123456789\n")
    (tmp_path / "dbpass").write_text("db-pass-from-a-file\n")
    (tmp_path / "authpass").write_text("shared-pass-from-a-file-2026\n")
    templates = tmp_path / "templates2"
    shutil.copytree(TEMPLATES, templates)
    model = templates / "linksys" / "model.xml"
    model.write_text(model.read_text().replace("<flat-profile>", "<flat-profile><!-- v2 -->"))
    return {"tmp": tmp_path, "pki": pki, "templates": templates}


def full_document(tmp: Path, pki: certs.Pki) -> dict[str, Any]:
    """The sample config with every table set: HTTPS, [auth], TFTP's per-device sources."""
    doc = tomllib.loads(sample_config(tmp).read_text())
    doc["https"] = {
        "listen": ["127.0.0.1:18443"],
        "certificate": str(pki.server[0]),
        "private_key": str(pki.server[1]),
        "client_ca": [str(pki.ca[0])],
        "client_certificate": "optional",
        "bind_mac": False,
        "allow": [],
    }
    doc["http"]["allow"] = []
    doc["auth"] = {
        "mode": "off",
        "basic_over_tls": False,
        "user": "provuser",
        "password": "shared-pass-2026-long-enough",
        "nonce_lifetime": 300,
    }
    doc["security"].update(max_connections=1000, repeat_window=3600)
    doc["tftp"].update(allow=[], per_device_from=["127.0.0.0/8"])
    doc["admin"]["allow"] = []
    doc["inventory"].update(refresh=60, timeout=5)
    doc["monitor"].update(
        enabled=True,
        interval=2,
        timeout=0.5,
        fast_interval=1,
        sip_down_codes=[503],
        failback="manual",
        hold_down=300,
    )
    doc["sites"]["chicago"]["sip"].update(tls_server_name="sip.example.net", tls_ca=str(pki.ca[0]))
    doc["sites"]["virginia"]["sip"].update(tls_server_name="sip.example.net", tls_ca=str(pki.ca[0]))
    for site in ("chicago", "virginia"):
        doc["sites"][site]["db"].update(tls=False, expect_read_only=False)
    doc["cluster"] = {
        "mode": "standalone",
        "name": "chicago",
        "endpoints": ["http://127.0.0.1:23791"],
        "prefix": "/xprov/",
        "lease_ttl": 5,
        "min_observers": 2,
        "timeout": 1.0,
        "ca": str(pki.ca[0]),
        "certificate": str(pki.t46g[0]),
        "private_key": str(pki.t46g[1]),
        "user": "xprov",
        "password": "etcd-pass-2026",
    }
    doc["push"] = {
        "enabled": True,
        "rate": 100,
        "contacts": "file",
        "contacts_file": str(tmp / "contacts.toml"),
        "location_table": "location",
        "timeout": 5.0,
        "bind": "127.0.0.1",
        "services": ["sip", "stun"],
    }
    return doc


def dump(table: Mapping[str, Any], path: str = "") -> str:
    """TOML for a document of tables, scalars and lists (enough for a config)."""
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    out = f"[{path}]\n" if path and scalars else ""
    out += "".join(f"{k} = {toml_value(v)}\n" for k, v in scalars.items())
    for key, sub in table.items():
        if isinstance(sub, dict):
            out += dump(sub, f"{path}.{key}" if path else key)
    return out


def changed(doc: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    out = tomllib.loads(dump(doc))
    for path, value in changes.items():
        *tables, key = path.split(".")
        where = out
        for name in tables:
            where = where.setdefault(name, {})
        if value is DELETE:
            where.pop(key, None)
        else:
            where[key] = value
    return out


# -- one row per key -----------------------------------------------------------------------


def configured(svc: Service) -> Any:
    return CONFIGURED[-1] if CONFIGURED else None


CONFIGURED: list[tuple[str, str]] = []

SITE = "sites.chicago"

ROWS = [
    Row(
        "provisioning.url",
        {"provisioning.url": "http://prov.example.net:8080"},
        lambda svc: "http://prov.example.net:8080/spa504G.cfg" in spa_model(svc),
        True,
    ),
    Row(
        "provisioning.second_url",
        {"provisioning.second_url": "http://prov-b.example.net:8080"},
        lambda svc: "? http://prov-b.example.net:8080/spa504G.cfg | " in spa_model(svc),
        True,
    ),
    Row(
        "provisioning.poll_seconds",
        {"provisioning.poll_seconds": 120},
        has('<Resync_Periodic ua="na">120<'),
        True,
    ),
    Row(
        "http.listen", {"http.listen": ["127.0.0.1:18080"]}, listening("http"), ["127.0.0.1:18080"]
    ),
    Row(
        "http.allow",
        {"http.allow": ["10.0.0.0/8"]},
        lambda svc: networks(svc.listeners.web.allow),
        ["10.0.0.0/8"],
    ),
    Row(
        "https.listen",
        {"https.listen": ["127.0.0.1:18444"]},
        listening("https"),
        ["127.0.0.1:18444"],
    ),
    Row(
        "https.certificate",
        {"https.certificate": "CERT2", "https.private_key": "KEY2"},
        lambda svc: https_settings(svc).certificate.name,
        "server-ca.pem",
    ),
    Row(
        "https.private_key",
        {"https.certificate": "CERT2", "https.private_key": "KEY2"},
        lambda svc: https_settings(svc).private_key.name,
        "server-ca.key",
    ),
    Row(
        "https.client_ca",
        {"https.client_ca": ["CA2"]},
        lambda svc: [p.name for p in https_settings(svc).client_ca],
        ["server-ca.pem"],
    ),
    Row(
        "https.client_certificate",
        {"https.client_certificate": "require"},
        lambda svc: https_settings(svc).client_certificate,
        "require",
    ),
    Row(
        "https.bind_mac",
        {"https.bind_mac": True, "provisioning.url": "https://127.0.0.1:18443"},
        lambda svc: svc.core.gate.policy.bind_mac,
        True,
    ),
    Row(
        "https.allow",
        {"https.allow": ["10.0.0.0/8"]},
        lambda svc: networks(svc.listeners.secure_web.allow),
        ["10.0.0.0/8"],
    ),
    Row("auth.mode", {"auth.mode": "digest"}, lambda svc: svc.core.gate.policy.digest, True),
    Row(
        "auth.basic_over_tls",
        {"auth.basic_over_tls": True},
        lambda svc: svc.core.gate.policy.basic_over_tls,
        True,
    ),
    Row(
        "auth.user",
        {"auth.user": "other"},
        lambda svc: svc.core.gate.policy.shared and svc.core.gate.policy.shared.user,
        "other",
    ),
    Row(
        "auth.password",
        {"auth.password": "another-shared-pass-2026"},
        lambda svc: svc.core.gate.policy.shared and svc.core.gate.policy.shared.password,
        "another-shared-pass-2026",
    ),
    Row(
        "auth.password_file",
        {"auth.password": DELETE, "auth.password_file": "AUTHPASS"},
        lambda svc: svc.core.gate.policy.shared and svc.core.gate.policy.shared.password,
        "shared-pass-from-a-file-2026",
    ),
    Row(
        "auth.nonce_lifetime",
        {"auth.nonce_lifetime": 60},
        lambda svc: svc.core.gate.digest.lifetime,
        60.0,
    ),
    Row(
        "security.bad_answer_burst",
        {"security.bad_answer_burst": 5},
        lambda svc: (svc.core.gate.sources.burst, svc.core.gate.logins.burst),
        (5, 5),
    ),
    Row(
        "security.bad_answer_rate",
        {"security.bad_answer_rate": 2},
        lambda svc: (svc.core.gate.sources.per_second, svc.core.gate.logins.per_second),
        (2.0, 2.0),
    ),
    Row(
        "security.header_timeout",
        {"security.header_timeout": 3},
        lambda svc: (
            svc.listeners.web.header_timeout,
            svc.listeners.secure_web.header_timeout,
            svc.listeners.admin_web.header_timeout,
        ),
        (3.0, 3.0, 3.0),
    ),
    Row(
        "security.max_connections",
        {"security.max_connections": 50},
        lambda svc: (svc.listeners.web.max_connections, svc.listeners.secure_web.max_connections),
        (50, 50),
    ),
    Row(
        "security.max_connections_per_source",
        {"security.max_connections_per_source": 3},
        lambda svc: (svc.listeners.web.per_source, svc.listeners.secure_web.per_source),
        (3, 3),
    ),
    Row(
        "security.max_tftp_per_source",
        {"security.max_tftp_per_source": 2},
        lambda svc: tftp(svc).per_source,
        2,
    ),
    Row(
        "security.repeat_window",
        {"security.repeat_window": 60},
        lambda svc: svc.core.gate.repeats.window,
        60.0,
    ),
    Row(
        "tftp.listen", {"tftp.listen": ["127.0.0.1:16970"]}, listening("tftp"), ["127.0.0.1:16970"]
    ),
    Row(
        "tftp.allow",
        {"tftp.allow": ["10.0.0.0/8"]},
        lambda svc: networks(tftp(svc).allow),
        ["10.0.0.0/8"],
    ),
    Row(
        "tftp.per_device_from",
        {"tftp.per_device_from": ["10.1.0.0/16"]},
        lambda svc: networks(svc.core.gate.policy.tftp_per_device_from or ()),
        ["10.1.0.0/16"],
    ),
    Row(
        "tftp.max_blksize", {"tftp.max_blksize": 512}, lambda svc: tftp(svc).limits.max_blksize, 512
    ),
    Row(
        "tftp.max_windowsize",
        {"tftp.max_windowsize": 4},
        lambda svc: tftp(svc).limits.max_windowsize,
        4,
    ),
    Row("tftp.timeout", {"tftp.timeout": 3}, lambda svc: tftp(svc).limits.timeout, 3.0),
    Row("tftp.retries", {"tftp.retries": 2}, lambda svc: tftp(svc).limits.retries, 2),
    Row("tftp.max_transfers", {"tftp.max_transfers": 10}, lambda svc: tftp(svc).max_transfers, 10),
    Row(
        "admin.listen",
        {"admin.listen": ["127.0.0.1:18082"]},
        listening("admin"),
        ["127.0.0.1:18082"],
    ),
    Row(
        "admin.allow",
        {"admin.allow": ["10.0.0.0/8"]},
        lambda svc: networks(svc.listeners.admin_web.allow),
        ["10.0.0.0/8"],
    ),
    Row(
        "admin.server_names",
        {"admin.server_names": ["Admin.Example.NET"]},
        lambda svc: svc.admin_api.server_names,
        frozenset({"admin.example.net"}),
    ),
    Row(
        "admin.page_refresh",
        {"admin.page_refresh": 5},
        lambda svc: svc.status()["page"]["refresh_s"],
        5.0,
    ),
    Row(
        "admin.token",
        {"admin.token": "a-new-admin-token-0123456789"},
        lambda svc: svc.admin_api.token,
        b"a-new-admin-token-0123456789",
    ),
    Row(
        "admin.token_file",
        {"admin.token": DELETE, "admin.token_file": "TOKEN"},
        lambda svc: svc.admin_api.token,
        b"a-token-from-a-file-0123456789",
    ),
    Row(
        "templates.dirs",
        {"templates.dirs": ["TEMPLATES2"]},
        lambda svc: "<!-- v2 -->" in spa_model(svc),
        True,
    ),
    Row(
        "inventory.source",
        {"inventory.source": "mysql", "inventory.path": DELETE},
        lambda svc: svc.refresher.loop is not None,
        True,
    ),
    Row(
        "inventory.path",
        {"inventory.path": "INVENTORY2"},
        lambda svc: "Carol" in spa_device(svc),
        False,
    ),
    Row(
        "inventory.refresh",
        {"inventory.refresh": 30},
        lambda svc: svc.refresher.loop and svc.refresher.loop.interval,
        30.0,
        base={"inventory.source": "mysql", "inventory.path": DELETE},
    ),
    # read by each refresh from the inputs in use
    Row(
        "inventory.timeout",
        {"inventory.timeout": 9},
        lambda svc: svc.core.inputs.config.inventory.timeout,
        9.0,
    ),
    Row("logging.format", {"logging.format": "console"}, configured, ("console", "info")),
    Row("logging.level", {"logging.level": "debug"}, configured, ("json", "debug")),
    Row(
        "failover.primary",
        {"failover.primary": "virginia", "failover.backup": "chicago"},
        lambda svc: svc.monitoring.monitor and svc.monitoring.monitor.order,
        ["virginia", "chicago"],
    ),
    Row(
        "failover.backup",
        {"failover.primary": "virginia", "failover.backup": "chicago"},
        lambda svc: svc.monitoring.monitor and svc.monitoring.monitor.order,
        ["virginia", "chicago"],
    ),
    Row(
        "failover.phone_redundancy",
        {"failover.phone_redundancy": True},
        lambda svc: [
            line
            for line in fetch(svc, "00156574b150.cfg").splitlines()
            if line.startswith("account.1.sip_server.2.address")
        ],
        ["account.1.sip_server.2.address = 127.0.0.2"],
    ),
    Row(
        "monitor.enabled",
        {"monitor.enabled": False},
        lambda svc: (svc.monitoring.monitor, svc.admin_api.monitor),
        (None, None),
    ),
    Row("monitor.interval", {"monitor.interval": 4}, monitor("interval"), 4.0),
    Row("monitor.fast_interval", {"monitor.fast_interval": 1.5}, monitor("fast_interval"), 1.5),
    Row(
        "monitor.timeout",
        {"monitor.timeout": 0.25},
        lambda svc: (
            [t.spec[1] for t in svc.monitoring.monitor.targets][:1]  # type: ignore[union-attr]
            if svc.monitoring.monitor
            else None
        ),
        [0.25],
    ),
    Row(
        "monitor.fall",
        {"monitor.fall": 5},
        lambda svc: (
            {s.fall for s in svc.monitoring.monitor.states.values()}  # type: ignore[union-attr]
            if svc.monitoring.monitor
            else None
        ),
        {5},
    ),
    Row(
        "monitor.rise",
        {"monitor.rise": 4},
        lambda svc: (
            {s.rise for s in svc.monitoring.monitor.states.values()}  # type: ignore[union-attr]
            if svc.monitoring.monitor
            else None
        ),
        {4},
    ),
    Row(
        "monitor.failback",
        {"monitor.failback": "auto"},
        lambda svc: svc.monitoring.monitor and svc.monitoring.monitor.policy.failback,
        "auto",
    ),
    Row(
        "monitor.hold_down",
        {"monitor.hold_down": 30},
        lambda svc: svc.monitoring.monitor and svc.monitoring.monitor.policy.hold_down,
        30.0,
    ),
    Row(
        "monitor.sip_down_codes",
        {"monitor.sip_down_codes": [503, 480]},
        monitor("sip_down_codes"),
        frozenset({503, 480}),
    ),
    Row(
        "sites.*.sip.host",
        {f"{SITE}.sip.host": "127.0.0.9"},
        has('<Proxy_1_ ua="na">127.0.0.9:5060<'),
        True,
    ),
    Row(
        "sites.*.sip.port",
        {f"{SITE}.sip.port": 5080},
        has('<Proxy_1_ ua="na">127.0.0.1:5080<'),
        True,
    ),
    Row(
        "sites.*.sip.transport",
        {f"{SITE}.sip.transport": "tcp"},
        has('<SIP_Transport_1_ ua="na">TCP<'),
        True,
    ),
    Row(
        "sites.*.sip.expires",
        {f"{SITE}.sip.expires": 300},
        has('<Register_Expires_1_ ua="na">300<'),
        True,
    ),
    Row(
        "sites.*.sip.tls_server_name",
        {f"{SITE}.sip.tls_server_name": "sip2.example.net"},
        target("sip@chicago", "tls_server_name"),
        "sip2.example.net",
    ),
    Row(
        "sites.*.sip.tls_ca",
        {f"{SITE}.sip.tls_ca": "CA2"},
        lambda svc: Path(target("sip@chicago", "tls_ca")(svc)).name,
        "server-ca.pem",
    ),
    Row(
        "sites.*.stun.host",
        {f"{SITE}.stun.host": "127.0.0.9"},
        has('<STUN_Server ua="na">127.0.0.9:3478<'),
        True,
    ),
    Row(
        "sites.*.stun.port",
        {f"{SITE}.stun.port": 3480},
        has('<STUN_Server ua="na">127.0.0.1:3480<'),
        True,
    ),
    Row(
        "sites.*.db.host",
        {f"{SITE}.db.host": "127.0.0.9"},
        target("db@chicago", "host"),
        "127.0.0.9",
    ),
    Row("sites.*.db.port", {f"{SITE}.db.port": 3309}, target("db@chicago", "port"), 3309),
    Row(
        "sites.*.db.database",
        {f"{SITE}.db.database": "prov2"},
        target("db@chicago", "database"),
        "prov2",
    ),
    Row("sites.*.db.user", {f"{SITE}.db.user": "prov2"}, target("db@chicago", "user"), "prov2"),
    Row(
        "sites.*.db.password",
        {f"{SITE}.db.password": "another-db-pass"},
        target("db@chicago", "password"),
        "another-db-pass",
    ),
    Row(
        "sites.*.db.password_file",
        {f"{SITE}.db.password": DELETE, f"{SITE}.db.password_file": "DBPASS"},
        target("db@chicago", "password"),
        "db-pass-from-a-file",
    ),
    Row("sites.*.db.tls", {f"{SITE}.db.tls": True}, target("db@chicago", "tls"), True),
    Row(
        "sites.*.db.expect_read_only",
        {f"{SITE}.db.expect_read_only": True},
        target("db@chicago", "expect_read_only"),
        True,
    ),
    Row(
        "push.enabled",
        {"push.enabled": False},
        lambda svc: (push_sockets(svc), svc.push.pushes_on()),
        ([], ()),
    ),
    Row("push.rate", {"push.rate": 250}, lambda svc: svc.push.pusher.rate, 250.0),
    Row(
        "push.contacts",
        {"push.contacts": "location", "push.contacts_file": DELETE},
        lambda svc: (svc.push.contact_source().kind, svc.push.contact_source().site),
        ("location", "chicago"),
    ),
    Row(
        "push.contacts_file",
        {"push.contacts_file": "CONTACTS2"},
        lambda svc: push_source("path")(svc).name,
        "contacts2.toml",
    ),
    Row(
        "push.location_table",
        {"push.location_table": "location8"},
        push_source("table"),
        "location8",
        base={"push.contacts": "location", "push.contacts_file": DELETE},
    ),
    Row(
        "push.domains",
        {"push.domains": ["Tenant.Example"]},
        lambda svc: "tenant.example" in svc.push.contact_source().domains,
        True,
        base={"push.contacts": "location", "push.contacts_file": DELETE},
    ),
    Row(
        "push.timeout",
        {"push.timeout": 9},
        push_source("timeout"),
        9.0,
        base={"push.contacts": "location", "push.contacts_file": DELETE},
    ),
    Row("push.bind", {"push.bind": "127.0.0.2"}, push_sockets, ["127.0.0.2"]),
    Row("push.services", {"push.services": ["stun"]}, lambda svc: svc.push.pushes_on(), ("stun",)),
    Row(
        "vars.*",
        {"vars.ntp_server": "ntp.example.net"},
        lambda svc: "ntp.example.net" in yealink_common(svc),
        True,
    ),
]


def restart(*keys: str) -> Row:
    """A `[cluster]` key: applied at the next start; the reload says so (status too)."""
    value = {
        "mode": "etcd",
        "name": "virginia",
        "endpoints": ["http://127.0.0.1:23792"],
        "prefix": "/xprov2/",
        "lease_ttl": 9,
        "min_observers": 3,
        "timeout": 2.0,
        "ca": "CA2",
        "certificate": "CERT2",
        "private_key": "KEY2",
        "user": "xprov2",
        "password": "etcd-pass-2027",
    }
    changes = {f"cluster.{key}": value[key] for key in keys}
    pending = sorted({f"cluster.{key}" for key in keys})
    return Row(
        f"cluster.{keys[0]}",
        changes,
        lambda svc: (sorted(svc.cluster.restart_pending), svc.status()["restart_pending"]),
        (pending, pending),
    )


ROWS += [
    restart("mode"),
    restart("name"),
    restart("endpoints"),
    restart("prefix"),
    restart("lease_ttl"),
    restart("min_observers"),
    restart("timeout"),
    restart("ca"),
    restart("certificate", "private_key"),
    restart("private_key", "certificate"),
    restart("user"),
    restart("password"),
    Row(
        "cluster.password_file",
        {"cluster.password": DELETE, "cluster.password_file": "DBPASS"},
        lambda svc: svc.cluster.restart_pending,
        ["cluster.password"],
    ),
]


def resolve(value: Any, files: dict[str, Any]) -> Any:
    """The rows' placeholders: files made by the fixtures."""
    pki, tmp = files["pki"], files["tmp"]
    names = {
        "CERT2": str(pki.server_ca[0]),  # a self-signed server certificate: another pair
        "KEY2": str(pki.server_ca[1]),
        "CA2": str(pki.server_ca[0]),
        "TOKEN": str(tmp / "token"),
        "DBPASS": str(tmp / "dbpass"),
        "AUTHPASS": str(tmp / "authpass"),
        "TEMPLATES2": str(files["templates"]),
        "INVENTORY2": str(tmp / "inventory2.toml"),
        "CONTACTS2": str(tmp / "contacts2.toml"),
    }
    if isinstance(value, list):
        return [resolve(v, files) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


@pytest.mark.parametrize("row", ROWS, ids=str)
def test_a_reload_applies_the_key(row: Row, files: dict[str, Any], monkeypatch) -> None:
    CONFIGURED.clear()
    monkeypatch.setattr(
        logs, "configure", lambda fmt, level, stream=None: CONFIGURED.append((fmt, level))
    )
    monkeypatch.setattr(logs.REDACTOR, "install", lambda secrets: None)
    monkeypatch.setattr(push_service, "open_sender", FakeSocket)
    OPEN_SOCKETS.clear()
    tmp = files["tmp"]
    # `source = "mysql"` on a machine without a database: the read gives the file's phones
    monkeypatch.setattr(
        mysql_source,
        "load",
        lambda db, timeout, generation, *_: (load_file(tmp / "inventory.toml", generation), None),
    )
    base = full_document(tmp, files["pki"])
    (tmp / "inventory2.toml").write_text(
        (tmp / "inventory.toml").read_text().replace("Carol", "Dora")
    )
    path = tmp / "xprov.toml"
    before = changed(base, {k: resolve(v, files) for k, v in row.base.items()})
    path.write_text(dump(before))
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536), logs.ProcessLogs())
    svc.listeners.startService()
    svc.push.startService()  # its NOTIFY socket (a fake here)
    try:
        assert row.seen(svc) != row.expect, "the test config already has the new value"
        after = changed(before, {k: resolve(v, files) for k, v in row.changes.items()})
        path.write_text(dump(after))
        assert svc.reloader._swap(build(path))["ok"] is True
        assert row.seen(svc) == row.expect
    finally:
        svc.push.stopService()
        svc.listeners.stopService()
        svc.refresher.loop and svc.refresher.loop.running and svc.refresher.loop.stop()


def test_every_key_has_a_row(files: dict[str, Any], monkeypatch) -> None:
    """Every key the reader asks for in a config that sets every table has a row above (a
    site's keys and [vars] by pattern), and every row names a key the reader knows."""
    read: set[str] = set()
    original = config_table.Table.get

    def get(self: Any, key: str, kind: Any, *args: Any) -> Any:
        if kind is not dict:  # a table is not a key
            path = self.key(key).split(".")
            if path[0] == "sites":
                path[1] = "*"
            if path[0] == "vars":
                path[1:] = ["*"]
            read.add(".".join(path))
        return original(self, key, kind, *args)

    monkeypatch.setattr(config_table.Table, "get", get)
    doc = full_document(files["tmp"], files["pki"])
    for path in (
        "admin.token_file",
        "auth.password_file",
        "sites.chicago.db.password_file",
        "cluster.password_file",
    ):
        doc = changed(doc, {path: str(files["tmp"] / "token")})
    (files["tmp"] / "full.toml").write_text(dump(doc))
    with pytest.raises(config.ConfigError):  # a password and its file: both are read
        config.load(files["tmp"] / "full.toml")
    assert read == {row.key for row in ROWS}
