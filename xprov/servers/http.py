"""HTTP transport (twisted.web): phones' files and /healthz, nothing else."""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from xprov.observe import Observer
from xprov.provisioning import Failed, NotFound, Provisioner, Served


class PhoneFiles(Resource):
    """Every path is a file name for the provisioning core, except /healthz."""

    isLeaf = True

    def __init__(self, provisioner: Provisioner, observer: Observer) -> None:
        super().__init__()
        self.provisioner, self.observer = provisioner, observer

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/healthz":
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"ok\n"
        try:
            path = request.path.decode("ascii")
            agent = request.getHeader(b"user-agent")
            user_agent = agent.decode("latin-1") if agent else None
        except UnicodeDecodeError:
            return _empty(request, 404)
        outcome = self.provisioner.provide(path, user_agent)
        if isinstance(outcome, Served):
            self.observer.served(outcome, "http")
            request.setHeader(b"content-type", outcome.content_type.encode())
            request.setHeader(b"cache-control", b"no-store")
            return outcome.body
        self.observer.refused(outcome, "http", getattr(request.getClientAddress(), "host", "?"))
        if isinstance(outcome, Failed):
            return _empty(request, 500)
        assert isinstance(outcome, NotFound)
        return _empty(request, 404)

    def render_HEAD(self, request: Request) -> bytes:
        body = self.render_GET(request)
        request.setHeader(b"content-length", b"%d" % len(body))
        return b""


def _empty(request: Request, code: int) -> bytes:
    """An error answer says nothing about why (no oracle for MAC enumeration)."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return b""


class PhoneSite(Site):
    """A Site without an access log: requests are counted, not written out one by one."""

    displayTracebacks = False
    noisy = False

    def log(self, request: Request) -> None:
        pass


def site(provisioner: Provisioner, observer: Observer, idle_timeout: float = 30.0) -> PhoneSite:
    return PhoneSite(PhoneFiles(provisioner, observer), timeout=idle_timeout)
