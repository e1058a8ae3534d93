"""The admin API without sockets: bearer token, manual failover and failback, errors."""

from __future__ import annotations

import io
import json

import pytest
from twisted.internet.address import IPv4Address
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


def request_with(path: str, method: bytes = b"GET", headers=(), body: bytes = b""):
    request = DummyRequest([path.strip("/").encode()])
    request.method, request.path = method, path.encode()
    request.client = IPv4Address("TCP", "10.0.0.7", 40000)
    for name, value in headers:
        request.requestHeaders.addRawHeader(name, value)
    request.content = io.BytesIO(body)
    return request


@pytest.mark.parametrize(
    ("path", "media_type", "marker"),
    [
        ("/", b"text/html; charset=utf-8", b"<html"),
        ("/page/app.js", b"text/javascript; charset=utf-8", b""),
        ("/page/app.css", b"text/css; charset=utf-8", b""),
    ],
)
def test_the_status_page_is_served_without_a_token_and_holds_no_data(
    api, path, media_type, marker
) -> None:
    resource, _ = api
    request = request_with(path)
    body = resource.render(request)
    headers = request.responseHeaders
    assert (request.responseCode or 200) == 200 and marker in body
    assert headers.getRawHeaders(b"content-type") == [media_type]
    csp = headers.getRawHeaders(b"content-security-policy")[0]
    for rule in (
        b"default-src 'none'",
        b"script-src 'self'",
        b"connect-src 'self'",
        b"frame-ancestors 'none'",
        b"form-action 'none'",
    ):
        assert rule in csp
    assert b"unsafe-inline" not in csp and b"unsafe-eval" not in csp
    assert headers.getRawHeaders(b"x-content-type-options") == [b"nosniff"]
    assert headers.getRawHeaders(b"referrer-policy") == [b"no-referrer"]
    assert headers.getRawHeaders(b"x-frame-options") == [b"DENY"]
    for status_text in (b"fake sip", b"fake stun", TOKEN.encode()):
        assert status_text not in body


def test_other_paths_under_page_need_the_token(api) -> None:
    resource, _ = api
    for path in ("/page/", "/page/../status", "/index.html", "/page/app.js.map"):
        request = request_with(path)
        answer = json.loads(resource.render(request))
        assert request.responseCode == 401 and answer == {"error": "missing or wrong bearer token"}


CROSS_SITE = [
    [(b"origin", b"http://evil.example"), (b"host", b"127.0.0.1:8081")],
    [(b"origin", b"http://127.0.0.1:8080"), (b"host", b"127.0.0.1:8081")],  # another port
    [(b"origin", b"null"), (b"host", b"127.0.0.1:8081")],  # a sandboxed frame, a file
    [(b"origin", b"http://127.0.0.1:8081")],  # no Host to compare with
    [(b"sec-fetch-site", b"cross-site")],
    [(b"sec-fetch-site", b"none")],  # no page made it: a browser never POSTs so
    [
        (b"sec-fetch-site", b"same-site"),
        (b"origin", b"http://127.0.0.1:8081"),
        (b"host", b"127.0.0.1:8081"),
    ],
]


@pytest.mark.parametrize("headers", CROSS_SITE)
@pytest.mark.parametrize("path", ["/failover", "/failback", "/reload"])
def test_a_post_from_another_sites_page_is_refused_even_with_the_token(
    api, log_events, headers, path
) -> None:
    resource, world = api
    world.monitor.failover("stun", "virginia")  # a failback would have something to do
    before = world.monitor.status()
    body = json.dumps({"service": "sip", "site": "virginia"}).encode()
    request = request_with(
        path, b"POST", [(b"authorization", f"Bearer {TOKEN}".encode()), *headers], body
    )
    answer = resource.render(request)
    assert request.responseCode == 403
    assert json.loads(answer) == {"error": "cross-site request refused"}
    assert world.monitor.status() == before  # nothing moved
    [event] = [e for e in log_events() if e["event"] == "security"]
    assert event["transport"] == "admin" and event["reason"].startswith("cross-site request (")
    assert TOKEN not in json.dumps(log_events())


