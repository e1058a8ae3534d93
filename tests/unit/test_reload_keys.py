"""Issue 15: keys a reload once forgot: `[monitor] enabled`, the probe pool's size, and the
HTTP deadline's sweep period. The service runs on a memory reactor: no socket, no thread."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import MemoryReactor, sample_config
from xprov import logs
from xprov.build import build
from xprov.descriptors import Limit
from xprov.guard import Asker, Transport
from xprov.monitor.loop import Monitor
from xprov.service import Service


def running(path: Path, monkeypatch) -> Service:
    """A service as start() leaves it, without its threads and probe rounds (the memory
    reactor runs neither): the monitor marked running, the phones' site started."""
    monkeypatch.setattr(Monitor, "start", lambda self: setattr(self, "_running", True))
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    svc.monitoring.running = True
    if svc.monitoring.monitor is not None:
        svc.monitoring.monitor.start()
    svc.listeners.web.startFactory()
    return svc


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_monitor_enabled_follows_a_reload(tmp_path: Path, monkeypatch) -> None:
    path = sample_config(tmp_path)
    svc = running(path, monkeypatch)
    try:
        first = svc.monitoring.monitor
        assert first is not None and first._running
        first.failover("sip", "virginia", force=True)
        edit(path, "[monitor]\n", "[monitor]\nenabled = false\n")
        assert svc.reloader._swap(build(path))["ok"] is True
        assert svc.monitoring.monitor is None and not first._running  # stopped, not left probing
        assert svc.admin_api.monitor is None  # manual failover: "the monitor is disabled"
        edit(path, "[monitor]\nenabled = false\n", "[monitor]\n")
        assert svc.reloader._swap(build(path))["ok"] is True
        # the same monitor again: an operator's choice and the counters survive the pause
        assert svc.monitoring.monitor is first and first._running
        assert first.manual == {"sip": "virginia"}  # the break-it pass saw it lost
        assert first.switches[("sip", "operator")] == 1
        assert svc.admin_api.monitor is svc.monitoring.monitor
        assert svc.monitoring.pool.started
    finally:
        svc.monitoring.monitor and svc.monitoring.monitor.stop()
        svc.monitoring.pool.stop()


def test_a_monitor_turned_on_before_start_waits_for_it(tmp_path: Path) -> None:
    path = sample_config(tmp_path, replace={"[monitor]\n": "[monitor]\nenabled = false\n"})
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    assert svc.monitoring.monitor is None
    edit(path, "[monitor]\nenabled = false\n", "[monitor]\n")
    assert svc.reloader._swap(build(path))["ok"] is True
    assert (
        svc.monitoring.monitor is not None
        and not svc.monitoring.monitor._running
        and not svc.monitoring.pool.started
    )


def test_the_probe_pool_follows_the_databases(tmp_path: Path) -> None:
    path = sample_config(tmp_path)
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    assert svc.monitoring.pool.max == 8  # 4 threads per database, two sites
    text = path.read_text()
    for site in ("chicago", "virginia"):  # every site has the same services
        start = text.index(f"[sites.{site}.db]")
        end = text.index("\n[", start + 1)
        text = text[:start] + text[end + 1 :]
    path.write_text(text)
    assert svc.reloader._swap(build(path))["ok"] is True
    assert svc.monitoring.pool.max == 2


def test_the_sweep_period_follows_the_deadline(tmp_path: Path, monkeypatch) -> None:
    path = sample_config(tmp_path)
    svc = running(path, monkeypatch)
    try:
        assert svc.listeners.web.sweeper.interval == 1.0  # min(1 s, 10 s / 4)
        edit(path, "header_timeout = 10 ", "header_timeout = 2 ")
        assert svc.reloader._swap(build(path))["ok"] is True
        assert svc.listeners.web.header_timeout == 2 and svc.listeners.web.sweeper.interval == 0.5
        assert svc.listeners.web.sweeper.running
    finally:
        svc.listeners.web.stopFactory()


