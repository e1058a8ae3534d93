"""The admin API without sockets: bearer token, manual failover and failback, errors."""

from __future__ import annotations

import io
import json

import pytest
from twisted.web.test.requesthelper import DummyRequest

from tests.unit.test_monitor_loop import World
from xprov.servers.admin import AdminApi

TOKEN = "a-long-enough-admin-token"


@pytest.fixture
def api():
    world = World()
    world.monitor.start()
    world.run(3)
    return AdminApi(TOKEN, world.monitor, lambda: {"monitor": world.monitor.status()}), world


def call(api: AdminApi, method: bytes, path: str, body=None, token: str | None = TOKEN):
    request = DummyRequest([path.strip("/").encode()])
    request.method, request.path = method, path.encode()
    if token is not None:
        request.requestHeaders.addRawHeader(b"authorization", f"Bearer {token}".encode())
    request.content = io.BytesIO(json.dumps(body).encode() if body is not None else b"")
    answer = api.render(request)
    return request.responseCode or 200, json.loads(answer)


def test_token_is_required(api) -> None:
    resource, _ = api
    for token in (None, "wrong", TOKEN + "x", ""):
        assert call(resource, b"GET", "/status", token=token)[0] == 401
        assert (
            call(
                resource, b"POST", "/failover", {"service": "sip", "site": "virginia"}, token=token
            )[0]
            == 401
        )
    assert call(resource, b"GET", "/healthz", token=None) == (200, {"status": "ok"})


def test_the_scheme_is_case_insensitive_and_failures_are_security_events(api, log_events) -> None:
    resource, _ = api
    request = DummyRequest([b"status"])
    request.method, request.path = b"GET", b"/status"
    request.requestHeaders.addRawHeader(b"authorization", f"bEaReR {TOKEN}".encode())
    api_answer = json.loads(resource.render(request))
    assert (request.responseCode or 200) == 200 and "monitor" in api_answer
    assert call(resource, b"GET", "/status", token=TOKEN[:-1])[0] == 401
    [event] = [e for e in log_events() if e["event"] == "security"]
    assert (event["transport"], event["reason"]) == ("admin", "wrong admin token")
    assert TOKEN not in json.dumps(log_events())


def test_status(api) -> None:
    resource, _ = api
    code, body = call(resource, b"GET", "/status")
    assert code == 200 and body["monitor"]["services"]["sip"]["active"] == "chicago"


def test_failover_then_failback(api) -> None:
    resource, world = api
    code, body = call(resource, b"POST", "/failover", {"service": "sip", "site": "virginia"})
    assert code == 200 and body["monitor"]["services"]["sip"]["manual"] == "virginia"
    assert world.active.current.site_of("sip") == "virginia"
    code, body = call(resource, b"POST", "/failback", {"service": "sip"})
    assert code == 200 and body["monitor"]["services"]["sip"]["manual"] is None
    assert world.active.current.site_of("sip") == "chicago"


def test_refused_choices_and_bad_requests(api) -> None:
    resource, world = api
    world.behaviour["sip@virginia"] = "down"
    world.run(4)
    code, body = call(resource, b"POST", "/failover", {"service": "sip", "site": "virginia"})
    assert code == 409 and "is down" in body["error"]
    assert (
        call(resource, b"POST", "/failover", {"service": "sip", "site": "virginia", "force": True})[
            0
        ]
        == 200
    )
    assert call(resource, b"POST", "/failover", {"service": "sip"})[0] == 400
    assert call(resource, b"POST", "/failover", [1, 2])[0] == 400
    assert call(resource, b"POST", "/nothing", {})[0] == 404
    assert call(resource, b"GET", "/nothing")[0] == 404
    request = DummyRequest([b"failover"])
    request.method, request.path = b"POST", b"/failover"
    request.requestHeaders.addRawHeader(b"authorization", f"Bearer {TOKEN}".encode())
    request.content = io.BytesIO(b"{not json")
    resource.render(request)
    assert request.responseCode == 400
