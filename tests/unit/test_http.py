"""The HTTP resource without sockets: status codes, headers, HEAD, no partial bodies."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.web.test.requesthelper import DummyRequest

from tests.helpers import (
    SAMPLE_PASSWORDS,
    USER_AGENTS,
    YEALINK_T46G,
    copy_templates,
    sample_config,
)
from xprov.guard import Gate, Policy
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites
from xprov.servers.http import PhoneFiles, _client, site
from xprov.service import load


def request(
    resource: PhoneFiles, path: str, method: bytes = b"GET", user_agent: str | None = None
) -> tuple[DummyRequest, bytes]:
    req = DummyRequest(path.lstrip("/").split("/"))
    req.path = path.encode()
    req.method = method
    if user_agent:
        req.requestHeaders.addRawHeader(b"user-agent", user_agent.encode())
    body = resource.render(req)
    return req, body


def header(req: DummyRequest, name: bytes) -> bytes | None:
    values = req.responseHeaders.getRawHeaders(name)
    return values[0] if values else None


def test_get_a_phone_file(provisioner: Provisioner) -> None:
    req, body = request(
        PhoneFiles(Gate(provisioner, Policy()), Observer()),
        f"/{YEALINK_T46G}.cfg",
        user_agent=USER_AGENTS[YEALINK_T46G],
    )
    assert req.responseCode in (None, 200)
    assert body.startswith(b"#!version:1.0.0.1\n")
    assert header(req, b"content-type") == b"text/plain; charset=utf-8"
    assert header(req, b"cache-control") == b"no-store"


def test_head_gives_the_length_and_no_body(provisioner: Provisioner) -> None:
    resource = PhoneFiles(Gate(provisioner, Policy()), Observer())
    _, body = request(resource, "/spa942.cfg")
    req, head = request(resource, "/spa942.cfg", b"HEAD")
    assert head == b""
    assert header(req, b"content-length") == str(len(body)).encode()
    assert header(req, b"content-type") == b"text/xml; charset=utf-8"


def test_unknown_answers_404_without_detail(provisioner: Provisioner) -> None:
    resource = PhoneFiles(Gate(provisioner, Policy()), Observer())
    bodies = set()
    for path in ("/ffffffffffff.cfg", "/0002fdff2103.cfg", "/nothing.txt"):
        req, body = request(resource, path)
        assert req.responseCode == 404, path
        bodies.add(body)
    assert bodies == {b""}


def test_healthz(provisioner: Provisioner) -> None:
    _, body = request(PhoneFiles(Gate(provisioner, Policy()), Observer()), "/healthz")
    assert body == b"ok\n"


def test_render_error_is_500_with_no_partial_body(tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    (templates / "yealink" / "device.cfg").write_text(
        "#!version:1.0.0.1\naccount.1.password = {{ lines[0].password }}\n{{ sip.missing }}\n"
    )
    inputs = load(sample_config(tmp_path, templates=templates))
    resource = PhoneFiles(
        Gate(Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago")), Policy()),
        Observer(),
    )
    req, body = request(resource, f"/{YEALINK_T46G}.cfg")
    assert req.responseCode == 500
    assert body == b""


def test_non_ascii_path_is_404(provisioner: Provisioner) -> None:
    req = DummyRequest([b""])
    req.path = "/é.cfg".encode()
    assert PhoneFiles(Gate(provisioner, Policy()), Observer()).render(req) == b""
    assert req.responseCode == 404


def all_headers(req: DummyRequest) -> bytes:
    return b"\n".join(
        name + b": " + b",".join(values) for name, values in req.responseHeaders.getAllRawHeaders()
    )


@pytest.mark.parametrize("method", [b"GET", b"HEAD"])
@pytest.mark.parametrize(
    ("policy", "path", "authorization", "status"),
    [
        ({"digest": True}, f"/{YEALINK_T46G}.cfg", None, 401),
        ({"digest": True}, f"/{YEALINK_T46G}.cfg", "Digest username=x", 401),
        ({"digest": True}, f"/{YEALINK_T46G}.cfg", "Basic eDp5", 401),  # plain HTTP
        ({"bind_mac": True}, f"/{YEALINK_T46G}.cfg", None, 403),
        ({"burst": 1, "rate": 0.0001}, f"/{YEALINK_T46G}.cfg", None, 429),
        ({}, "/ffffffffffff.cfg", None, 404),
        ({}, f"/{YEALINK_T46G}.xml", None, 404),  # another vendor's name for the MAC
    ],
)
def test_every_refusal_is_empty(provisioner, method, policy, path, authorization, status) -> None:
    """The status, an empty body, Content-Length 0, and no byte of a password anywhere."""
    gate = Gate(provisioner, Policy(**policy))
    req = DummyRequest([b""])
    if status == 429:
        gate.sources.spend(("http", _client(req)), 0.0)  # its only token
    resource = PhoneFiles(gate, Observer(), clock=lambda: 1.0)
    req.path, req.method = path.encode(), method
    if authorization:
        req.requestHeaders.addRawHeader(b"authorization", authorization.encode())
    body = resource.render(req)
    assert (req.responseCode, body) == (status, b"")
    assert header(req, b"content-length") == b"0"
    assert (header(req, b"www-authenticate") is not None) == (status == 401)
    for secret in SAMPLE_PASSWORDS:
        assert secret.encode() not in all_headers(req)
    assert provisioner.renders == 0


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"get", b"OPTIONS"])
def test_other_methods_405_empty(provisioner, method) -> None:
    req = DummyRequest([b""])
    req.path, req.method = f"/{YEALINK_T46G}.cfg".encode(), method
    body = PhoneFiles(Gate(provisioner, Policy()), Observer()).render(req)
    assert (req.responseCode, body, header(req, b"allow")) == (405, b"", b"GET, HEAD")
    assert provisioner.renders == 0


def test_an_unexpected_failure_is_an_empty_500(provisioner) -> None:
    """A bug anywhere under the resource: twisted.web's error page is replaced by an empty
    500 on the wire, and the connection stays usable."""
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    class BrokenGate(Gate):
        def answer(self, asker, now):
            raise RuntimeError("a bug")

    web = site(PhoneFiles(BrokenGate(provisioner, Policy()), Observer()))
    channel = web.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /00156574b150.cfg HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = transport.value()
    assert answer.startswith(b"HTTP/1.1 500 ")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert body == b"" and b"content-length: 0" in head.lower()
    assert not transport.disconnecting