@pytest.mark.parametrize(
    "headers",
    [
        [],  # curl, `xprov failover`: no browser headers
        [
            (b"sec-fetch-site", b"same-origin"),
            (b"origin", b"http://127.0.0.1:8081"),
            (b"host", b"127.0.0.1:8081"),
        ],
    ],
)
def test_a_post_from_the_page_itself_or_a_command_line_is_served(api, headers) -> None:
    resource, _ = api
    request = request_with(
        "/failover",
        b"POST",
        [(b"authorization", f"Bearer {TOKEN}".encode()), *headers],
        json.dumps({"service": "sip", "site": "virginia"}).encode(),
    )
    answer = json.loads(resource.render(request))
    assert (request.responseCode or 200) == 200
    sip = answer["monitor"]["services"]["sip"]
    assert (sip["active"], sip["manual"], sip["manual_by"]) == (
        "virginia",
        "virginia",
        "admin 10.0.0.7",
    )


@pytest.mark.parametrize(
    ("host", "known"),
    [
        (b"127.0.0.1:8081", True),
        (b"[::1]:8081", True),
        (b"localhost:9000", True),  # an ssh tunnel's local port
        (b"LOCALHOST", True),
        (b"admin.example.net:8081", True),  # in [admin] server_names
        (b"evil.test:8081", False),  # a name that resolves to us now: DNS rebinding
        (b"evil.test", False),
        (b"127.0.0.1.evil.test:8081", False),
        (b"[::1", False),
    ],
)
def test_only_our_host_names_are_answered(api, log_events, host, known) -> None:
    resource, world = api
    resource.reconfigure(TOKEN, frozenset({"admin.example.net"}))
    auth = (b"authorization", f"Bearer {TOKEN}".encode())
    browser = (b"sec-fetch-site", b"same-origin")  # a rebound name is the page's own origin
    get = request_with("/status", headers=[auth, browser, (b"host", host)])
    answer = json.loads(resource.render(get))
    post = request_with(
        "/failover",
        b"POST",
        [auth, browser, (b"host", host)],
        json.dumps({"service": "sip", "site": "virginia"}).encode(),
    )
    moved = json.loads(resource.render(post))
    if known:
        assert (get.responseCode or 200, post.responseCode or 200) == (200, 200)
        assert "monitor" in answer and moved["monitor"]["services"]["sip"]["active"] == "virginia"
        return
    refusal = {"error": "request from an unknown Host refused"}
    assert (get.responseCode, answer, post.responseCode, moved) == (403, refusal, 403, refusal)
    assert world.active.current.site_of("sip") == "chicago"
    assert [e["reason"] for e in log_events() if e["event"] == "security"] == [
        "unknown Host (DNS rebinding?)"
    ] * 2


def test_a_wrong_token_is_told_the_scheme_and_other_methods_are_refused(api) -> None:
    resource, _ = api
    request = request_with("/status", headers=[(b"authorization", b"Bearer nope")])
    assert json.loads(resource.render(request)) == {"error": "missing or wrong bearer token"}
    assert request.responseHeaders.getRawHeaders(b"www-authenticate") == [
        b'Bearer realm="xprov admin"'
    ]
    for method in (b"OPTIONS", b"PUT", b"DELETE", b"PATCH", b"TRACE"):
        request = request_with("/failover", method)
        assert json.loads(resource.render(request)) == {"error": "method not allowed"}
        assert request.responseCode == 405
        assert request.responseHeaders.getRawHeaders(b"allow") == [b"GET, HEAD, POST"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[" * 3000 + b"]" * 1000, "expected a JSON object, not nested so deep"),
        (json.dumps({"site": "virginia"}).encode(), "missing key 'service'"),
    ],
)
def test_bad_bodies_get_a_clear_400(api, body, error) -> None:
    resource, world = api
    request = request_with(
        "/failover", b"POST", [(b"authorization", f"Bearer {TOKEN}".encode())], body
    )
    assert json.loads(resource.render(request)) == {"error": error}
    assert request.responseCode == 400 and world.active.current.site_of("sip") == "chicago"


def test_a_client_that_is_no_browser_may_use_any_host_name(api) -> None:
    """Prometheus scrapes by host name and sends neither Origin nor Sec-Fetch-Site: DNS
    rebinding is an attack through a browser, so only a browser's request is held to it."""
    resource, _ = api
    request = request_with(
        "/status",
        headers=[(b"authorization", f"Bearer {TOKEN}".encode()), (b"host", b"xprov1.dc1:8081")],
    )
    assert "monitor" in json.loads(resource.render(request))
    assert (request.responseCode or 200) == 200
    request = request_with(
        "/status",
        headers=[
            (b"authorization", f"Bearer {TOKEN}".encode()),
            (b"host", b"xprov1.dc1:8081"),
            (b"origin", b"http://xprov1.dc1:8081"),
        ],
    )
    assert json.loads(resource.render(request)) == {"error": "request from an unknown Host refused"}