def test_the_admin_listeners_bounds_follow_a_reload(tmp_path: Path) -> None:
    """Its allow-list and deadline were the start's until its address changed."""
    path = sample_config(tmp_path)
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    assert svc.listeners.admin_web.allow == () and svc.listeners.admin_web.header_timeout == 10
    edit(path, "[admin]\n", '[admin]\nallow = ["127.0.0.1/32"]\n')
    edit(path, "header_timeout = 10 ", "header_timeout = 4 ")
    assert svc.reloader._swap(build(path))["ok"] is True
    assert [str(n) for n in svc.listeners.admin_web.allow] == ["127.0.0.1/32"]
    assert svc.listeners.admin_web.header_timeout == 4
    assert (
        svc.listeners._wanted(svc.core.provisioner.inputs.config)[
            ("admin", svc.core.provisioner.inputs.config.admin.listen[0])  # type: ignore[union-attr]
        ]
        is svc.listeners.admin_web
    )


def test_every_counter_survives_a_reload(tmp_path: Path) -> None:
    """The counters behind /metrics (requests, bad answers, refusals, reloads) belong to
    objects a reload keeps: the issue saw xprov_bad_answers_total vanish after one."""
    path = sample_config(tmp_path, replace={"[monitor]\n": "[monitor]\nenabled = false\n"})
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    for name in ("/001565000001.cfg", "/y000000000028.cfg"):  # an unknown MAC, a shared file
        asker = Asker(Transport.HTTP, "192.0.2.1", name)
        svc.core.observer.outcome(svc.core.gate.answer(asker, 1000.0), "http", "192.0.2.1")
    before = svc.metrics().decode()
    counters = [
        'xprov_bad_answers_total{reason="unknown device"} 1.0',
        'xprov_requests_total{kind="device",status="not_found",transport="http",'
        'vendor="yealink"} 1.0',
        'xprov_requests_total{kind="common",status="served",transport="http",vendor="yealink"} 1.0',
    ]
    assert all(c in before for c in counters), before
    assert svc.reloader._swap(build(path))["ok"] is True
    after = svc.metrics().decode()
    assert all(c in after for c in counters), after
    assert svc.reloader.reloads["ok"] == 1


def test_logs_follow_a_reload_through_one_call_and_the_command_lines_format_wins(
    tmp_path: Path, monkeypatch
) -> None:
    """`serve --log-format console` then a reload: the config's "json" once replaced the
    command line's format. And a service built without the process's logs (tests) never
    changes them."""
    configured: list[tuple[str, str]] = []
    installed: list[dict] = []
    monkeypatch.setattr(
        logs, "configure", lambda fmt, level, stream=None: configured.append((fmt, level))
    )
    monkeypatch.setattr(logs.REDACTOR, "install", installed.append)
    path = sample_config(tmp_path, replace={"[monitor]\n": "[monitor]\nenabled = false\n"})
    quiet = Service(build(path), MemoryReactor(), Limit(65536, 65536))
    assert quiet.reloader._swap(build(path))["ok"] is True
    assert (configured, installed) == ([], [])
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536), logs.ProcessLogs("console"))
    edit(path, 'level = "info"', 'level = "debug"')
    assert configured == []  # the command line applied them once, before the service
    assert svc.reloader._swap(build(path))["ok"] is True
    assert configured == [("console", "debug")]
    assert len(installed) == 1 and isinstance(installed[0], dict)


def test_an_inventory_refresh_redacts_its_secrets_without_reconfiguring_the_logs(
    tmp_path: Path, monkeypatch
) -> None:
    """A refresh (every `[inventory] refresh` seconds) changes the secrets alone: the
    renderer and level are not rebuilt for it."""
    configured: list[tuple[str, str]] = []
    installed: list[dict] = []
    monkeypatch.setattr(
        logs, "configure", lambda fmt, level, stream=None: configured.append((fmt, level))
    )
    monkeypatch.setattr(logs.REDACTOR, "install", installed.append)
    path = sample_config(tmp_path, replace={"[monitor]\n": "[monitor]\nenabled = false\n"})
    svc = Service(build(path), MemoryReactor(), Limit(65536, 65536), logs.ProcessLogs())
    configured.clear(), installed.clear()
    svc.core.redact({4: frozenset({"abcd"})})
    assert (configured, installed) == ([], [{4: frozenset({"abcd"})}])
