"""What the transports report (issue 14 break-it pass): a phone is converged by its own file,
never by a User-Agent hint on a shared one; every line an outsider can cause is bounded
(a new model's file, a template failure, a refused body)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.helpers import USER_AGENTS, YEALINK_T46G, copy_templates, sample_config
from xprov import observe
from xprov.build import load
from xprov.guard import Asker, Gate, Policy, Transport
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.security_log import BURST, BoundedLog
from xprov.selection import ActiveSites
from xprov.servers import http
from xprov.servers.http import channel as http_channel
from xprov.servers.http.body import refusal_answer

NOW = 1_000.0


class Lines:
    """A structlog logger's methods, writing into a list."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.written.append((level, event, fields))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [fields for _, event, fields in self.written if event == name]


@pytest.fixture
def lines(monkeypatch) -> Lines:
    """The bounded logs of observe and http, writing into one list at their own levels."""
    lines = Lines()
    for module, name, level in (
        (observe, "UNKNOWN_MODELS", "info"),
        (observe, "RENDER_FAILURES", "error"),
        (http_channel, "REFUSED_BODIES", "info"),
    ):
        monkeypatch.setattr(module, name, BoundedLog(lines, level=level, clock=lambda: NOW))
    return lines


def gate(tmp_path: Path, templates: Path | None = None) -> Gate:
    config = sample_config(tmp_path, **({"templates": templates} if templates else {}))
    inputs = load(config)
    provisioner = Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago"))
    return Gate(provisioner, Policy(burst=20, rate=0.01), b"k" * 32)


def report(gate: Gate, observer: Observer, path: str, user_agent: str | None = None) -> None:
    answer = gate.answer(Asker(Transport.HTTP, "192.0.2.9", path, user_agent), NOW)
    observer.outcome(answer, "http", "192.0.2.9", user_agent)


def test_a_phone_is_converged_by_its_own_file_only(tmp_path: Path) -> None:
    """The common file's User-Agent names the T46G; anyone can send it, and the common
    file holds no site: only the phone's own file counts."""
    files, observer = gate(tmp_path), Observer(lambda: NOW)
    report(files, observer, "/y000000000028.cfg", USER_AGENTS[YEALINK_T46G])
    report(files, observer, "/y000000000000.boot", USER_AGENTS[YEALINK_T46G])
    assert observer.convergence.seen == {}
    report(files, observer, f"/{YEALINK_T46G}.cfg", USER_AGENTS[YEALINK_T46G])
    assert set(observer.convergence.seen) == {YEALINK_T46G}


def test_a_new_models_file_is_an_info_line_with_its_user_agent(tmp_path, lines: Lines) -> None:
    files, observer = gate(tmp_path), Observer(lambda: NOW)
    ua = "Yealink SIP-T99X 199.86.0.5 80:5e:c0:00:00:99 " + "x" * 1000
    report(files, observer, "/y000000000199.cfg", ua)
    (line,) = lines.events("unknown_model")
    assert line == {
        "reason": "no model in the table",
        "file": "y000000000199.cfg",
        "client": "192.0.2.9",
        "transport": "http",
        "user_agent": ua[:256],
    }
    assert {level for level, _, _ in lines.written} == {"info"}
    for _ in range(BURST * 3):
        report(files, observer, "/spa999.cfg", "Cisco/SPA999-7.6.2 (X)(Y)")
    assert len(lines.events("unknown_model")) == BURST  # then one a second


def test_render_failures_are_bounded(tmp_path: Path, lines: Lines) -> None:
    """A phone's template failing fails for every request of it (check-config renders
    every shared file, not every phone's); the news is its first lines, not one per
    request (break-it pass: 3,000 lines in 2.5 s)."""
    templates = copy_templates(tmp_path)
    (templates / "yealink" / "device.cfg").write_text("x = {{ vars.no_such.key }}\n")
    files, observer = gate(tmp_path, templates), Observer(lambda: NOW)
    for _ in range(BURST * 5):
        report(files, observer, f"/{YEALINK_T46G}.cfg")
    failures = lines.events("render_failed")
    assert len(failures) == BURST
    assert failures[0]["template"] == "yealink/device.cfg" and failures[0]["line"] == 1
    assert {level for level, _, _ in lines.written} == {"error"}
    assert observer.requests[("http", "yealink", "device", "failed")] == BURST * 5


def test_refused_bodies_are_bounded(lines: Lines) -> None:
    """Break-it pass: 10,000 connections each sending a chunked GET wrote 1.8 MB of
    `body_refused` lines in 3.6 s; now the first BURST, then one a second."""
    web = http.site(http.PhoneFiles.__new__(http.PhoneFiles))
    for n in range(BURST * 3):
        channel = web.buildProtocol(IPv4Address("TCP", "192.0.2.7", 40000 + n))
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: x\r\n\r\n")
        assert transport.value() == refusal_answer(411)
        channel.connectionLost(Failure(ConnectionDone()))
    refused = lines.events("body_refused")
    assert len(refused) == BURST
    assert refused[0] == {"reason": refused[0]["reason"], "client": "192.0.2.7", "status": 411}
