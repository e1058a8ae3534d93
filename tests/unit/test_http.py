"""The HTTP resource without sockets: status codes, headers, HEAD, no partial bodies; and the
channel's bounds (request bodies, pipelining, the request deadline) on an in-memory
transport."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from tests.helpers import (
    SAMPLE_PASSWORDS,
    USER_AGENTS,
    YEALINK_T46G,
    copy_templates,
    sample_config,
)
from xprov.build import load
from xprov.guard import Gate, Policy
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.selection import ActiveSites
from xprov.servers import admin
from xprov.servers.http.body import (
    BodyAdmitted,
    BodyRefused,
    PhoneRequest,
    refusal_answer,
    request_body,
)
from xprov.servers.http.channel import MAX_PIPELINED, BoundedChannel
from xprov.servers.http.resource import PhoneFiles, _client
from xprov.servers.http.site import site


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


# Request bodies: decided from the head, before a byte of the body is read ----------------


@pytest.mark.parametrize(
    ("content_length", "transfer_encoding", "max_body", "decision"),
    [
        ([], [], 0, BodyAdmitted(0)),
        ([b"0"], [], 0, BodyAdmitted(0)),
        ([b"00"], [], 0, BodyAdmitted(0)),
        ([b" 0"], [], 0, BodyAdmitted(0)),  # OWS is not part of the field value
        ([b"0\t"], [], 0, BodyAdmitted(0)),
        ([b"1"], [], 0, BodyRefused(413, "body too large")),
        ([b"314572800"], [], 0, BodyRefused(413, "body too large")),
        ([b"9" * 5000], [], 4096, BodyRefused(413, "body too large")),  # never int() of it
        ([b"4096"], [], 4096, BodyAdmitted(4096)),
        ([b"0004096"], [], 4096, BodyAdmitted(4096)),
        ([b"4097"], [], 4096, BodyRefused(413, "body too large")),
        ([b"-1"], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b"+1"], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b"abc"], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b""], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b"1 1"], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b"0x10"], [], 4096, BodyRefused(400, "malformed Content-Length")),
        (["\u0663".encode()], [], 4096, BodyRefused(400, "malformed Content-Length")),
        ([b"0, 0"], [], 4096, BodyRefused(400, "malformed Content-Length")),  # a list
        ([b"0", b"0"], [], 4096, BodyRefused(400, "several Content-Length fields")),
        ([b"5", b"7"], [], 4096, BodyRefused(400, "several Content-Length fields")),
        ([], [b"chunked"], 4096, BodyRefused(411, "chunked body")),
        ([], [b"Chunked"], 0, BodyRefused(411, "chunked body")),
        ([], [b"gzip, chunked"], 4096, BodyRefused(411, "chunked body")),
        ([], [b"gzip", b"chunked"], 4096, BodyRefused(411, "chunked body")),
        ([], [b"chunked, gzip"], 4096, BodyRefused(400, "Transfer-Encoding not ending in chunked")),
        ([], [b"identity"], 4096, BodyRefused(400, "Transfer-Encoding not ending in chunked")),
        ([], [b""], 4096, BodyRefused(400, "Transfer-Encoding not ending in chunked")),
        ([b"0"], [b"chunked"], 4096, BodyRefused(400, "Transfer-Encoding with Content-Length")),
    ],
)
def test_request_body(content_length, transfer_encoding, max_body, decision) -> None:
    assert request_body(content_length, transfer_encoding, max_body) == decision


class Counting(Resource):
    """Answers every request with its content, and counts the requests it rendered."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.rendered: list[bytes] = []

    def render(self, request) -> bytes:
        self.rendered.append(request.path)
        return request.content.read()


def connect(web, clock: Clock | None = None) -> tuple[BoundedChannel, StringTransport]:
    channel = web.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    if clock is not None:
        channel.callLater = clock.callLater
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST /a.cfg HTTP/1.1\r\nContent-Length: 314572800\r\n", 413),
        (b"PUT /a.cfg HTTP/1.1\r\nContent-Length: 314572800\r\nExpect: 100-continue\r\n", 413),
        (b"GET /a.cfg HTTP/1.1\r\nContent-Length: 5\r\n", 413),
        (b"POST /a.cfg HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 411),
        (b"GET /a.cfg HTTP/1.1\r\nTransfer-Encoding: identity\r\n", 400),  # length stays 0
    ],
)
def test_a_body_is_refused_from_the_head(head: bytes, status: int) -> None:
    """The refusal alone (no 100 Continue, no content), the connection closed, the request
    never rendered and no content file ever made, whatever of the body came along."""
    resource = Counting()
    channel, transport = connect(site(resource))
    requests = channel.requests
    channel.dataReceived(head + b"Host: x\r\n\r\n" + b"a" * 1000 + b"\r\n\r\nGET / HTTP/1.1\r\n")
    assert transport.value() == refusal_answer(status)
    assert transport.value().startswith(b"HTTP/1.1 %d " % status)
    assert transport.disconnecting
    assert resource.rendered == [] and requests[0].content is None
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # nothing more is read
    assert transport.value() == refusal_answer(status)


@pytest.mark.parametrize(
    "head", [b"GET /a.cfg HTTP/1.1", b"GET /a.cfg HTTP/1.1\r\nContent-Length: 0"]
)
def test_no_body_is_served(head: bytes) -> None:
    resource = Counting()
    channel, transport = connect(site(resource))
    channel.dataReceived(head + b"\r\nHost: x\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\n")
    assert resource.rendered == [b"/a.cfg"] and not transport.disconnecting


