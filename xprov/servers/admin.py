"""The admin API, on a listener of its own: status, metrics, reload, manual failover, and
the operator's status page that reads them.

Every request but /healthz and the page's files needs `Authorization: Bearer <token>`,
compared in constant time; a POST that a browser says came from another site's page is
refused before that (cross-site request forgery). Answers are JSON, but /metrics
(Prometheus text format) and the page.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from xprov.config import Network
from xprov.logs import get_logger
from xprov.monitor.errors import error_detail
from xprov.monitor.loop import ManualChoiceError, Monitor
from xprov.security_log import SECURITY
from xprov.servers import page
from xprov.servers.http import PhoneSite

if TYPE_CHECKING:
    from xprov.cluster.node import Node

log = get_logger("xprov.admin")
# Bytes of a request body: failover and failback take a JSON object of a few dozen bytes.
# A longer one is refused (413) before it is read; an admitted one is kept in memory.
MAX_BODY = 4096


class AdminApi(Resource):
    isLeaf = True

    def __init__(
        self,
        token: str,
        monitor: Monitor | None,
        status: Callable[[], dict[str, Any]],
        reload: Callable[[], Deferred[dict[str, Any]]] | None = None,
        metrics: Callable[[], bytes] | None = None,
        server_names: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__()
        self.token = bearer(token)
        self.server_names = server_names  # Host names of this listener besides addresses
        self.monitor, self.status, self.reload, self.metrics = monitor, status, reload, metrics
        self.cluster: Node | None = None  # cluster mode: manual choices go through etcd
        self.page = page.load()

    def reconfigure(self, token: str, server_names: frozenset[str] = frozenset()) -> None:
        """A reload's `[admin]` token (empty: every request refused but /healthz) and
        `server_names`."""
        self.token, self.server_names = bearer(token), server_names

    def render(self, request: Request) -> Any:
        if request.method not in (b"GET", b"HEAD", b"POST"):
            request.setHeader(b"allow", b"GET, HEAD, POST")
            return _json(request, 405, {"error": "method not allowed"})
        return super().render(request)

    def use_monitor(self, monitor: Monitor | None) -> None:
        """The monitor failover/failback act on; None: disabled (they answer 409)."""
        self.monitor = monitor

    def use_cluster(self, cluster: Node | None) -> None:
        """Cluster mode: failover/failback write the decision key every instance applies."""
        self.cluster = cluster

    def render_GET(self, request: Request) -> bytes:
        if request.path == b"/healthz":
            return _json(request, 200, {"status": "ok"})
        asset = self.page.get(request.path)
        if asset is not None:
            return _asset(request, asset)
        if not self._known_host(request):
            return _refused(request, 403, "unknown Host (DNS rebinding?)")
        if not self._authorized(request):
            return _refused(request)
        if request.path == b"/status":
            return _json(request, 200, self.status())
        if request.path == b"/metrics" and self.metrics is not None:
            request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
            return self.metrics()
        return _json(request, 404, {"error": "no such resource"})

    def render_POST(self, request: Request) -> Any:
        if not self._known_host(request):
            return _refused(request, 403, "unknown Host (DNS rebinding?)")
        forged = page.cross_site(
            request.getHeader(b"origin"),
            request.getHeader(b"sec-fetch-site"),
            request.getHeader(b"host"),
        )
        if forged is not None:
            return _refused(request, 403, f"cross-site request ({forged})", "cross-site request")
        if not self._authorized(request):
            return _refused(request)
        if request.path == b"/reload" and self.reload is not None:
            return self._reload(request, self.reload)
        action = {b"/failover": _failover, b"/failback": _failback}.get(request.path)
        if action is None:
            return _json(request, 404, {"error": "no such resource"})
        if self.monitor is None:
            return _json(request, 409, {"error": "the monitor is disabled"})
        try:
            content: IO[bytes] | None = request.content  # typed `None` by twisted.web
            assert content is not None  # the body was read into it before rendering
            body = json.loads(content.read(MAX_BODY + 1) or b"{}")
            if not isinstance(body, dict) or len(json.dumps(body)) > MAX_BODY:
                raise ValueError("expected a JSON object")
        except RecursionError:  # 4 KB of "[[[[": deeper than the decoder recurses
            return _json(request, 400, {"error": "expected a JSON object, not nested so deep"})
        except ValueError as exc:
            return _json(request, 400, {"error": str(exc)})
        # in cluster mode the decision key is written first: the answer waits for etcd
        outcomes: list[Any] = []
        by = f"admin {_client(request)}"
        done = maybeDeferred(action, self.monitor, self.cluster, body, by).addBoth(outcomes.append)
        if outcomes:  # standalone: decided already
            return self._outcome(request, outcomes[0])
        done.addCallback(lambda _: _finish(request, self._outcome(request, outcomes[0])))
        return NOT_DONE_YET

    def _outcome(self, request: Request, outcome: Any) -> bytes:
        if not isinstance(outcome, Failure):
            return _json(request, 200, self.status())
        exc = outcome.value
        if isinstance(exc, ManualChoiceError):
            return _json(request, 409, {"error": str(exc)})
        if isinstance(exc, KeyError):
            return _json(request, 400, {"error": f"missing key {exc}"})
        if isinstance(exc, ValueError | TypeError):
            return _json(request, 400, {"error": f"{type(exc).__name__}: {exc}"})
        return _json(request, 503, {"error": f"no agreement: {error_detail(exc)}"})

    def _reload(self, request: Request, reload: Callable[[], Deferred[dict[str, Any]]]) -> Any:
        log.info("operator_reload")

        reload().addCallback(
            lambda summary: _finish(request, _json(request, 200 if summary["ok"] else 409, summary))
        )
        return NOT_DONE_YET

    def _known_host(self, request: Request) -> bool:
        """A browser's request (it says where it comes from: `Sec-Fetch-Site`, `Origin`) must
        name this listener in its Host; Prometheus, curl and `xprov` may use any name."""
        browser = request.getHeader(b"sec-fetch-site") or request.getHeader(b"origin")
        return browser is None or page.known_host(request.getHeader(b"host"), self.server_names)

    def _authorized(self, request: Request) -> bool:
        """`Authorization: Bearer <token>`, the scheme in any case (RFC 9110 section 11.1)."""
        scheme, _, given = (request.getHeader(b"authorization") or b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)


def _failover(monitor: Monitor, cluster: Node | None, body: dict[str, Any], by: str) -> Any:
    """{"service", "site", "force"?, "local"?}: in cluster mode, a decision for every
    instance, or with "local" this instance alone (the escape hatch without etcd). `by`:
    who asks, for the status."""
    service, site, force = str(body["service"]), str(body["site"]), body.get("force") is True
    local = body.get("local") is True
    log.warning("operator_failover", service=service, site=site, force=force, local=local, by=by)
    if cluster is None:
        return monitor.failover(service, site, force, by)
    if local:
        return cluster.local_failover(service, site, force)
    return cluster.failover(service, site, force)


def _failback(monitor: Monitor, cluster: Node | None, body: dict[str, Any], by: str) -> Any:
    """{"service", "force"?, "local"?}: "local" releases this instance's own choice."""
    service, force, local = (
        str(body["service"]),
        body.get("force") is True,
        body.get("local") is True,
    )
    log.warning("operator_failback", service=service, force=force, local=local, by=by)
    if cluster is None:
        return monitor.failback(service, force)
    if local:
        return cluster.local_failover(service, None)
    return cluster.failback(service, force)


