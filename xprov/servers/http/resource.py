"""The phones' files and /healthz as a twisted.web resource: the gate's typed answer mapped
to HTTP (a refusal and an error: an empty body)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, assert_never

from cryptography import x509
from twisted.web.resource import Resource
from twisted.web.server import Request

from xprov.guard import Asker, Gate, Transport, macs_in
from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Refused, Served
from xprov.servers.http.body import empty_answer
from xprov.servers.http.channel import BoundedChannel


class PhoneFiles(Resource):
    """Every path is a file name for the gate, except /healthz."""

    isLeaf = True

    def __init__(
        self,
        gate: Gate,
        observer: Observer,
        tls: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.gate, self.observer, self.clock = gate, observer, clock
        self.transport = Transport.HTTPS if tls else Transport.HTTP

    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return empty_answer(request, 405)  # and no page that echoes the method back
        if request.path == b"/healthz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return _body(request, b"ok\n")
        asker = self._asker(request)
        if asker is None:
            return empty_answer(request, 404)
        answer = self.gate.answer(asker, self.clock())
        self.observer.outcome(answer, self.transport.value, asker.source, asker.user_agent)
        match answer:
            case Served():
                request.setHeader(b"content-type", answer.content_type.encode())
                request.setHeader(b"cache-control", b"no-store")
                return _body(request, answer.body)
            case Refused():
                for challenge in answer.challenges:
                    request.responseHeaders.addRawHeader(b"www-authenticate", challenge.encode())
                if answer.retry_after is not None:
                    request.setHeader(b"retry-after", b"%d" % answer.retry_after)
                return empty_answer(request, answer.status)
            case NotFound():
                return empty_answer(request, 404)
            case Failed():
                return empty_answer(request, 500)
            case _:
                assert_never(answer)

    def _asker(self, request: Request) -> Asker | None:
        """What the gate needs to know of `request`; None if its path is not ASCII. The path
        goes as sent (twisted.web's `request.path`: the target up to its `?`, undecoded):
        Digest checks it so, and the gate percent-normalises it once to name the file."""
        try:
            path = request.path.decode("ascii")
        except UnicodeDecodeError:
            return None
        agent = request.getHeader(b"user-agent")
        header = request.getHeader(b"authorization")
        return Asker(
            self.transport,
            _client(request),
            path,
            user_agent=agent.decode("latin-1") if agent is not None else None,
            method=request.method.decode("ascii"),
            authorization=header.decode("latin-1") if header is not None else None,
            certificate_macs=(
                _certificate_macs(request) if self.transport is Transport.HTTPS else None
            ),
        )


def _body(request: Request, body: bytes) -> bytes:
    """`body` for a GET; for a HEAD its length and nothing else (RFC 9110 section 9.3.2)."""
    if request.method == b"HEAD":
        request.setHeader(b"content-length", b"%d" % len(body))
        return b""
    return body


def _client(request: Request) -> str:
    """The client's address, as the connection noted it (a look-up costs a syscall)."""
    source: str | None = getattr(getattr(request, "channel", None), "source", None)
    if source:
        return source
    host: str = getattr(request.getClientAddress(), "host", "?")
    return host


def _certificate_macs(request: Request) -> frozenset[str]:
    """The MACs the client's verified certificate names (subject and alternative names),
    read once per connection: a connection's certificate never changes, and parsing it
    costs more than serving a cached file."""
    channel = request.channel
    known: frozenset[str] | None = getattr(channel, "certificate_macs", None)
    if known is None:
        known = _read_certificate_macs(getattr(channel, "transport", None))
        if isinstance(channel, BoundedChannel):  # PhoneSite's: the cache lives there
            channel.certificate_macs = known
    return known


def _read_certificate_macs(transport: Any) -> frozenset[str]:
    certificate = transport.getPeerCertificate() if transport is not None else None
    if certificate is None:
        return frozenset()
    parsed = certificate.to_cryptography()
    names = [str(attribute.value) for attribute in parsed.subject]
    with contextlib.suppress(x509.ExtensionNotFound):
        alternative = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names += [str(name.value) for name in alternative.value]
    return macs_in(names)