def test_the_admin_listener_takes_a_small_body_in_memory_only() -> None:
    resource = Counting()
    body = b'{"service": "sip"}'.ljust(admin.MAX_BODY, b" ")
    channel, transport = connect(admin.AdminSite(resource, 30, 10, (), 10, 10))
    channel.dataReceived(b"POST /failover HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n")
    channel.dataReceived(body)
    assert resource.rendered == [b"/failover"]
    assert transport.value().endswith(b"\r\n\r\n" + body)
    over = b"POST /failover HTTP/1.1\r\nHost: x\r\nContent-Length: 4097\r\n\r\n"
    channel, transport = connect(admin.AdminSite(resource, 30, 10, (), 10, 10))
    channel.dataReceived(over + body)
    assert transport.value() == refusal_answer(413) and transport.disconnecting
    assert resource.rendered == [b"/failover"]


@pytest.mark.parametrize("length", [None, 0, 99_999, 100_000, 10**9])
def test_content_is_never_a_temporary_file(length: int | None) -> None:
    """twisted.web spools 100,000 bytes or more, or an unknown length, to a file."""
    request = PhoneRequest(connect(site(Counting()))[0])
    request.gotLength(length)
    assert isinstance(request.content, io.BytesIO)


# Pipelining: back-pressure and turns ----------------------------------------------------


def answers(transport: StringTransport) -> list[bytes]:
    """The bodies answered so far, in order."""
    return [part.partition(b"\r\n\r\n")[2] for part in transport.value().split(b"HTTP/1.1 ")[1:]]


def pipelined(count: int) -> bytes:
    return b"".join(
        b"POST /%d HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" % i for i in range(count)
    )


class Echo(Counting):
    def render(self, request) -> bytes:
        request.setHeader(b"content-length", b"%d" % len(request.path))
        return request.path


def next_iteration(clock: Clock) -> None:
    """Run the calls due now, as the reactor's next iteration does (Clock.advance would also
    run those they schedule for now)."""
    for call in [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]:
        clock.calls.remove(call)
        call.func(*call.args, **call.kw)


def test_pipelined_requests_are_answered_a_turn_at_a_time() -> None:
    clock, resource = Clock(), Echo()
    channel, transport = connect(site(resource), clock)
    channel.dataReceived(pipelined(MAX_PIPELINED * 2 + 3))
    assert answers(transport) == [b"/%d" % i for i in range(MAX_PIPELINED)]
    assert transport.producerState == "paused"  # and the connection is not read meanwhile
    next_iteration(clock)
    assert len(answers(transport)) == MAX_PIPELINED * 2
    next_iteration(clock)
    assert answers(transport) == [b"/%d" % i for i in range(MAX_PIPELINED * 2 + 3)]
    assert transport.producerState == "producing"
    assert [c.getTime() for c in clock.getDelayedCalls()] == [30]  # the idle timeout only


def test_a_full_send_buffer_stops_reading_and_answering_until_it_drains() -> None:
    """twisted.web itself stops reading only when the buffer fills between requests; here
    it fills while answering one (the transport calls pauseProducing from write)."""
    clock, resource = Clock(), Echo()
    channel, transport = connect(site(resource), clock)
    transport.write = lambda data: (
        StringTransport.write(transport, data),
        channel.pauseProducing(),
    )
    channel.dataReceived(pipelined(5))
    assert answers(transport) == [b"/0"]
    assert transport.producerState == "paused"
    next_iteration(clock)
    channel.dataReceived(pipelined(3))  # bytes a read still delivered: held, not answered
    assert answers(transport) == [b"/0"]
    transport.write = lambda data: StringTransport.write(transport, data)
    channel.resumeProducing()  # the client read: the held requests are answered, in order
    assert answers(transport) == [b"/%d" % i for i in (0, 1, 2, 3, 4, 0, 1, 2)]
    assert transport.producerState == "producing"


def test_a_connection_leaving_its_answers_unread_is_cut_at_the_deadline() -> None:
    """On the site's one clock (issue 15): the sweeps run as its LoopingCall schedules them."""
    clock = Clock()
    web = site(Echo(), header_timeout=10, clock=clock)
    web.startFactory()
    channel, transport = connect(web)
    transport.write = lambda data: (
        StringTransport.write(transport, data),
        channel.pauseProducing(),
    )
    channel.dataReceived(pipelined(5))
    clock.advance(9)
    assert not transport.disconnecting and transport.producerState == "paused"
    clock.advance(2)  # the sweep at 11 s (every 1 s) finds it 11 s old
    assert transport.disconnected  # aborted
    web.stopFactory()


def test_a_body_must_arrive_within_the_deadline() -> None:
    """The deadline covers the whole request: a complete head does not stop the clock."""
    clock = Clock()
    clock.advance(1000)
    web = admin.AdminSite(Echo(), 30, 10, (), 10, 10, clock)
    web.startFactory()
    channel, transport = connect(web)
    channel.dataReceived(b"POST /failover HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    for _ in range(11):  # a byte a second: the idle timeout never fires
        clock.advance(1)  # the site's sweep runs every second
        if transport.disconnected:  # aborted
            break
        channel.dataReceived(b"{")
    assert transport.disconnected and clock.seconds() == 1011 and transport.value() == b""
    web.stopFactory()