def bearer(token: str) -> bytes:
    """The token the Authorization header must hold. An empty token never matches."""
    return token.encode() if token else b"\0no token configured"


def _refused(
    request: Request,
    code: int = 401,
    reason: str = "wrong admin token",
    refused: str = "request from an unknown Host",
) -> bytes:
    """401 (the token), or 403 (`refused`: a request another site's page sent, or for a
    Host that is not ours), and a `security` event for fail2ban (the same shape as the
    phones' listeners). The answer says only what was refused."""
    SECURITY.write("security", client=_client(request), transport="admin", reason=reason)
    if code == 401:
        request.setHeader(b"www-authenticate", b'Bearer realm="xprov admin"')  # RFC 6750
        return _json(request, 401, {"error": "missing or wrong bearer token"})
    return _json(request, code, {"error": f"{refused} refused"})


def _client(request: Request) -> str:
    return str(getattr(request.getClientAddress(), "host", "?"))


def _asset(request: Request, asset: page.Asset) -> bytes:
    request.setHeader(b"content-type", asset.media_type)
    for name, value in page.HEADERS.items():
        request.setHeader(name, value)
    return asset.body


def _finish(request: Request, answer: bytes) -> None:
    """A late answer, unless the client has gone meanwhile."""
    if not request.finished and not request._disconnected:
        request.write(answer)
        request.finish()


def _json(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, indent=2, sort_keys=True).encode() + b"\n"


class AdminSite(PhoneSite):
    """The phones' bounds (allow-list, connection caps, request deadline, head limits, no
    access log), and bodies of up to `MAX_BODY` bytes, which must arrive within the same
    deadline as the head."""

    max_body = MAX_BODY


def site(
    api: AdminApi,
    allow: Sequence[Network] = (),
    header_timeout: float = 10.0,
    max_connections: int = 10_000,
    per_source: int = 64,
    clock: IReactorTime | None = None,
) -> AdminSite:
    return AdminSite(api, 30.0, header_timeout, allow, max_connections, per_source, clock)
