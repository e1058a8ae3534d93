"""Fuzzing (hypothesis, bounded for CI): whatever a stranger sends to the HTTP transport or
the file-name and User-Agent router, nothing escapes and the server keeps answering.
For longer runs: HYPOTHESIS_PROFILE=long (10,000 examples each), or atheris (README)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from tests.fuzzing import mutations_of
from xprov.guard import Gate, Policy
from xprov.observe import Observer
from xprov.provisioning import Provisioner
from xprov.servers.http import PhoneFiles, site
from xprov.vendors import identify

EXAMPLES = 10_000 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 600
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

REQUEST = (
    b"GET /00156574b150.cfg HTTP/1.1\r\nHost: x\r\n"
    b"User-Agent: Yealink SIP-T46G 28.72.0.1 00:15:65:74:b1:50\r\n\r\n"
)


def requests():
    starts = [
        b"GET /",
        b"GET / HTTP/1.1\r\n",
        b"HEAD /y000000000028.cfg HTTP/1.0\r\n",
        b"GET /spa942.cfg HTTP/1.1\r\nAuthorization: Digest ",
    ]
    many_headers = st.builds(
        lambda n: b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * n + b"\r\n", st.integers(0, 200)
    )
    return st.one_of(mutations_of(REQUEST, starts, 2000), many_headers)


def serve(provisioner: Provisioner, data: bytes) -> bytes:
    clock = Clock()
    gate = Gate(provisioner, Policy(burst=20, rate=0.1))
    web = site(PhoneFiles(gate, Observer(clock.seconds), clock=clock.seconds))
    channel = web.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    channel.callLater = clock.callLater
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel.makeConnection(transport)
    channel.dataReceived(data)
    for _ in range(12):  # the header deadline and the idle timeout, as a real transport
        if transport.disconnecting:
            channel.connectionLost(Failure(ConnectionDone()))
            break
        clock.advance(5)
    return transport.value()


@FUZZ
@pytest.mark.fuzz
@given(data=requests())
def test_no_request_escapes_the_http_transport(provisioner: Provisioner, data: bytes) -> None:
    answer = serve(provisioner, data)
    assert answer == b"" or answer.startswith((b"HTTP/1.1 ", b"HTTP/1.0 "))


def test_a_good_request_through_the_same_path(provisioner: Provisioner) -> None:
    answer = serve(provisioner, REQUEST)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"account.1.enable = 1" in answer


def test_oversized_heads_are_refused(provisioner: Provisioner) -> None:
    many = b"GET /00156574b150.cfg HTTP/1.1\r\n" + b"X: y\r\n" * 60 + b"\r\n"
    assert serve(provisioner, many).startswith(b"HTTP/1.1 400")
    long_line = b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\n\r\n"
    assert not serve(provisioner, long_line).startswith(b"HTTP/1.1 200")


@FUZZ
@pytest.mark.fuzz
@given(name=st.text(max_size=120), agent=st.one_of(st.none(), st.text(max_size=400)))
def test_router_never_fails(name: str, agent: str | None) -> None:
    request = identify(name, agent)
    assert request is None or request.vendor in ("yealink", "linksys")


@FUZZ
@pytest.mark.fuzz
@given(name=st.text(max_size=120), agent=st.one_of(st.none(), st.text(max_size=400)))
def test_core_answers_everything(provisioner: Provisioner, name: str, agent: str | None) -> None:
    outcome = provisioner.provide(name, agent)
    assert type(outcome).__name__ in ("Served", "NotFound")
