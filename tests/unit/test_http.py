"""The HTTP resource without sockets: status codes, headers, HEAD, no partial bodies."""

from __future__ import annotations

from pathlib import Path

from twisted.web.test.requesthelper import DummyRequest

from tests.helpers import USER_AGENTS, YEALINK_T46G, copy_templates, sample_config
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites
from xprov.servers.http import PhoneFiles
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
        PhoneFiles(provisioner, Observer()),
        f"/{YEALINK_T46G}.cfg",
        user_agent=USER_AGENTS[YEALINK_T46G],
    )
    assert req.responseCode in (None, 200)
    assert body.startswith(b"#!version:1.0.0.1\n")
    assert header(req, b"content-type") == b"text/plain; charset=utf-8"
    assert header(req, b"cache-control") == b"no-store"


def test_head_gives_the_length_and_no_body(provisioner: Provisioner) -> None:
    resource = PhoneFiles(provisioner, Observer())
    _, body = request(resource, "/spa942.cfg")
    req, head = request(resource, "/spa942.cfg", b"HEAD")
    assert head == b""
    assert header(req, b"content-length") == str(len(body)).encode()
    assert header(req, b"content-type") == b"text/xml; charset=utf-8"


def test_unknown_answers_404_without_detail(provisioner: Provisioner) -> None:
    resource = PhoneFiles(provisioner, Observer())
    bodies = set()
    for path in ("/ffffffffffff.cfg", "/0002fdff2103.cfg", "/nothing.txt"):
        req, body = request(resource, path)
        assert req.responseCode == 404, path
        bodies.add(body)
    assert bodies == {b""}


def test_healthz(provisioner: Provisioner) -> None:
    _, body = request(PhoneFiles(provisioner, Observer()), "/healthz")
    assert body == b"ok\n"


def test_render_error_is_500_with_no_partial_body(tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    (templates / "yealink" / "device.cfg").write_text(
        "#!version:1.0.0.1\naccount.1.password = {{ lines[0].password }}\n{{ sip.missing }}\n"
    )
    inputs = load(sample_config(tmp_path, templates=templates))
    resource = PhoneFiles(
        Provisioner(inputs, ActiveSites(inputs.config.sites, "chicago")), Observer()
    )
    req, body = request(resource, f"/{YEALINK_T46G}.cfg")
    assert req.responseCode == 500
    assert body == b""


def test_non_ascii_path_is_404(provisioner: Provisioner) -> None:
    req = DummyRequest([b""])
    req.path = "/é.cfg".encode()
    assert PhoneFiles(provisioner, Observer()).render(req) == b""
    assert req.responseCode == 404
